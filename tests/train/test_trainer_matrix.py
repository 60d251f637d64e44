"""Every family through the one trainer, in every layout and fault (2 CPU devices).

Each family runs in its own subprocess (tests/workers/trainer_matrix_worker.py) with
two forced CPU devices: the jit and pmap drivers, fsdp, two micro-batches, bf16
compute and the 'stream' input pipeline against the baseline (the DDPM, whose noise
differs under pmap and micro-batches, skips those two); SIGTERM mid-run then
--resume against an uninterrupted run; a poisoned example with and without
skip_nonfinite. One test per family, so that pytest-xdist runs each family's
subprocess once.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Families whose training draws no per-example noise: layouts must agree to round-off.
# The DDPM draws noise and time steps from the step key, which the pmap driver folds
# with the device index and micro-batches with the part index; its parameters agree
# with the baseline only under jit layouts that keep the key (fsdp).
# 'gru_streams' carries its recurrent state across steps (truncated BPTT, 2 epochs of
# 4 windows a stream): every layout must agree on the carry too, and resume restores it.
DETERMINISTIC = ('cnn', 'lstm', 'gru_streams', 'transformer')
STEPS = {'cnn': 8, 'lstm': 8, 'gru_streams': 8, 'transformer': 8, 'ddpm': 4}


def _run_matrix(name, data_dir, tmp):
  out = tmp / 'result.json'
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2', XLA_FLAGS=helpers.xla_flags(2))
  run = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, 'tests', 'workers', 'trainer_matrix_worker.py'),
      name,
      str(tmp),
      data_dir,
      str(out),
    ],
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert run.returncode == 0, run.stderr[-4000:]
  return json.loads(out.read_text())


@pytest.mark.parametrize('name', DETERMINISTIC + ('ddpm',))
def test_every_layout_and_fault(name, offline_data_dir, tmp_path):
  r = _run_matrix(name, offline_data_dir, tmp_path)
  # Layouts.
  assert r['base_finite'] and r['steps'] == STEPS[name]
  # The carried state (one (h,) carry per GRU layer) is among the compared arrays.
  assert r['carry_leaves'] == (1 if name == 'gru_streams' else 0), r
  assert (r['sampling'] == 'streams') == (name == 'gru_streams'), r
  # The options reached the driver (equality alone would pass if one were ignored).
  assert r['fsdp_layout'] == {
    'driver': 'DataParallel',
    'microbatches': 1,
    'sharded': True,
    'pipeline': 'device',
  }
  assert r['stream_layout']['pipeline'] == 'stream'
  assert r['fsdp'] < 1e-4, 'fsdp must equal replicated parameters'
  # The host pipeline trains on the examples the device gather picks, in the same order.
  assert r['stream'] < 1e-6, "input_pipeline='stream' must equal 'device'"
  if name in DETERMINISTIC:
    assert r['pmap_layout']['driver'] == 'PmapDataParallel'
    assert r['micro2_layout']['microbatches'] == 2
    assert r['pmap'] < 1e-5, 'the pmap driver must equal the jit driver'
    assert r['micro2'] < 1e-4, 'two micro-batches must equal one'
  else:  # The DDPM draws other noise under pmap and micro-batches: not run.
    assert 'pmap' not in r and 'micro2' not in r
  # bf16 compute: float32 parameters, a result that changes a little.
  assert r['bf16_dtypes'] == ['float32']
  assert 1e-6 < r['bf16'] < 0.5, 'bf16 compute must change the result, a little'
  # SIGTERM during step 2's hook (step 3 in flight), then --resume: bitwise equal.
  assert r['preempted_at'] == 3
  assert r['resume_bitwise_equal']
  # A poisoned example: the stop names its step; skip mode skips and finishes.
  assert r['nonfinite_message'] == (f'training loss is nan at step {r["first_poisoned_step"]}')
  assert r['skip_finite'] and r['skip_steps'] == r['steps'] and r['skipped'] >= 1
