"""`text_offline`: English prose that ships with every CPython, as a tfds data set.

The text is `pydoc_data.topics` (the help topics of Python's documentation, about
465 KB): the topics are joined in sorted order, and the last 10% of the text,
starting at a line boundary, is the 'validation' split; the rest is 'train'. Each
split is one example with a 'text' feature, the layout of tfds's `tiny_shakespeare`.

Importing this module imports TensorFlow Datasets and registers the builder; the rest
of the library imports it lazily, only when the data set is asked for by name.
"""

import tensorflow_datasets as tfds

from research.data import text


class TextOffline(tfds.core.GeneratorBasedBuilder):
  """Python's pydoc topics, split 90% train / 10% validation."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'pydoc_data.topics, last 10% (from a line start) validation.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict({'text': tfds.features.Text()}),
      supervised_keys=None,
      description=__doc__,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is local.
    train, validation = text.split_text(text.pydoc_topics_text(), text.VALIDATION_FRACTION)
    return {
      'train': self._generate_examples(train),
      'validation': self._generate_examples(validation),
    }

  def _generate_examples(self, split_text):
    yield 0, {'text': split_text}
