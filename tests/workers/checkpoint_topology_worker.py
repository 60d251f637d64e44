"""Saves or restores the tiny classifier's checkpoint on 8 forced CPU devices.

Run by test_multiprocess.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8:

  python -m tests.workers.checkpoint_topology_worker save WORKDIR
      trains 2 steps with the parameters and optimiser state FSDP-sharded over the
      8 devices, saves at step SAVE_STEP, prints the parameters' digest;
  python -m tests.workers.checkpoint_topology_worker restore WORKDIR STEP
      restores STEP into the same 8-device FSDP layout and prints its digest.
"""

import json
import sys

import jax
import numpy as np

from research.train import batch_plans
from research.train import checkpoint as checkpoint_lib
from research.train import parallel
from tests import helpers

SAVE_STEP = 2


def digest(params) -> dict[str, list[float]]:
  """Per-leaf float64 sum, sum of squares and first values: equal iff restored exactly
  (for practical purposes)."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]:
    a = np.asarray(leaf, np.float64).ravel()
    out[jax.tree_util.keystr(path)] = [a.sum(), np.square(a).sum()] + a[:4].tolist()
  return out


def _driver_and_state():
  _, loss_fn, state = helpers.tiny_classifier()
  driver = parallel.DataParallel(loss_fn, fsdp=True, fsdp_min_size=256)
  return driver, driver.put_replicated(state)


def main():
  mode, workdir = sys.argv[1], sys.argv[2]
  assert len(jax.devices()) == 8
  driver, state = _driver_and_state()
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  if mode == 'save':
    data = driver.put_data(helpers.tiny_data(32))
    idx, mask = batch_plans.batch_plan(32, 16, shuffle=True, seed=3)
    for s in range(SAVE_STEP):
      state, _ = driver.train(state, data, idx[s : s + 1], mask[s : s + 1], jax.random.key(4))
    sharded = [x.sharding.spec for x in jax.tree.leaves(state.params)]
    assert any(any(p is not None for p in spec) for spec in sharded), sharded
    checkpointer.save(SAVE_STEP, state)
    checkpointer.wait()
  else:
    state = checkpointer.restore(int(sys.argv[3]), state)
  checkpointer.close()
  print(json.dumps({'step': int(state.step), 'digest': digest(state.params)}))


if __name__ == '__main__':
  main()
