"""A two-layer perceptron family small enough to train in a second, whose FLOPs per
step are known from its layer arithmetic (the efficiency and profiling tests)."""

import dataclasses
import json
import pathlib
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import shared_config
from research.train import trainer

IN, HIDDEN, OUT = 64, 256, 32


def matmul_flops(batch: int) -> int:
  """Multiply-adds x 2 of one train step on `batch` examples: the forward's two
  matmuls; backward, both weight gradients and the hidden layer's input gradient
  (the input needs none)."""
  forward = 2 * batch * (IN * HIDDEN + HIDDEN * OUT)
  backward = 2 * batch * (IN * HIDDEN + 2 * HIDDEN * OUT)
  return forward + backward


class MLP(nn.Module):
  """x_BxIN -> relu(x W1) W2, no biases."""

  @nn.compact
  def __call__(self, x_BxI):
    h_BxH = nn.relu(nn.Dense(HIDDEN, use_bias=False, name='hidden')(x_BxI))
    return nn.Dense(OUT, use_bias=False, name='out')(h_BxH)


def config(**fields) -> ml_collections.ConfigDict:
  """A 16-example, batch-4 run (4 steps an epoch) with `fields` overridden."""
  c = ml_collections.ConfigDict()
  defaults = dict(
    num_epochs=2, batch_size=4, eval_batch_size=4, steps_per_dispatch=3, progress=False
  )
  shared_config.add_training_fields(c, **dict(defaults, microbatches=1, **fields))
  c.optimizer = shared_config.optimizer_section(name='sgd', learning_rate=1e-3)
  return c


def loss_fn(params, batch, rng, train):
  """Summed squared error of `MLP` (see `research.train.steps`)."""
  del rng, train
  err_B = ((MLP().apply({'params': params}, batch['x']) - batch['y']) ** 2).sum(-1)
  return {'loss': ((err_B * batch['mask']).sum(), batch['mask'].sum())}, {}


@dataclasses.dataclass
class Family:
  """The trainer family of `MLP` on random data."""

  config: Any
  num_train: int = 16
  name: str = 'mlp'
  eval_split: str = 'test'

  def load_data(self) -> trainer.TrainData:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(self.num_train, IN)).astype(np.float32)
    y = rng.normal(size=(self.num_train, OUT)).astype(np.float32)
    return trainer.TrainData({'x': x, 'y': y}, self.num_train)

  def build(self, data: trainer.TrainData) -> trainer.Model:
    init = lambda rng: MLP().init(rng, jnp.zeros((1, IN)))['params']
    return trainer.Model(MLP(), init, loss_fn)

  def evaluate(self, run, state, step) -> dict[str, float]:
    return {}

  def report(self, run, state) -> dict[str, Any]:
    return {}


def train_rows(workdir: pathlib.Path) -> list[dict[str, Any]]:
  """The 'train' records of a run's metrics.jsonl."""
  rows = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [r for r in rows if r['split'] == 'train']
