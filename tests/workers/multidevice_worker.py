"""Run in a subprocess with 8 forced CPU devices by test_parallel.py.

Trains the tiny CNN for a few steps with the jit driver on 1 device and on 8, and
with the pmap driver on 8, then prints the largest parameter differences as JSON.
"""

import json
import os

import jax
import numpy as np

from research.train import batch_plans
from research.train import parallel
from tests import helpers
from tests.train import family_setups


def train(driver_cls, devices, dropout_rate, augmentation, steps=3, batch=16, model=None, **kw):
  _, loss_fn, state = helpers.tiny_classifier(dropout_rate, augmentation, **(model or {}))
  driver = driver_cls(loss_fn, devices=devices, **kw)
  host_data = helpers.tiny_data(40)
  data = driver.put_data(host_data)
  global DATA_ROWS  # Rows each device holds, per array: the split is cut, not copied.
  DATA_ROWS = {  # (pmap's arrays have a leading device axis.)
    k: sorted({s.data.shape[v.ndim - host_data[k].ndim] for s in v.addressable_shards})
    for k, v in data.items()
  }
  state = driver.put_replicated(state)
  idx, mask = batch_plans.batch_plan(40, batch, shuffle=True, seed=1)  # last batch: 8 of 16
  metrics = []
  for s in range(steps):
    state, m = driver.train(state, data, idx[s : s + 1], mask[s : s + 1], jax.random.key(5))
    metrics.append(jax.device_get(m))
  _, outputs = driver.evaluate(state, data, idx[:2], mask[:2])
  global SHARDED_PARAMS
  SHARDED_PARAMS = sum(
    not p.sharding.is_fully_replicated for p in jax.tree.leaves(driver.host_state(state).params)
  )
  return (
    jax.device_get(driver.host_state(state).params),
    metrics,
    np.asarray(jax.device_get(outputs['prediction'])),
  )


def train_family(setup, devices, steps=2, batch=16):
  loss_fn, gather_fn, state, data = setup
  kw = {} if gather_fn is None else {'gather_fn': gather_fn}
  driver = parallel.DataParallel(loss_fn, devices=devices, **kw)
  state = driver.put_replicated(state)
  n = len(data['offsets']) if 'offsets' in data else len(next(iter(data.values())))
  device_data = driver.put_data(data)
  global LM_DATA_ROWS
  if 'tokens' in data and len(devices) > 1:
    LM_DATA_ROWS = [len(data['tokens'])] + [
      s.data.shape[0] for s in device_data['tokens'].addressable_shards
    ]
  idx, mask = batch_plans.batch_plan(n, batch, shuffle=True, seed=2)
  for s in range(steps):
    state, _ = driver.train(state, device_data, idx[s : s + 1], mask[s : s + 1], jax.random.key(9))
  return jax.device_get(state.params)


def max_diff(a, b):
  return max(
    float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


def main():
  devices = jax.devices()
  assert len(devices) == 8, os.environ.get('XLA_FLAGS')
  one, m1, p1 = train(parallel.DataParallel, devices[:1], 0.5, True)
  eight, m8, p8 = train(parallel.DataParallel, devices, 0.5, True)
  jit_data_rows = DATA_ROWS
  # pmap gives each device its own random stream, so compare it without dropout
  # and augmentation against the jit driver.
  plain, _, _ = train(parallel.DataParallel, devices, 0.0, False, model={'conv_parts': 1})
  pmapped, mp, pp = train(parallel.PmapDataParallel, devices, 0.0, False)
  pmap_data_rows = DATA_ROWS
  # Two micro-batches per device (per-device batch 2 -> parts of 1 example).
  micro_jit, _, _ = train(parallel.DataParallel, devices, 0.0, False, microbatches=2)
  micro_pmap, _, _ = train(parallel.PmapDataParallel, devices, 0.0, False, microbatches=2)
  # The CNN's convolutions on 2 interleaved parts of each device's batch.
  parts_jit, _, _ = train(parallel.DataParallel, devices, 0.0, False, model={'conv_parts': 2})
  parts_pmap, _, _ = train(parallel.PmapDataParallel, devices, 0.0, False, model={'conv_parts': 2})
  fsdp, mf, _ = train(parallel.DataParallel, devices, 0.5, True, fsdp=True, fsdp_min_size=64)
  families = {
    'lstm': lambda: family_setups.char_lm('lstm'),
    'gru': lambda: family_setups.char_lm('gru'),
    'transformer': family_setups.transformer_seq2seq,
    'ddpm': family_setups.ddpm_denoiser,
  }
  family_diffs = {
    name: max_diff(train_family(make(), devices[:1]), train_family(make(), devices))
    for name, make in families.items()
  }
  print(
    json.dumps(
      {
        'family_1_vs_8_params': family_diffs,
        'jit_1_vs_8_params': max_diff(one, eight),
        'jit_1_vs_8_metrics': max_diff(m1, m8),
        'jit_1_vs_8_predictions_equal': bool((p1 == p8).all()),
        'jit_data_rows_per_device': jit_data_rows,
        'pmap_data_rows_per_device': pmap_data_rows,
        'lm_data_rows_per_device': LM_DATA_ROWS,
        'jit_vs_pmap_params': max_diff(plain, pmapped),
        'microbatches_jit_params': max_diff(plain, micro_jit),
        'microbatches_pmap_params': max_diff(plain, micro_pmap),
        'conv_parts_jit_params': max_diff(plain, parts_jit),
        'conv_parts_pmap_params': max_diff(plain, parts_pmap),
        'fsdp_vs_replicated_params': max_diff(eight, fsdp),
        'fsdp_sharded_params': SHARDED_PARAMS,
        'pmap_prediction_shape': list(pp.shape),
        'param_scale': max(float(np.abs(x).max()) for x in jax.tree.leaves(one)),
        'pmap_metric_count': float(mp[-1]['loss'][1][0]),
      }
    )
  )


if __name__ == '__main__':
  main()
