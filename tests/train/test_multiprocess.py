"""Two processes on localhost (jax.distributed, gloo) == one process on the same data;
checkpoints move between 8 devices, 2 processes and 1 device."""

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
from tests.train import family_setups
from tests.workers import checkpoint_topology_worker as topology
from tests.workers import multiprocess_worker as worker

# Its session-scoped runs happen once: all its tests on one pytest-xdist worker
# (scripts/test.sh uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('test_multiprocess')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _eight_devices(*args):
  env = dict(os.environ, XLA_FLAGS=helpers.xla_flags(8), JAX_PLATFORMS='cpu')
  out = subprocess.run(
    [sys.executable, '-m', 'tests.workers.checkpoint_topology_worker', *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='session')
def two_process_run(tmp_path_factory):
  """Saves on 8 devices; then 2 processes restore that and save their own; then 8
  devices restore the 2-process checkpoint."""
  workdir = str(tmp_path_factory.mktemp('two_process'))
  eight_workdir = str(tmp_path_factory.mktemp('eight_devices'))
  saved_on_8 = _eight_devices('save', eight_workdir)
  env = dict(os.environ, XLA_FLAGS=helpers.xla_flags(2), JAX_PLATFORMS='cpu')
  port = str(_free_port())
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        '-m',
        'tests.workers.multiprocess_worker',
        port,
        str(i),
        workdir,
        eight_workdir,
      ],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs, strict=True):
    assert p.returncode == 0, err[-3000:]
  results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
  restored_on_8 = _eight_devices('restore', workdir, str(worker.STEPS))
  return {
    'workdir': workdir,
    'eight_workdir': eight_workdir,
    'saved_on_8': saved_on_8,
    'restored_on_8': restored_on_8,
    'processes': sorted(results, key=lambda r: r['process']),
  }


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
    state, _ = driver.train(state, device_data, idx[s : s + 1], mask[s : s + 1], jax.random.key(5))
  return data, state


def test_each_process_reads_its_own_shard(two_process_run):
  r0, r1 = two_process_run['processes']
  data = helpers.tiny_data(32)
  assert r0['labels'] == data['label'][:16].tolist()
  assert r1['labels'] == data['label'][16:].tolist()
  assert r0['count'] == r1['count'] == 16.0  # Global batch: 8 per process.


def test_two_processes_equal_one_process(two_process_run):
  workdir = two_process_run['workdir']
  r0, r1 = two_process_run['processes']
  _, state = _one_process_reference()
  expected = np.asarray(state.params['fc2']['bias'])
  np.testing.assert_allclose(r0['fc2_bias'], expected, atol=2e-5)
  np.testing.assert_allclose(r1['fc2_bias'], r0['fc2_bias'], atol=0)
  # The checkpoint the two processes wrote together restores on one device.
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  restored = checkpointer.restore(worker.STEPS, state)
  checkpointer.close()
  for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params), strict=True):
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_transformer_on_two_processes_equals_one_process(two_process_run):
  r0, r1 = two_process_run['processes']
  loss_fn, _, state, data = family_setups.transformer_seq2seq()
  driver = parallel.DataParallel(loss_fn, devices=jax.devices()[:1])
  state = driver.put_replicated(state)
  device_data = driver.put_replicated(data)
  per_process = [worker.plans(p, 2, 20) for p in range(2)]
  idx = np.concatenate([per_process[p][0] + 20 * p for p in range(2)], axis=1)
  mask = np.concatenate([per_process[p][1] for p in range(2)], axis=1)
  for s in range(worker.STEPS):
    state, _ = driver.train(state, device_data, idx[s : s + 1], mask[s : s + 1], jax.random.key(6))
  expected = topology.digest(state.params)
  assert r0['transformer'] == r1['transformer']
  assert r0['transformer'].keys() == expected.keys()
  for name, values in expected.items():
    np.testing.assert_allclose(r0['transformer'][name], values, rtol=1e-4, atol=1e-5, err_msg=name)


def test_checkpoints_move_between_8_devices_2_processes_and_1_device(two_process_run):
  run = two_process_run
  r0, r1 = run['processes']
  saved_on_8 = run['saved_on_8']['digest']
  # 8 devices (FSDP-sharded) -> 2 processes: bit-identical on both.
  assert r0['restored_from_8_devices'] == saved_on_8
  assert r1['restored_from_8_devices'] == saved_on_8
  # 2 processes -> 8 devices (FSDP-sharded): bit-identical.
  assert run['restored_on_8']['step'] == worker.STEPS
  assert run['restored_on_8']['digest'] == r0['digest']
  # 8 devices -> 1 device.
  _, _, state = helpers.tiny_classifier()
  checkpointer = checkpoint_lib.Checkpointer(run['eight_workdir'])
  restored = checkpointer.restore(topology.SAVE_STEP, state)
  checkpointer.close()
  assert topology.digest(restored.params) == saved_on_8
  # A real change of values, not the initial parameters read back.
  assert topology.digest(state.params) != saved_on_8
