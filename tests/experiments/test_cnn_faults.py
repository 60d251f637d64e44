"""Faults of the CNN experiment: SIGTERM mid-epoch, broken checkpoints, NaNs, bad workdirs."""

import errno
import os
import signal
import subprocess
import sys
import time

from etils import epath
import jax
import numpy as np
import pytest

from research import families
from research.errors import UserInputError
from tests.experiments.test_cnn_main import ROOT
from tests.experiments.test_cnn_main import final_params
from tests.experiments.test_cnn_main import tiny_config

QUIET = lambda _: None


def _assert_same_params(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)  # Bit-identical on CPU.


def test_sigterm_mid_epoch_then_resume_equals_uninterrupted(offline_data_dir, tmp_path):
  flags = [
    f'--config.data_dir={offline_data_dir}',
    '--config.train_split=train[:384]',
    '--config.test_split=test[:16]',
    '--config.image_size=16',
    '--config.num_epochs=2',
    '--config.batch_size=8',
    '--config.eval_batch_size=16',
    '--config.model.hidden_dim=32',
    '--config.progress=False',
    '--config.checkpoint_every_steps=5',
  ]
  run = lambda workdir, *extra: subprocess.Popen(
    [sys.executable, '-m', 'experiments.cnn.main', f'--workdir={workdir}', *flags, *extra],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  interrupted = tmp_path / 'interrupted'
  proc = run(interrupted)
  deadline = time.time() + 240
  while not (interrupted / 'checkpoints' / '5').exists() and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=240)
  assert proc.returncode == 0, err[-2000:]
  assert 'rerun with --resume' in err
  stopped_at = max(int(d) for d in os.listdir(interrupted / 'checkpoints') if d.isdigit())
  assert 5 <= stopped_at < 96 and stopped_at % 48, stopped_at  # Mid-epoch.

  proc = run(interrupted, '--resume')
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  straight = tmp_path / 'straight'
  proc = run(straight)
  proc.communicate(timeout=300)
  (s1, p1), (s2, p2) = final_params(interrupted), final_params(straight)
  assert s1 == s2 == 96
  _assert_same_params(p1, p2)


def test_corrupt_newest_checkpoint_is_reported_and_skipped(offline_data_dir, tmp_path):
  families.train_and_evaluate('cnn', tiny_config(offline_data_dir, 2), str(tmp_path), log=QUIET)
  newest = tmp_path / 'checkpoints' / '6'
  for root, _, files in os.walk(newest):
    for name in files:
      with open(os.path.join(root, name), 'r+b') as f:
        f.truncate(0)  # A crash that left empty files behind.
  lines = []
  families.train_and_evaluate(
    'cnn', tiny_config(offline_data_dir, 2), str(tmp_path), resume=True, log=lines.append
  )
  assert any(line.startswith('Checkpoint at step 6 could not be restored') for line in lines)
  assert 'Resumed from the checkpoint at step 3.' in lines
  assert any(line.startswith('[Epoch 2]') for line in lines)  # Epoch 2 trained again.


# Non-finite losses (stop naming the step, or skip): tests/train/test_trainer_matrix.py.


def test_resume_refuses_another_model_shape(offline_data_dir, tmp_path):
  families.train_and_evaluate('cnn', tiny_config(offline_data_dir, 1), str(tmp_path), log=QUIET)
  files = sorted(os.listdir(tmp_path))
  wider = tiny_config(offline_data_dir, 2)
  wider.model.hidden_dim = 64
  with pytest.raises(UserInputError, match='parameter counts'):
    families.train_and_evaluate('cnn', wider, str(tmp_path), resume=True, log=QUIET)
  assert sorted(os.listdir(tmp_path)) == files


def test_a_checkpoint_that_cannot_be_written_stops_in_one_line_keeping_the_last(
  offline_data_dir, tmp_path, monkeypatch, capfd
):
  path_class = type(epath.Path(tmp_path))
  write_text = path_class.write_text

  def disk_full_at_step_6(self, *args, **kwargs):  # Orbax's background thread writes.
    if '/checkpoints/6.' in str(self):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write_text(self, *args, **kwargs)

  monkeypatch.setattr(path_class, 'write_text', disk_full_at_step_6)
  with pytest.raises(UserInputError) as failed:
    families.train_and_evaluate('cnn', tiny_config(offline_data_dir, 2), str(tmp_path), log=QUIET)
  message = str(failed.value)
  assert '\n' not in message and 'at step 6' in message
  assert 'No space left on device' in message and 'last good checkpoint, step 3' in message
  assert 'Traceback' not in capfd.readouterr().err  # Orbax's own error logs are dropped.
  monkeypatch.undo()
  lines = []
  families.train_and_evaluate(
    'cnn', tiny_config(offline_data_dir, 2), str(tmp_path), resume=True, log=lines.append
  )
  assert 'Resumed from the checkpoint at step 3.' in lines
  assert sorted(os.listdir(tmp_path / 'checkpoints'))[:2] == ['3', '6']
