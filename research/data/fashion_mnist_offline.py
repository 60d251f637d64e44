"""`fashion_mnist_offline`: Fashion-MNIST from the Debian package's idx files, as tfds.

No network is needed: the builder reads the four gzip idx files that
`apt-get install dataset-fashion-mnist` installs (or those under
$RESEARCH_FASHION_MNIST_DIR, see `fashion_mnist.directory`) into the release's own
60,000 'train' and 10,000 'test' examples. The files are read once, when the data
set is prepared under the tfds data directory; later runs read the prepared copy.

Importing this module imports TensorFlow Datasets and registers the builder; the rest
of the library imports it lazily, only when the data set is asked for by name.
"""

import tensorflow_datasets as tfds

from research.data import fashion_mnist


class FashionMnistOffline(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST, 60,000 train / 10,000 test, from the installed idx files."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'The release split of the dataset-fashion-mnist idx files.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Image(shape=(28, 28, 1)),
          'label': tfds.features.ClassLabel(names=fashion_mnist.CLASS_NAMES),
        }
      ),
      supervised_keys=('image', 'label'),
      description=__doc__,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is local.
    # Both splits are read before any is written, so a missing or broken file fails
    # the preparation at once with its one-line error.
    splits = {split: fashion_mnist.read_split(split) for split in fashion_mnist.FILES}
    return {split: self._generate_examples(*arrays) for split, arrays in splits.items()}

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
      yield i, {'image': image[:, :, None], 'label': int(label)}
