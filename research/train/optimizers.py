"""Optimisers and learning-rate schedules, all from optax, and a wrapper that keeps an
exponential moving average (EMA) of the parameters in the optimiser state.

The default is the seed's: Adam with PyTorch-style (coupled) weight decay, i.e. the L2
term `wd * param` is added to the gradient *before* Adam's moments see it.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from research.errors import UserInputError

OPTIMIZERS = ('adam', 'adamw', 'sgd', 'rmsprop')
SCHEDULES = ('constant', 'warmup_cosine', 'epoch_decay')


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimiser settings.

  Attributes:
    name: 'adam' (coupled L2 weight decay, PyTorch's `Adam(weight_decay=...)`),
      'adamw' (decoupled decay), 'sgd' (with momentum, coupled decay) or 'rmsprop'
      (coupled decay, PyTorch's alpha=0.99 and eps=1e-8 defaults).
    learning_rate: peak learning rate.
    weight_decay: decay coefficient (0 disables it).
    schedule: 'constant', 'warmup_cosine' or 'epoch_decay' (the rate held for
      `decay_after_epochs` epochs, then multiplied by `decay_rate` at the start of
      every later epoch: Zaremba et al. 2014's schedule).
    warmup_steps: linear warm-up length for 'warmup_cosine'.
    total_steps: schedule length for 'warmup_cosine' (decays to 0 at the end).
    decay_rate: 'epoch_decay''s factor per epoch.
    decay_after_epochs: 'epoch_decay''s epochs at the full rate (>= 1).
    steps_per_epoch: the run's steps per epoch (the trainer sets it).
    momentum: SGD momentum.
    b1: Adam's first-moment decay.
    b2: Adam's second-moment decay.
    eps: Adam's / RMSprop's epsilon.
    clip_grad_norm: clip gradients to this global norm first (None or 0: off).
    skip_nonfinite: skip (do not apply) updates whose gradient is not finite,
      via `optax.apply_if_finite`; training stops after 100 in a row.
  """

  name: str = 'adam'
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  schedule: str = 'constant'
  warmup_steps: int = 0
  total_steps: int = 0
  decay_rate: float = 0.5
  decay_after_epochs: int = 1
  steps_per_epoch: int = 0
  momentum: float = 0.9
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  clip_grad_norm: float | None = None
  skip_nonfinite: bool = False


def make_schedule(cfg: OptimizerConfig) -> optax.Schedule:
  """Returns the learning-rate schedule: a function step -> float32 scalar."""
  if cfg.learning_rate <= 0:
    raise UserInputError(f'learning_rate must be > 0, got {cfg.learning_rate}')
  if cfg.schedule == 'constant':
    return optax.constant_schedule(cfg.learning_rate)
  if cfg.schedule == 'warmup_cosine':
    if cfg.total_steps <= cfg.warmup_steps or cfg.warmup_steps < 0:
      raise UserInputError(
        'warmup_cosine needs 0 <= warmup_steps < total_steps, got '
        f'{cfg.warmup_steps} and {cfg.total_steps}'
      )
    return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=cfg.learning_rate,
      warmup_steps=cfg.warmup_steps,
      decay_steps=cfg.total_steps,
    )
  if cfg.schedule == 'epoch_decay':
    if cfg.decay_after_epochs < 1 or cfg.steps_per_epoch < 1 or not 0 < cfg.decay_rate <= 1:
      raise UserInputError(
        'epoch_decay needs decay_after_epochs >= 1, 0 < decay_rate <= 1 and a known '
        f'epoch length, got {cfg.decay_after_epochs}, {cfg.decay_rate} and '
        f'{cfg.steps_per_epoch} steps per epoch'
      )
    # Staircase from the start of the last full-rate epoch: its factor is rate ** 0.
    return optax.exponential_decay(
      cfg.learning_rate,
      transition_steps=cfg.steps_per_epoch,
      decay_rate=cfg.decay_rate,
      transition_begin=(cfg.decay_after_epochs - 1) * cfg.steps_per_epoch,
      staircase=True,
    )
  raise UserInputError(f'unknown schedule {cfg.schedule!r}: use one of {SCHEDULES}')


def make_optimizer(cfg: OptimizerConfig) -> optax.GradientTransformation:
  """Builds the optax optimiser described by `cfg`.

  Raises:
    UserInputError: for an unknown name or schedule or an invalid value.
  """
  if cfg.weight_decay < 0:
    raise UserInputError(f'weight_decay must be >= 0, got {cfg.weight_decay}')
  lr = make_schedule(cfg)
  coupled_decay = optax.add_decayed_weights(cfg.weight_decay)
  if cfg.name == 'adam':
    tx = optax.chain(coupled_decay, optax.adam(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
  elif cfg.name == 'adamw':
    tx = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
  elif cfg.name == 'sgd':
    tx = optax.chain(coupled_decay, optax.sgd(lr, momentum=cfg.momentum or None))
  elif cfg.name == 'rmsprop':
    tx = optax.chain(coupled_decay, optax.rmsprop(lr, decay=0.99, eps=cfg.eps, eps_in_sqrt=False))
  else:
    raise UserInputError(f'unknown optimizer {cfg.name!r}: use one of {OPTIMIZERS}')
  if cfg.clip_grad_norm:
    tx = optax.chain(optax.clip_by_global_norm(cfg.clip_grad_norm), tx)
  if cfg.skip_nonfinite:
    tx = optax.apply_if_finite(tx, max_consecutive_errors=100)
  return tx


class EmaState(NamedTuple):
  """State of `with_parameter_ema`: the wrapped optimiser's state and the average."""

  inner: Any
  ema: Any
  # Shadows tuple.count; the field name is part of the checkpoint layout, so it stays.
  count: jax.Array  # type: ignore[assignment]


def with_parameter_ema(
  tx: optax.GradientTransformation, decay: float
) -> optax.GradientTransformation:
  """Wraps `tx` to keep an exponential moving average of the updated parameters.

  The average lives in the optimiser state, so it is checkpointed and restored
  with it. Its decay warms up as min(decay, (1 + n) / (10 + n)) after n updates,
  so early averages are not dominated by the random initialisation.
  """

  def init(params):
    return EmaState(tx.init(params), jax.tree.map(jnp.asarray, params), jnp.zeros((), jnp.int32))

  def update(updates, state, params=None):
    updates, inner = tx.update(updates, state.inner, params)
    new_params = optax.apply_updates(params, updates)
    count = state.count + 1
    d = jnp.minimum(decay, (1.0 + count) / (10.0 + count))
    ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state.ema, new_params)
    return updates, EmaState(inner, ema, count)

  return optax.GradientTransformation(init, update)


def ema_params(opt_state: EmaState) -> Any:
  """The averaged parameters held by a `with_parameter_ema` optimiser state."""
  return opt_state.ema
