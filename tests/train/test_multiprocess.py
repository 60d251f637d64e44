"""Two processes on localhost (jax.distributed, gloo) == one process on the same data."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from research.train import checkpoint as checkpoint_lib
from research.train import parallel
from tests import helpers
from tests.train import multiprocess_worker as worker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def two_process_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('two_process'))
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2',
             JAX_PLATFORMS='cpu')
  port = str(_free_port())
  procs = [subprocess.Popen([sys.executable, '-m', 'tests.train.multiprocess_worker',
                             port, str(i), workdir], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
  return workdir, sorted(results, key=lambda r: r['process'])


def _one_process_reference():
  """The same global batches on one device: process p's indices offset by its shard."""
  data = helpers.tiny_data(32)
  _, loss_fn, state = helpers.tiny_classifier()
  driver = parallel.DataParallel(loss_fn, devices=jax.devices()[:1])
  state = driver.put_replicated(state)
  device_data = driver.put_replicated(data)
  per_process = [worker.plans(p, 2, 16) for p in range(2)]
  idx = np.concatenate([per_process[p][0] + 16 * p for p in range(2)], axis=1)
  mask = np.concatenate([per_process[p][1] for p in range(2)], axis=1)
  for s in range(worker.STEPS):
    state, _ = driver.train(state, device_data, idx[s:s + 1], mask[s:s + 1],
                            jax.random.key(5))
  return data, state


def test_each_process_reads_its_own_shard(two_process_run):
  _, (r0, r1) = two_process_run
  data = helpers.tiny_data(32)
  assert r0['labels'] == data['label'][:16].tolist()
  assert r1['labels'] == data['label'][16:].tolist()
  assert r0['count'] == r1['count'] == 16.0  # Global batch: 8 per process.


def test_two_processes_equal_one_process(two_process_run):
  workdir, (r0, r1) = two_process_run
  _, state = _one_process_reference()
  expected = np.asarray(state.params['fc2']['bias'])
  np.testing.assert_allclose(r0['fc2_bias'], expected, atol=2e-5)
  np.testing.assert_allclose(r1['fc2_bias'], r0['fc2_bias'], atol=0)
  # The checkpoint the two processes wrote together restores on one device.
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  restored = checkpointer.restore(worker.STEPS, state)
  checkpointer.close()
  for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params)):
    np.testing.assert_allclose(a, b, atol=2e-5)
