"""Data parallelism: 1 device == 8 forced CPU devices; jit driver == pmap driver."""

import json
import os
import subprocess
import sys

import pytest

from jax.sharding import PartitionSpec as P

from research.errors import UserInputError
from research.train import parallel
from tests import helpers

# Its session-scoped runs happen once: all its tests on one pytest-xdist worker
# (scripts/test.sh uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('test_parallel')

BATCH = parallel.BATCH_AXES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='session')
def eight_device_results():
  env = dict(os.environ, XLA_FLAGS=helpers.xla_flags(8),
             JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, '-m', 'tests.train.multidevice_worker'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_device_equals_eight_devices(eight_device_results):
  r = eight_device_results
  assert r['param_scale'] > 0.01
  assert r['jit_1_vs_8_params'] < 3e-5, r  # Adam steps are ~1e-3.
  assert r['jit_1_vs_8_metrics'] < 1e-4, r
  assert r['jit_1_vs_8_predictions_equal']


@pytest.mark.parametrize('family', ['lstm', 'gru', 'transformer', 'ddpm'])
def test_families_one_device_equals_eight(eight_device_results, family):
  assert eight_device_results['family_1_vs_8_params'][family] < 1e-5, eight_device_results


def test_pmap_driver_equals_jit_driver(eight_device_results):
  r = eight_device_results
  assert r['jit_vs_pmap_params'] < 1e-5, r
  assert r['pmap_prediction_shape'] == [2, 16]
  assert r['pmap_metric_count'] == 8.0  # The uneven last batch: 8 real of 16.


def test_two_microbatches_per_device_equal_one(eight_device_results):
  r = eight_device_results
  assert r['microbatches_jit_params'] < 1e-5, r
  assert r['microbatches_pmap_params'] < 1e-5, r


def test_cnn_conv_parts_per_device_equal_whole_batches(eight_device_results):
  r = eight_device_results
  assert r['conv_parts_jit_params'] < 1e-5, r
  assert r['conv_parts_pmap_params'] < 1e-5, r


@pytest.mark.parametrize('requested, per_device, platform, expected', [
    (0, 64, 'cpu', 2), (0, 8, 'cpu', 1), (0, 33, 'cpu', 1), (0, 64, 'gpu', 1),
    (0, 64, 'tpu', 1), (4, 64, 'gpu', 4), (1, 64, 'cpu', 1)])
def test_automatic_microbatches_split_only_large_even_cpu_batches(
    requested, per_device, platform, expected):
  assert parallel.resolve_microbatches(requested, per_device, platform) == expected


def test_microbatches_must_divide_the_per_device_batch():
  with pytest.raises(UserInputError, match='does not divide the per-device batch of 12'):
    parallel.resolve_microbatches(5, 12, 'cpu')
  with pytest.raises(UserInputError, match='must be >= 0'):
    parallel.resolve_microbatches(-1, 12, 'cpu')


def test_fsdp_sharded_run_equals_replicated_run(eight_device_results):
  r = eight_device_results
  assert r['fsdp_sharded_params'] >= 4, r  # conv and dense kernels are sharded.
  assert r['fsdp_vs_replicated_params'] < 3e-5, r


def test_fsdp_rule_shards_the_largest_divisible_dimension():
  assert parallel.fsdp_spec((3, 3, 32, 64), 8, 100) == P(None, None, None, BATCH)
  assert parallel.fsdp_spec((512, 10), 8, 100) == P(BATCH, None)
  assert parallel.fsdp_spec((10,), 8, 1) == P()  # Not divisible: replicated.
  assert parallel.fsdp_spec((64,), 8, 100) == P()  # Small: replicated.


@pytest.mark.parametrize('batch_size', [0, -4, 12])
def test_batch_size_must_divide_over_devices(batch_size):
  with pytest.raises(UserInputError, match='multiple of the device count'):
    parallel.check_batch_size(batch_size, 8)
