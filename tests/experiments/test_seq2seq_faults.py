"""Faults of the seq2seq experiment: broken checkpoints, divergence, a foreign workdir.

SIGTERM and --resume through this entry point are tested on two processes at once
(tests/train/test_multiprocess_preemption.py) and, for every family, by the trainer
matrix (tests/train/test_trainer_matrix.py).
"""

import os
import subprocess
import sys

import orbax.checkpoint as ocp

from tests.experiments.test_seq2seq_main import ROOT
from tests.experiments.test_seq2seq_main import TINY

SMALL = [
  *TINY,
  '--config.num_epochs=3',
  '--config.generated.num_train=256',
  '--config.batch_size=8',
  '--config.steps_per_dispatch=1',
  '--config.checkpoint_every_steps=4',
  '--config.task=reverse',
]


def _start(workdir, *extra):
  return subprocess.Popen(
    [sys.executable, '-m', 'experiments.seq2seq.main', f'--workdir={workdir}', *SMALL, *extra],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _steps(workdir):
  return sorted(int(d) for d in os.listdir(workdir / 'checkpoints') if d.isdigit())


def _params(workdir, step):
  path = workdir / 'checkpoints' / str(step) / 'default'
  return ocp.StandardCheckpointer().restore(str(path))['params']


def test_divergence_stops_and_keeps_the_last_checkpoint(tmp_path):
  proc = _start(
    tmp_path,
    '--config.optimizer.learning_rate=1e30',
    '--config.optimizer.clip_grad_norm=0',
    '--config.optimizer.warmup_steps=0',
    '--config.optimizer.schedule=constant',
  )
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 1 and 'Traceback' not in err
  last = err.strip().splitlines()[-1]
  assert last.startswith('error: training ') and ' at step ' in last, last
  for step in _steps(tmp_path):  # Whatever was saved before is complete and readable.
    _params(tmp_path, step)


def test_resume_in_another_experiments_workdir_is_refused(tmp_path):
  (tmp_path / 'manifest.json').write_text('{"experiment": "cnn", "parameters": {}}')
  (tmp_path / 'checkpoints' / '10').mkdir(parents=True)
  proc = _start(tmp_path, '--resume')
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 1
  assert err.strip().splitlines()[-1] == (
    f"error: workdir '{tmp_path}' belongs to experiment 'cnn', not 'seq2seq'"
  )
  assert (tmp_path / 'checkpoints' / '10').is_dir()


def test_truncated_newest_checkpoint_is_skipped(tmp_path):
  proc = _start(tmp_path, '--config.num_epochs=1')
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  newest = _steps(tmp_path)[-1]
  for root, _, files in os.walk(tmp_path / 'checkpoints' / str(newest)):
    for name in files:
      with open(os.path.join(root, name), 'r+b') as f:
        f.truncate(0)
  proc = _start(tmp_path, '--config.num_epochs=2', '--resume')
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  assert f'Checkpoint at step {newest} could not be restored' in out
  # Checkpoints come every 4 steps: the one before the broken one is used.
  assert f'Resumed from the checkpoint at step {newest - 4}.' in out
