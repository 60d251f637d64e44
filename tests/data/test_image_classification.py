"""The real tfds path (mocked) and clear errors for bad data set names and splits."""

import numpy as np
import pytest

from research.data import image_classification
from research.data import tfds_io
from research.errors import UserInputError


def test_real_mnist_path_under_tfds_mock_data():
  tfds = tfds_io.import_tfds()
  with tfds.testing.mock_data(num_examples=12):
    ds = image_classification.load_image_classification('mnist', 'train',
                                                         image_size=16)
  assert ds.image.shape == (12, 16, 16, 1) and ds.image.dtype == np.uint8
  assert ds.num_classes == 10 and ds.name == 'mnist'
  assert ds.label.min() >= 0 and ds.label.max() < 10


def test_gtsrb_class_count_comes_from_metadata():
  tfds = tfds_io.import_tfds()
  with tfds.testing.mock_data(num_examples=4):
    ds = image_classification.load_image_classification(
        'visual_domain_decathlon/gtsrb', 'train', image_size=8)
  assert ds.num_classes == 43 and ds.image.shape == (4, 8, 8, 3)


def test_unknown_data_set_is_a_user_error():
  with pytest.raises(UserInputError, match="unknown data set 'mnistt'"):
    image_classification.load_image_classification('mnistt', 'train', image_size=8)


def test_unknown_split_is_a_user_error(offline_data_dir):
  with pytest.raises(UserInputError, match='has no split'):
    image_classification.load_image_classification(
        'mnist_offline', 'validation', image_size=8, data_dir=offline_data_dir)


@pytest.mark.parametrize('image,label,message', [
    (np.zeros((2, 8, 8, 1), np.float32), np.zeros(2, np.int64), 'images must be uint8'),
    (np.zeros((2, 8, 8, 4), np.uint8), np.zeros(2, np.int64), 'images must be uint8'),
    (np.zeros((2, 8, 8), np.uint8), np.zeros(2, np.int64), 'images must be uint8'),
    (np.zeros((2, 8, 8, 3), np.uint8), np.zeros(3, np.int64), 'one per image'),
    (np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.float32), 'labels must be integers'),
    (np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 10]), r'lie in \[0, 10\)'),
    (np.zeros((2, 8, 8, 3), np.uint8), np.array([-1, 0]), r'lie in \[0, 10\)'),
])
def test_bad_examples_are_user_errors(image, label, message):
  with pytest.raises(UserInputError, match=message):
    image_classification.check_examples(image, label, 10, 'data')
