"""One process of a two-process CPU job (gloo), started by test_multiprocess.py.

Each process holds half of a tiny data set, trains the tiny CNN for a few steps with
the jit driver over both processes' devices, saves a checkpoint together with the
other process, and prints its parameters and its data shard's labels. It then
restores a checkpoint written on 8 devices (FSDP-sharded) into its own layout, and
trains the tiny transformer seq2seq family on its half of that family's data.
"""

import json
import sys

import jax
import numpy as np

from research.data import shard
from research.train import batch_plans
from research.train import checkpoint as checkpoint_lib
from research.train import distributed
from research.train import parallel
from tests import helpers
from tests.train import family_setups
from tests.workers import checkpoint_topology_worker as topology

STEPS, LOCAL_BATCH = 2, 8  # 16 examples per process: 2 steps.


def plans(process, num_processes, n_local):
  return [
    batch_plans.batch_plan(n_local, LOCAL_BATCH, shuffle=True, seed=1, epoch=p)
    for p in range(num_processes)
  ][process]


def train_transformer(pid):
  """STEPS steps of the tiny transformer on this process's half of its 40 pairs."""
  # The family's load_data keeps this process's half of the pairs.
  loss_fn, _, state, local = family_setups.transformer_seq2seq()
  driver = parallel.DataParallel(loss_fn)
  state = driver.put_replicated(state)
  device_data = driver.put_data(local)
  idx, mask = plans(pid, 2, len(local['inputs']))
  for s in range(STEPS):
    state, _ = driver.train(state, device_data, idx[s : s + 1], mask[s : s + 1], jax.random.key(6))
  return state


def main():
  port, pid, workdir, eight_device_workdir = (
    sys.argv[1],
    int(sys.argv[2]),
    sys.argv[3],
    sys.argv[4],
  )
  distributed.initialize(f'localhost:{port}', 2, pid)
  assert jax.process_count() == 2 and len(jax.devices()) == 4
  data = helpers.tiny_data(32)
  part = shard.process_slice(32)
  local = {k: v[part] for k, v in data.items()}
  _, loss_fn, state = helpers.tiny_classifier()
  driver = parallel.DataParallel(loss_fn)
  state = driver.put_replicated(state)
  device_data = driver.put_data(local)
  idx, mask = plans(pid, 2, len(local['label']))
  for s in range(STEPS):
    state, metrics = driver.train(
      state, device_data, idx[s : s + 1], mask[s : s + 1], jax.random.key(5)
    )
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  checkpointer.save(STEPS, state)
  checkpointer.wait()
  checkpointer.close()
  params = jax.tree.map(lambda x: np.asarray(x).tolist(), state.params)
  count = float(np.asarray(metrics['loss'][1])[0])
  # The 8-device checkpoint, restored into this run's (2 processes x 2 devices) layout.
  eight = checkpoint_lib.Checkpointer(eight_device_workdir)
  restored = eight.restore(topology.SAVE_STEP, state)
  eight.close()
  transformer_state = train_transformer(pid)
  print(
    json.dumps(
      {
        'process': pid,
        'labels': local['label'].tolist(),
        'count': count,
        'fc2_bias': params['fc2']['bias'],
        'digest': topology.digest(state.params),
        'restored_from_8_devices': topology.digest(restored.params),
        'transformer': topology.digest(transformer_state.params),
      }
    )
  )


if __name__ == '__main__':
  main()
