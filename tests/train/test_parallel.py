"""Data parallelism: 1 device == 8 forced CPU devices; jit driver == pmap driver."""

import chex
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from research.errors import UserInputError
from research.train import batch_plans
from research.train import optimizers
from research.train import parallel
from research.train import steps
from tests import helpers

# Its session-scoped runs happen once: all its tests on one pytest-xdist worker
# (scripts/test.sh uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('test_parallel')

BATCH = parallel.BATCH_AXES


@pytest.fixture(scope='session')
def eight_device_results():
  return helpers.run_worker('tests.workers.multidevice_worker', devices=8)


def test_one_device_equals_eight_devices(eight_device_results):
  r = eight_device_results
  assert r['param_scale'] > 0.01
  assert r['jit_1_vs_8_params'] < 3e-5, r  # Adam steps are ~1e-3.
  assert r['jit_1_vs_8_metrics'] < 1e-4, r
  assert r['jit_1_vs_8_predictions_equal']
  # The jit driver cuts the split's 40 rows over the 8 devices; pmap copies them.
  assert r['jit_data_rows_per_device'] == {'image': [5], 'label': [5]}, r
  assert r['pmap_data_rows_per_device'] == {'image': [40], 'label': [40]}, r


def test_a_token_stream_is_cut_over_the_devices(eight_device_results):
  # The LM's windows straddle the devices' rows: padded to a multiple of 8, each
  # device holds an eighth (the families' 1 == 8 device test checks the values).
  total, *rows = eight_device_results['lm_data_rows_per_device']
  assert total % 8 and rows == [-(-total // 8)] * 8, (total, rows)


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


def test_the_drivers_resolve_microbatches_by_the_platform_policy():
  """Their rules are tests/test_platform_policy.py's; a bad request fails on the
  first chunk, before anything is traced."""
  one_cpu = jax.devices('cpu')[:1]
  driver = parallel.DataParallel(lambda *a: None, devices=one_cpu, microbatches=0)
  assert driver._parts(64) == 2  # The global batch.
  with pytest.raises(UserInputError, match='microbatches=5 does not divide'):
    parallel.DataParallel(lambda *a: None, devices=one_cpu, microbatches=5)._parts(12)


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


def _train_chunks(loss_fn, state, microbatches):
  driver = parallel.DataParallel(loss_fn, microbatches=microbatches)
  data = driver.put_data(helpers.tiny_data(56))
  state = driver.put_replicated(state)
  idx, mask = batch_plans.batch_plan(56, 16, shuffle=True, seed=3)  # last batch: 8 of 16
  metrics = []
  for first in (0, 2):  # Two chunks of two steps.
    state, m = driver.train(
      state, data, idx[first : first + 2], mask[first : first + 2], jax.random.key(7)
    )
    metrics.append(jax.device_get(m))
  return driver, jax.device_get(state.params), metrics


@pytest.mark.parametrize('microbatches', [1, 2])
def test_split_loss_in_two_programs_equals_one_program(microbatches):
  # The CNN's loss is a SplitLoss: on CPU the jit driver prepares (gathers and
  # augments) each batch in a program of its own; given whole (a plain function) the
  # same loss runs in one program. Dropout and augmentation on: same keys, same step.
  # (SGD: Adam would magnify float rounding in near-zero gradients.)
  sgd = optimizers.OptimizerConfig(name='sgd', learning_rate=0.1)
  _, loss_fn, state = helpers.tiny_classifier(0.5, True, optimizer=sgd)
  state = jax.device_get(state)  # Each run donates its own device copy.
  assert isinstance(loss_fn, steps.SplitLoss)
  split, split_params, split_metrics = _train_chunks(loss_fn, state, microbatches)
  whole = lambda *args: loss_fn(*args)
  one, one_params, one_metrics = _train_chunks(whole, state, microbatches)
  assert split.splits_steps and not one.splits_steps
  chex.assert_trees_all_close(split_params, one_params, atol=1e-6)
  chex.assert_trees_all_close(split_metrics, one_metrics, rtol=1e-5)
  assert split_metrics[1]['loss'][1].tolist() == [16.0, 8.0]  # Padded last batch kept.
  moved = max(
    float(abs(a - b).max())
    for a, b in zip(jax.tree.leaves(split_params), jax.tree.leaves(state.params), strict=True)
  )
  assert moved > 1e-3


def test_prepare_train_batch_gives_each_microbatch_its_train_step_key():
  # train_step hands micro-batch part i the key fold_in(step key, i); the prepared
  # parts, interleaved back, must be what each part's loss would have prepared.
  seen = lambda batch, rng, train: dict(
    batch, key=jnp.broadcast_to(jax.random.key_data(rng)[None], (batch['x'].shape[0], 2))
  )
  batch = {'x': jnp.arange(6.0)}
  out = steps.prepare_train_batch(
    batch, jax.random.key(1), jnp.int32(4), prepare=seen, microbatches=3
  )
  step_key = jax.random.fold_in(jax.random.key(1), 4)
  for i, part in enumerate(steps.split_batch(out, 3)):
    np.testing.assert_array_equal(part['x'], batch['x'][i::3])
    want = jax.random.key_data(jax.random.fold_in(step_key, i))
    np.testing.assert_array_equal(part['key'], np.broadcast_to(want, (2, 2)))
