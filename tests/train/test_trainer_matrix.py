"""Every family through the one trainer, in every layout and fault (2 CPU devices).

Each family runs in its own subprocess (tests/train/trainer_matrix_worker.py) with
two forced CPU devices: the jit and pmap drivers, fsdp, two micro-batches and bf16
compute against the baseline; SIGTERM mid-run then --resume against an
uninterrupted run; a poisoned example with and without skip_nonfinite.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Families whose training draws no per-example noise: layouts must agree to round-off.
# The DDPM draws noise and time steps from the step key, which the pmap driver folds
# with the device index and micro-batches with the part index; its parameters agree
# with the baseline only under jit layouts that keep the key (fsdp).
DETERMINISTIC = ('cnn', 'lstm', 'gru', 'transformer')
STEPS = {'cnn': 8, 'lstm': 8, 'gru': 8, 'transformer': 8, 'ddpm': 4}


@pytest.fixture(name='matrix', scope='module', params=DETERMINISTIC + ('ddpm',))
def _matrix(request, offline_data_dir, tmp_path_factory):
  tmp = tmp_path_factory.mktemp(request.param)
  out = tmp / 'result.json'
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2',
             XLA_FLAGS='--xla_force_host_platform_device_count=2')
  run = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'train',
                                                     'trainer_matrix_worker.py'),
                        request.param, str(tmp), offline_data_dir, str(out)],
                       env=env, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stderr[-4000:]
  return request.param, json.loads(out.read_text())


def test_layouts_agree(matrix):
  name, r = matrix
  assert r['base_finite'] and r['steps'] == STEPS[name]
  assert r['fsdp'] < 1e-4, 'fsdp must equal replicated parameters'
  if name in DETERMINISTIC:
    assert r['pmap'] < 1e-5, 'the pmap driver must equal the jit driver'
    assert r['micro2'] < 1e-4, 'two micro-batches must equal one'
  else:
    assert 0 < r['pmap'] < 1.0 and 0 < r['micro2'] < 1.0


def test_bf16_computes_in_bf16_with_float32_parameters(matrix):
  _, r = matrix
  assert r['bf16_dtypes'] == ['float32']
  assert 1e-6 < r['bf16'] < 0.5, 'bf16 compute must change the result, a little'


def test_sigterm_then_resume_is_bitwise_equal(matrix):
  _, r = matrix
  assert r['preempted_at'] == 3  # SIGTERM during step 2's hook; step 3 was in flight.
  assert r['resume_bitwise_equal']


def test_non_finite_loss_stops_naming_the_step_or_is_skipped(matrix):
  _, r = matrix
  assert r['nonfinite_message'] == (f'training loss is nan at step '
                                    f'{r["first_poisoned_step"]}')
  assert r['skip_finite'] and r['skip_steps'] == r['steps'] and r['skipped'] >= 1
