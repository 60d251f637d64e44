"""Lazy, accelerator-safe access to TensorFlow Datasets.

TensorFlow is only an input pipeline here: it is imported on first use, never at
module import, and is hidden from every GPU/TPU so it cannot claim their memory.
"""

import functools
import importlib
import os

from research.errors import UserInputError

# Data sets the library defines itself, by tfds name -> module that registers them.
LOCAL_BUILDERS = {
  'fashion_mnist_offline': 'research.data.fashion_mnist_offline',
  'mnist_offline': 'research.data.mnist_offline',
  'text_offline': 'research.data.text_offline',
}


@functools.cache
def import_tensorflow():
  """Imports TensorFlow hidden from every GPU/TPU (it only reads and resizes data).

  Returns:
    the `tensorflow` module.
  """
  # TensorFlow only resizes images here: keep its start-up chatter off stderr.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')
  return tf


def import_tfds():
  """Imports tensorflow_datasets, TensorFlow first (see `import_tensorflow`).

  Returns:
    the `tensorflow_datasets` module.
  """
  import_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return tfds


def get_builder(name: str, data_dir: str | None = None, tensorflow: bool = True):
  """Returns the tfds builder for `name`, registering the library's own data sets.

  TensorFlow is imported too unless `tensorflow` is False: tfds alone builds and
  describes a data set in a fraction of the time TensorFlow's import takes, but
  cannot read it.

  Raises:
    UserInputError: if tfds knows no data set of that name.
  """
  if tensorflow:
    import_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  base = name.split(':')[0].split('/')[0]
  if base in LOCAL_BUILDERS:
    importlib.import_module(LOCAL_BUILDERS[base])
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    local = ', '.join(sorted(LOCAL_BUILDERS))
    raise UserInputError(
      f'unknown data set {name!r}: use a tensorflow-datasets name such as '
      f"'mnist' or 'visual_domain_decathlon/gtsrb', or an offline one: {local}"
    ) from None
