"""Faults of the CNN experiment: SIGTERM mid-epoch, broken checkpoints, NaNs, bad workdirs."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from research.errors import UserInputError
from research.recipes import cnn_classifier
from research.train import checkpoint as checkpoint_lib
from research.train import loop
from research.train import parallel
from tests import helpers
from tests.experiments.test_cnn_main import ROOT, final_params, tiny_config

QUIET = lambda _: None


def _assert_same_params(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)  # Bit-identical on CPU.


def test_sigterm_mid_epoch_then_resume_equals_uninterrupted(offline_data_dir, tmp_path):
  flags = [f'--config.data_dir={offline_data_dir}', '--config.train_split=train[:384]',
           '--config.test_split=test[:16]', '--config.image_size=16',
           '--config.num_epochs=2', '--config.batch_size=8', '--config.eval_batch_size=16',
           '--config.model.hidden_dim=32', '--config.progress=False',
           '--config.checkpoint_every_steps=5']
  run = lambda workdir, *extra: subprocess.Popen(
      [sys.executable, '-m', 'experiments.cnn.main', f'--workdir={workdir}', *flags,
       *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
  cnn_classifier.train_and_evaluate(tiny_config(offline_data_dir, 2), str(tmp_path),
                                    log=QUIET)
  newest = tmp_path / 'checkpoints' / '6'
  for root, _, files in os.walk(newest):
    for name in files:
      with open(os.path.join(root, name), 'r+b') as f:
        f.truncate(0)  # A crash that left empty files behind.
  lines = []
  cnn_classifier.train_and_evaluate(tiny_config(offline_data_dir, 2), str(tmp_path),
                                    resume=True, log=lines.append)
  assert any(l.startswith('Checkpoint at step 6 could not be restored') for l in lines)
  assert 'Resumed from the checkpoint at step 3.' in lines
  assert any(l.startswith('[Epoch 2]') for l in lines)  # Epoch 2 trained again.


def _poisoned(n=32):
  data = helpers.tiny_data(n)
  image = data['image'].astype(np.float32)
  image[5] = np.nan  # uint8 -> float images keep the NaN through preprocessing.
  return dict(data, image=image)


def test_nan_batch_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
  _, loss_fn, state = helpers.tiny_classifier()
  driver = parallel.DataParallel(loss_fn)
  cfg = loop.LoopConfig(num_epochs=2, batch_size=8, eval_batch_size=8, progress=False)
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path))
  clean = driver.put_replicated(helpers.tiny_data(32))
  state = loop.fit(driver, driver.put_replicated(state), clean, 32,
                   loop.LoopConfig(1, 8, 8, progress=False), jax.random.key(0),
                   checkpointer=checkpointer, log=QUIET)
  checkpointer.wait()
  saved = checkpointer.restore(4, state)
  with pytest.raises(loop.NonFiniteLossError, match=r'at step (5|6|7|8) \(epoch 2\)'):
    loop.fit(driver, state, driver.put_replicated(_poisoned()), 32, cfg,
             jax.random.key(0), start_step=4, checkpointer=checkpointer, log=QUIET)
  checkpointer.wait()
  assert checkpointer.latest_step() == 4
  _assert_same_params(checkpointer.restore(4, state).params, saved.params)


def test_skip_nonfinite_drops_the_bad_update():
  from research.train import optimizers  # pylint: disable=g-import-not-at-top
  opt = optimizers.OptimizerConfig(skip_nonfinite=True)
  _, loss_fn, state = helpers.tiny_classifier(optimizer=opt)
  driver = parallel.DataParallel(loss_fn)
  cfg = loop.LoopConfig(1, 8, 8, progress=False, skip_nonfinite=True)
  values = []
  state = loop.fit(driver, driver.put_replicated(state),
                   driver.put_replicated(_poisoned()), 32, cfg, jax.random.key(0),
                   on_epoch_end=lambda e, s, v: values.append(v), log=QUIET)
  assert values[0]['skipped_steps'] == 1 and np.isfinite(values[0]['loss'])
  chex_finite = all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))
  assert chex_finite and int(state.step) == 4


def test_resume_refuses_another_model_shape(offline_data_dir, tmp_path):
  cnn_classifier.train_and_evaluate(tiny_config(offline_data_dir, 1), str(tmp_path),
                                    log=QUIET)
  files = sorted(os.listdir(tmp_path))
  wider = tiny_config(offline_data_dir, 2)
  wider.model.hidden_dim = 64
  with pytest.raises(UserInputError, match='parameter counts'):
    cnn_classifier.train_and_evaluate(wider, str(tmp_path), resume=True, log=QUIET)
  assert sorted(os.listdir(tmp_path)) == files
