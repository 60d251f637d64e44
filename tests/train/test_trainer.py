"""The trainer, on a family small enough to train in a second: a line fitted by least squares."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
from typing import Any

import chex
import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import shared_config
from research.errors import NonFiniteLossError
from research.errors import UserInputError
from research.train import batch_plans
from research.train import checkpoint as checkpoint_lib
from research.train import trainer
from research.train import workdir as workdir_lib

NUM = 16  # Training examples.
BATCH = 4  # So 4 steps per epoch.


def _config(num_epochs: int, skip_nonfinite: bool = False) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  shared_config.add_training_fields(
    c,
    num_epochs=num_epochs,
    batch_size=BATCH,
    eval_batch_size=BATCH,
    log_every_steps=0,
    steps_per_dispatch=3,
    progress=False,
    microbatches=1,
  )
  c.optimizer = shared_config.optimizer_section(
    learning_rate=0.1, weight_decay=0.0, skip_nonfinite=skip_nonfinite
  )
  return c


@dataclasses.dataclass
class _Line:
  """y = x @ (2, -1) + 0.5, fitted by one Dense layer."""

  config: Any
  poisoned: int | None = None  # An example whose target is NaN.
  sampling: str = 'epochs'
  num_train: int = NUM
  name: str = 'line'
  eval_split: str = 'test'

  def load_data(self) -> trainer.TrainData:
    x = np.random.default_rng(0).normal(size=(self.num_train, 2)).astype(np.float32)
    y = x @ np.array([2.0, -1.0], np.float32) + 0.5
    if self.poisoned is not None:
      y[self.poisoned] = np.nan
    return trainer.TrainData({'x': x, 'y': y}, self.num_train, self.sampling)

  def build(self, data: trainer.TrainData) -> trainer.Model:
    module = nn.Dense(1)

    def loss_fn(params, batch, rng, train):
      del rng, train
      err_B = (module.apply({'params': params}, batch['x'])[:, 0] - batch['y']) ** 2
      return {'loss': ((err_B * batch['mask']).sum(), batch['mask'].sum())}, {}

    init = lambda rng: module.init(rng, jnp.zeros((1, 2)))['params']
    return trainer.Model(module, init, loss_fn)

  def evaluate(self, run, state, step) -> dict[str, float]:
    return {}

  def report(self, run, state) -> dict[str, Any]:
    return {}


def _first_step_reading(example: int, num_epochs: int) -> int:
  """The 1-based step of the run whose batch first holds `example`."""
  source = batch_plans.IndexSource(NUM, BATCH)
  for s in range(num_epochs * source.steps_per_epoch):
    idx, mask = source.chunk(s, 1)
    if (idx[mask > 0] == example).any():
      return s + 1
  raise AssertionError('never read')


def test_train_in_memory_fits_the_line_and_keeps_an_epoch_history():
  run, state = trainer.train_in_memory(_Line(_config(num_epochs=25)), log=lambda _: None)
  assert run.total_steps == 100 and int(state.step) == 100
  assert [h['epoch'] for h in run.history] == list(range(1, 26))
  assert run.history[-1]['loss'] < 1e-3 * run.history[0]['loss']
  np.testing.assert_allclose(state.params['kernel'][:, 0], [2.0, -1.0], atol=0.05)


def test_a_non_finite_loss_stops_the_run_naming_its_step():
  expected = _first_step_reading(5, num_epochs=2)
  with pytest.raises(NonFiniteLossError, match=f'loss is nan at step {expected}$'):
    trainer.train_in_memory(_Line(_config(num_epochs=2), poisoned=5), log=lambda _: None)


def test_skip_nonfinite_drops_every_step_that_reads_the_bad_example():
  family = _Line(_config(num_epochs=3, skip_nonfinite=True), poisoned=5)
  run, state = trainer.train_in_memory(family, log=lambda _: None)
  assert int(state.step) == 12
  assert run.skipped_steps == 3  # One step per epoch reads example 5.
  chex.assert_tree_all_finite(state.params)


def test_empty_training_data_is_rejected_before_anything_compiles():
  with pytest.raises(UserInputError, match='training data is empty'):
    trainer.train_in_memory(_Line(_config(num_epochs=1), num_train=0), log=lambda _: None)


def test_an_unknown_sampling_is_rejected():
  with pytest.raises(ValueError, match='sampling must be one of'):
    trainer.train_in_memory(_Line(_config(num_epochs=1), sampling='shuffled'), log=lambda _: None)


QUIET = lambda _: None


@pytest.mark.parametrize(
  'fields, saved',
  [
    ({}, [4]),  # One epoch: its end is the end of the run.
    ({'num_epochs': 2, 'checkpoint_at_epoch_end': False}, [8]),
    ({'num_epochs': 2, 'checkpoint_every_steps': 3, 'checkpoint_at_epoch_end': False}, [3, 6, 8]),
    ({'num_epochs': 2, 'checkpoint_every_steps': 3}, [3, 4, 6, 8]),
    ({'num_epochs': 2, 'eval_every_steps': 3, 'checkpoint_at_epoch_end': False}, [3, 6, 8]),
    ({'num_epochs': 2, 'eval_every_steps': 3, 'checkpoint_at_eval': False}, [4, 8]),
  ],
)
def test_checkpoints_only_at_the_steps_asked_for(fields, saved, tmp_path, monkeypatch):
  config = _config(num_epochs=1)
  config.update(dict(fields, log_every_steps=1))  # Every step is a loop boundary.
  steps = []
  save = checkpoint_lib.Checkpointer.save
  monkeypatch.setattr(
    checkpoint_lib.Checkpointer, 'save', lambda c, step, s: (steps.append(step), save(c, step, s))
  )
  trainer.train_and_evaluate(_Line(config), str(tmp_path), log=QUIET)
  assert steps == saved
  assert sorted(int(d) for d in os.listdir(tmp_path / 'checkpoints')) == saved[-3:]


def _ended_pid() -> int:
  child = subprocess.Popen([sys.executable, '-c', 'pass'])
  child.wait()
  return child.pid


def test_one_live_run_per_workdir_and_a_gone_owner_s_lock_is_taken_over(tmp_path):
  lock = tmp_path / workdir_lib.LOCK_NAME
  live = {'host': socket.gethostname(), 'pid': os.getpid(), 'process_index': 0, 'started': 'x'}
  lock.write_text(json.dumps(live))  # A run of this (live) process holds the workdir.
  with pytest.raises(UserInputError, match=f'in use by a live run .*pid {os.getpid()}'):
    trainer.train_and_evaluate(_Line(_config(num_epochs=1)), str(tmp_path), log=QUIET)
  assert sorted(os.listdir(tmp_path)) == [workdir_lib.LOCK_NAME]  # Nothing else written.
  lock.write_text(json.dumps(dict(live, pid=_ended_pid())))
  lines = []
  trainer.train_and_evaluate(_Line(_config(num_epochs=1)), str(tmp_path), log=lines.append)
  assert any(line.startswith('Taking over the lock') for line in lines)
  assert not lock.exists()  # Released at the end.


def test_the_lock_is_released_when_the_run_fails(tmp_path):
  with pytest.raises(NonFiniteLossError):
    trainer.train_and_evaluate(_Line(_config(num_epochs=1), poisoned=5), str(tmp_path), log=QUIET)
  assert not (tmp_path / workdir_lib.LOCK_NAME).exists()
