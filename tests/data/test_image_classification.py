"""The real tfds path (mocked) and clear errors for bad data set names and splits."""

import logging
import os
import re

import numpy as np
import pytest

from research.data import image_classification
from research.data import tfds_io
from research.errors import UserInputError


def test_real_mnist_path_under_tfds_mock_data():
  tfds = tfds_io.import_tfds()
  with tfds.testing.mock_data(num_examples=12):
    ds = image_classification.load_image_classification('mnist', 'train', image_size=16)
  assert ds.image.shape == (12, 16, 16, 1) and ds.image.dtype == np.uint8
  assert ds.num_classes == 10 and ds.name == 'mnist'
  assert ds.label.min() >= 0 and ds.label.max() < 10


def test_gtsrb_class_count_comes_from_metadata():
  tfds = tfds_io.import_tfds()
  with tfds.testing.mock_data(num_examples=4):
    ds = image_classification.load_image_classification(
      'visual_domain_decathlon/gtsrb', 'train', image_size=8
    )
  assert ds.num_classes == 43 and ds.image.shape == (4, 8, 8, 3)


# Mocked visual_domain_decathlon/gtsrb as tfds ships it: labelled train and
# validation splits and a test split whose labels are all -1. Each split has its own
# size and pixel value, so a test can tell which one was read.
GTSRB = 'visual_domain_decathlon/gtsrb'
SPLITS = {'train': (6, 10), 'validation': (5, 20), 'test': (4, 30)}


def _gtsrb_as_dataset(builder, split, decoders=None, read_config=None, **kwargs):
  del decoders, read_config, kwargs
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  base = re.match(r'\w+', str(split)).group(0)  # Slicing is ignored, as tfds's mock.
  size, pixel = SPLITS[base]
  examples = [
    {
      'image': np.full((10, 12, 3), pixel, np.uint8),
      'label': -1 if base == 'test' else (3 * i) % 43,
      'name': f'{base}{i}',
    }
    for i in range(size)
  ]
  features = builder.info.features
  return tf.data.Dataset.from_generator(
    lambda: iter(examples), output_types=features.dtype, output_shapes=features.shape
  )


def _load_gtsrb(split):
  tfds = tfds_io.import_tfds()
  with tfds.testing.mock_data(as_dataset_fn=_gtsrb_as_dataset):
    return image_classification.load_image_classification(GTSRB, split, image_size=8)


@pytest.mark.parametrize(
  'asked,read',
  [
    ('train', 'train'),
    ('validation', 'validation'),
    ('test', 'validation'),
    ('test[:50%]', 'validation[:50%]'),
  ],
)
def test_gtsrb_evaluates_on_validation_when_asked_for_its_unlabelled_test(asked, read, caplog):
  with caplog.at_level(logging.WARNING):
    ds = _load_gtsrb(asked)
  base = read.split('[')[0]
  assert ds.split == read and len(ds) == SPLITS[base][0]
  assert (ds.image == SPLITS[base][1]).all() and ds.image.shape[1:] == (8, 8, 3)
  assert ds.label.min() >= 0 and ds.label.max() < 43 and ds.num_classes == 43
  said = [r.getMessage() for r in caplog.records if 'unlabelled' in r.getMessage()]
  assert len(said) == (asked != read), said  # The substitution is logged.


def test_an_unlabelled_split_is_a_user_error(monkeypatch):
  # A data set missing from the table: its all -1 test labels are refused by name.
  monkeypatch.setattr(image_classification, 'UNLABELLED_TEST_SPLITS', {})
  with pytest.raises(
    UserInputError,
    match=r"split 'test' is unlabelled \(every label "
    r'is -1\): evaluate on a labelled split',
  ):
    _load_gtsrb('test')


@pytest.mark.parametrize(
  'name,split,read',
  [
    (GTSRB, 'test', 'validation'),
    (GTSRB + ':1.2.0', 'test[10:20]', 'validation[10:20]'),
    ('visual_domain_decathlon/cifar100', 'train+test', 'train+validation'),
    (GTSRB, 'train', 'train'),
    ('mnist', 'test', 'test'),
    ('mnist', 'test[:10%]', 'test[:10%]'),
  ],
)
def test_evaluation_split(name, split, read):
  assert image_classification.evaluation_split(name, split) == read


def test_unknown_data_set_is_a_user_error():
  with pytest.raises(UserInputError, match="unknown data set 'mnistt'"):
    image_classification.load_image_classification('mnistt', 'train', image_size=8)


def test_unknown_split_is_a_user_error(offline_data_dir):
  with pytest.raises(UserInputError, match='has no split'):
    image_classification.load_image_classification(
      'mnist_offline', 'validation', image_size=8, data_dir=offline_data_dir
    )


@pytest.mark.parametrize(
  'image,label,message',
  [
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros(2, np.int64), 'images must be uint8'),
    (np.zeros((2, 8, 8, 4), np.uint8), np.zeros(2, np.int64), 'images must be uint8'),
    (np.zeros((2, 8, 8), np.uint8), np.zeros(2, np.int64), 'images must be uint8'),
    (np.zeros((2, 8, 8, 3), np.uint8), np.zeros(3, np.int64), 'one per image'),
    (np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.float32), 'labels must be integers'),
    (np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 10]), r'lie in \[0, 10\)'),
    (np.zeros((2, 8, 8, 3), np.uint8), np.array([-1, 0]), r'lie in \[0, 10\)'),
  ],
)
def test_bad_examples_are_user_errors(image, label, message):
  with pytest.raises(UserInputError, match=message):
    image_classification.check_examples(image, label, 10, 'data')


def _no_tensorflow():
  raise AssertionError('TensorFlow imported for a cached split')


def test_a_cached_split_is_read_again_without_tensorflow(offline_data_dir, tmp_path, monkeypatch):
  load = lambda size: image_classification.load_image_classification(
    'mnist_offline',
    'test[:20]',
    image_size=size,
    data_dir=offline_data_dir,
    cache_dir=str(tmp_path),
  )
  first = load(8)
  monkeypatch.setattr(tfds_io, 'import_tensorflow', _no_tensorflow)
  again = load(8)
  np.testing.assert_array_equal(again.image, first.image)
  np.testing.assert_array_equal(again.label, first.label)
  assert again.image.dtype == np.uint8 and again.label.dtype == np.int32
  assert (again.num_classes, again.class_names, again.name, again.version, again.split) == (
    first.num_classes,
    first.class_names,
    first.name,
    first.version,
    first.split,
  )
  with pytest.raises(AssertionError, match='TensorFlow imported'):
    load(12)  # Another size is another entry.


def test_a_cached_split_is_stale_once_tfds_prepares_the_data_again(
  offline_data_dir, tmp_path, monkeypatch
):
  load = lambda: image_classification.load_image_classification(
    'mnist_offline', 'test[:20]', image_size=8, data_dir=offline_data_dir, cache_dir=str(tmp_path)
  )
  load()
  info = os.path.join(
    tfds_io.get_builder('mnist_offline', offline_data_dir).data_dir, 'dataset_info.json'
  )
  stat = os.stat(info)
  os.utime(info, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
  monkeypatch.setattr(tfds_io, 'import_tensorflow', _no_tensorflow)
  with pytest.raises(AssertionError, match='TensorFlow imported'):
    load()
