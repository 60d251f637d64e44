"""Typed run settings shared by every family, read from an experiment's config.

Every experiment config has the same top-level training fields (see
`experiments/shared_config.py`) and an `optimizer` section. `train_settings`,
`optimizer_config` and `model_settings` turn them into frozen dataclasses that
validate themselves, so a bad value fails once, here, with a message naming the field.
"""

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp

from research.errors import UserInputError
from research.train import input_pipeline
from research.train import optimizers
from research.train import parallel
from research.train import profiling

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str):
  """'float32' | 'bfloat16' -> the jnp dtype."""
  if name not in DTYPES:
    raise UserInputError(f'unknown dtype {name!r}: use one of {sorted(DTYPES)}')
  return DTYPES[name]


def _at_least(name: str, value: float, low: float) -> None:
  if value < low:
    raise UserInputError(f'{name} must be >= {low}, got {value}')


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """How long, in what batches, on which devices and with which hooks to train.

  Attributes:
    seed: PRNG seed of parameters, dropout and data order.
    num_epochs: passes over the training data (0: count `num_steps` instead).
    num_steps: optimiser steps when `num_epochs` is 0.
    batch_size: global training batch (all devices of all processes).
    eval_batch_size: global evaluation batch.
    eval_every_steps: the family's periodic evaluation every N steps (0: off).
    eval_every_epochs: the same, counted in epochs (0: off).
    checkpoint_every_steps: checkpoint every N steps (0: off). A run also
      checkpoints at its end and when it stops early (preemption, time budget).
    checkpoint_at_epoch_end: also checkpoint at every epoch end.
    checkpoint_at_eval: also checkpoint after every periodic evaluation.
    log_every_steps: per-step scalars (loss, learning rate, gradient norm,
      throughput) to TensorBoard and metrics.jsonl every N steps (0: off).
    steps_per_dispatch: train steps per compiled call.
    max_train_seconds: stop training after this long and report (0: no limit).
    progress: a progress bar on a terminal (a line per log interval otherwise).
    driver: 'jit' (one program over a device mesh) or 'pmap'.
    fsdp: shard parameters and optimiser state over the devices (jit only).
    fsdp_min_size: under fsdp, arrays with fewer elements stay replicated.
    microbatches: independent parts per device train batch (0: automatic).
    input_pipeline: 'device' (the split on the devices, batches gathered in the
      step), 'stream' (batches gathered on the host and streamed; jit driver) or
      'auto' (see `research.train.input_pipeline`).
    profile_steps: '' (off) or 'START:END': a `jax.profiler` trace of train steps
      START .. END - 1 in `<workdir>/profile/` (see `research.train.profiling`).
    peak_tflops_per_device: the peak MFU is measured against (0: looked up by
      device kind and compute dtype, or measured on CPU; see
      `research.train.efficiency`).
  """

  seed: int = 0
  num_epochs: int = 1
  num_steps: int = 0
  batch_size: int = 64
  eval_batch_size: int = 256
  eval_every_steps: int = 0
  eval_every_epochs: int = 0
  checkpoint_every_steps: int = 0
  checkpoint_at_epoch_end: bool = True
  checkpoint_at_eval: bool = True
  log_every_steps: int = 50
  steps_per_dispatch: int = 1
  max_train_seconds: float = 0.0
  progress: bool = True
  driver: str = 'jit'
  fsdp: bool = False
  fsdp_min_size: int = 2**14
  microbatches: int = 0
  input_pipeline: str = 'device'
  profile_steps: str = ''
  peak_tflops_per_device: float = 0.0

  def __post_init__(self):
    if self.num_epochs < 0 or self.num_steps < 0 or not (self.num_epochs or self.num_steps):
      raise UserInputError(
        'set num_epochs >= 1, or num_epochs = 0 and num_steps >= 1; '
        f'got num_epochs={self.num_epochs}, num_steps={self.num_steps}'
      )
    for name in ('batch_size', 'eval_batch_size', 'steps_per_dispatch'):
      _at_least(name, getattr(self, name), 1)
    for name in (
      'eval_every_steps',
      'eval_every_epochs',
      'checkpoint_every_steps',
      'log_every_steps',
      'max_train_seconds',
      'microbatches',
      'fsdp_min_size',
      'peak_tflops_per_device',
    ):
      _at_least(name, getattr(self, name), 0)
    if self.driver not in parallel.DRIVERS:
      raise UserInputError(f'unknown driver {self.driver!r}: use one of {sorted(parallel.DRIVERS)}')
    if self.fsdp and self.driver != 'jit':
      raise UserInputError('fsdp=True needs driver=jit')
    if self.input_pipeline not in input_pipeline.PIPELINES:
      raise UserInputError(
        f'unknown input_pipeline {self.input_pipeline!r}: '
        f'use one of {list(input_pipeline.PIPELINES)}'
      )
    if self.input_pipeline == 'stream' and self.driver != 'jit':
      raise UserInputError('input_pipeline=stream needs driver=jit')
    profiling.parse_steps(self.profile_steps)

  @property
  def profile_window(self) -> tuple[int, int] | None:
    """`profile_steps` as (START, END), or None when off."""
    return profiling.parse_steps(self.profile_steps)


def _dataclass_from(cls, values: Mapping[str, Any], where: str):
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise UserInputError(f'unknown {where} settings {unknown}: allowed are {sorted(known)}')
  return cls(**values)


def train_settings(config: Any) -> TrainSettings:
  """The TrainSettings of a config's top-level training fields (others are ignored)."""
  names = {f.name for f in dataclasses.fields(TrainSettings)}
  return TrainSettings(**{k: config[k] for k in names if k in config})


def optimizer_config(
  section: Mapping[str, Any], total_steps: int, steps_per_epoch: int = 0
) -> optimizers.OptimizerConfig:
  """The OptimizerConfig of an `optimizer` section; total_steps 0 means the whole run.

  Raises:
    UserInputError: for a field OptimizerConfig does not have.
  """
  values = dict(section)
  if not values.get('total_steps'):
    values['total_steps'] = total_steps
  if not values.get('steps_per_epoch'):
    values['steps_per_epoch'] = steps_per_epoch
  return _dataclass_from(optimizers.OptimizerConfig, values, 'optimizer')


def model_settings(cls, section: Mapping[str, Any], **extra):
  """A family's frozen model config from its `model` section plus data-derived fields.

  'dtype' names are turned into jnp dtypes; ValueErrors of the dataclass's own
  checks become UserInputErrors.
  """
  values = dict(section, **extra)
  if 'dtype' in values:
    values['dtype'] = compute_dtype(values['dtype'])
  for k, v in values.items():
    if isinstance(v, list):
      values[k] = tuple(v)
  try:
    return _dataclass_from(cls, values, 'model')
  except UserInputError:
    raise
  except (ValueError, TypeError) as e:
    raise UserInputError(f'model: {e}') from None
