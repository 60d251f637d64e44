"""Shared fixtures: a tfds data dir holding the offline MNIST, built once per session."""

import os

import pytest

# Tests run on CPU; keep TensorFlow's C++ logging out of the output.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# No prepared-image cache in the user's home from test runs (its tests pass their own).
os.environ['RESEARCH_DATA_CACHE'] = ''

# The longest tests (whole programs in subprocesses, a minute or more each on 2 cores),
# longest first. They run before the rest, so that pytest-xdist fills the other
# worker with short tests instead of leaving one long test running alone at the end.
LONGEST_FIRST = (
  'tests/train/test_trainer_matrix.py::test_every_layout_and_fault[ddpm]',
  'tests/train/test_parallel.py',
  'tests/train/test_multiprocess_preemption.py',
  'tests/train/test_multiprocess.py',
  'tests/test_accelerator_check.py',
  'tests/train/test_trainer_matrix.py',
  'tests/test_lowering.py',
  'tests/test_readme_examples.py',
  'tests/train/test_compile_cache.py',
  'tests/experiments/test_ddpm_main.py',
  'tests/families/test_loaded_run.py',
  'tests/train/test_sharded_state.py',
  'tests/train/test_scheduler.py',
  'tests/train/test_input_pipeline.py',
)


def pytest_collection_modifyitems(items):
  """Moves the tests of `LONGEST_FIRST` to the front, in its order (stable otherwise)."""

  def rank(item):
    return next(
      (i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
      len(LONGEST_FIRST),
    )

  items.sort(key=rank)


@pytest.fixture(scope='session')
def offline_data_dir(tmp_path_factory) -> str:
  """A tfds data_dir where `mnist_offline` has been prepared."""
  from research.data import tfds_io  # pylint: disable=g-import-not-at-top

  data_dir = str(tmp_path_factory.mktemp('tfds'))
  tfds_io.get_builder('mnist_offline', data_dir).download_and_prepare()
  return data_dir
