"""One process of a two-process CPU job (gloo), started by test_multiprocess.py.

Each process holds half of a tiny data set, trains the tiny CNN for a few steps with
the jit driver over both processes' devices, saves a checkpoint together with the
other process, and (process 0) writes its parameters and its data shard's labels.
"""

import json
import sys

import jax
import numpy as np

from research.train import checkpoint as checkpoint_lib
from research.train import distributed
from research.train import loop
from research.train import parallel
from tests import helpers

STEPS, LOCAL_BATCH = 2, 8  # 16 examples per process: 2 steps.


def plans(process, num_processes, n_local):
  return [loop.batch_plan(n_local, LOCAL_BATCH, shuffle=True, seed=1, epoch=p)
          for p in range(num_processes)][process]


def main():
  port, pid, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
  distributed.initialize(f'localhost:{port}', 2, pid)
  assert jax.process_count() == 2 and len(jax.devices()) == 4
  data = helpers.tiny_data(32)
  shard = distributed.shard_for_process(32)
  local = {k: v[shard] for k, v in data.items()}
  _, loss_fn, state = helpers.tiny_classifier()
  driver = parallel.DataParallel(loss_fn)
  state = driver.put_replicated(state)
  device_data = driver.put_data(local)
  idx, mask = plans(pid, 2, len(local['label']))
  for s in range(STEPS):
    state, metrics = driver.train(state, device_data, idx[s:s + 1], mask[s:s + 1],
                                  jax.random.key(5))
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  checkpointer.save(STEPS, state)
  checkpointer.wait()
  checkpointer.close()
  params = jax.tree.map(lambda x: np.asarray(x).tolist(), state.params)
  count = float(np.asarray(metrics['loss'][1])[0])
  print(json.dumps({'process': pid, 'labels': local['label'].tolist(),
                    'count': count, 'fc2_bias': params['fc2']['bias']}))


if __name__ == '__main__':
  main()
