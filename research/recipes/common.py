"""Pieces every recipe shares: typed settings from a config, state restore, dtypes."""

import dataclasses
import json
from typing import Any, Mapping

import jax.numpy as jnp

from research.errors import UserInputError
from research.train import checkpoint as checkpoint_lib
from research.train import optimizers

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str):
  """'float32' | 'bfloat16' -> the jnp dtype."""
  if name not in DTYPES:
    raise UserInputError(f'unknown dtype {name!r}: use one of {sorted(DTYPES)}')
  return DTYPES[name]


def to_dict(config: Any) -> dict[str, Any]:
  """A ConfigDict (or mapping) as plain, JSON-serialisable nested dicts."""
  if hasattr(config, 'to_dict'):
    config = config.to_dict()
  return json.loads(json.dumps(dict(config), default=str))


def optimizer_config(config: Mapping[str, Any], total_steps: int
                     ) -> optimizers.OptimizerConfig:
  """The OptimizerConfig from an experiment's `optimizer` section.

  A schedule length (`total_steps`) of 0 means: the whole run.
  """
  values = dict(config)
  if not values.get('total_steps'):
    values['total_steps'] = total_steps
  known = {f.name for f in dataclasses.fields(optimizers.OptimizerConfig)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise UserInputError(f'unknown optimizer settings {unknown}: allowed are {sorted(known)}')
  return optimizers.OptimizerConfig(**values)


def restore_if_resuming(checkpointer: checkpoint_lib.Checkpointer, state: Any,
                        resume: bool, log=print) -> Any:
  """Returns the newest restorable checkpointed state when `resume`, else `state`.

  Raises:
    UserInputError: if checkpoints exist but none fits the configured model.
  """
  if not resume:
    return state
  try:
    step, restored = checkpointer.restore_latest(state, log)
  except ValueError as e:
    raise UserInputError(f'no checkpoint in {checkpointer.directory} fits this config '
                         f'(another model or data set?): {e}') from None
  log('No checkpoint to resume from: starting from scratch.' if step is None else
      f'Resumed from the checkpoint at step {step}.')
  return restored
