"""Shared fixtures: a tfds data dir holding the offline MNIST, built once per session."""

import os

import pytest

# Tests run on CPU; keep TensorFlow's C++ logging out of the output.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


@pytest.fixture(scope='session')
def offline_data_dir(tmp_path_factory) -> str:
  """A tfds data_dir where `mnist_offline` has been prepared."""
  from research.data import tfds_io  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  tfds_io.get_builder('mnist_offline', data_dir).download_and_prepare()
  return data_dir
