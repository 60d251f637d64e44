"""Pure training and evaluation steps shared by every model family.

A family plugs in one function, its *loss function*:

  loss_fn(params, batch, rng, train) -> (metrics, outputs)

- `batch` is a dict of per-example arrays with leading batch axis B, including
  'mask' (float32, 1 for real examples, 0 for padding).
- `metrics` maps names to (sum, count) pairs of float32 scalars, summed over the
  examples (or tokens) of the batch and weighted by the mask; it must contain
  'loss'. Its gradient is taken of loss_sum / loss_count over the *global* batch.
- `outputs` is a dict of per-example arrays (e.g. predicted labels) that evaluation
  returns; training drops it (and XLA never computes what is unused).

Sums rather than means keep every average exact across devices and across padded,
uneven final batches: the host divides only at the end.

Micro-batches: with `microbatches=k` a step cuts its batch into k interleaved parts
(example i goes to part i mod k) and traces the loss and gradient of each part as an
independent computation, then adds them. The mean gradient is the same as for the
whole batch (only dropout draws differ: part i uses key `fold_in(key, i)`). XLA:CPU
runs one convolution on one core but runs independent operations concurrently, so
on CPU two parts keep both cores busy (measured on 2 cores: transformer step ~10%
faster, U-Net 28%; no gain for LSTM/GRU scans; the seed CNN instead cuts only its
convolutions into parts, `CNNConfig.conv_parts`, so its large fc1 matmuls see the
whole batch). Interleaving keeps every part on the devices that hold the batch.
"""

import functools
from typing import Any, Callable

from flax.training import train_state
import jax
import jax.numpy as jnp
import optax

Metrics = dict[str, tuple[jax.Array, jax.Array]]
LossFn = Callable[
  [Any, dict[str, jax.Array], jax.Array | None, bool], tuple[Metrics, dict[str, jax.Array]]
]
TrainState = train_state.TrainState


def _psum(tree, axis_name):
  return tree if axis_name is None else jax.lax.psum(tree, axis_name)


def split_batch(batch: dict[str, jax.Array], num_parts: int) -> list[dict[str, jax.Array]]:
  """Cuts a batch into `num_parts` interleaved parts: part i holds examples i,
  i + num_parts, i + 2 num_parts, ... (B must be a multiple of `num_parts`).

  Returns:
    `num_parts` dicts of arrays with leading axis B / num_parts, dtypes unchanged.
  """

  def part(v, i):
    return v.reshape((v.shape[0] // num_parts, num_parts) + v.shape[1:])[:, i]

  return [{k: part(v, i) for k, v in batch.items()} for i in range(num_parts)]


def _sum_trees(trees):
  return jax.tree.map(lambda *xs: functools.reduce(jnp.add, xs), *trees)


def train_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  rng: jax.Array,
  *,
  loss_fn: LossFn,
  axis_name: str | None = None,
  microbatches: int = 1,
) -> tuple[TrainState, Metrics]:
  """One optimiser step on a batch.

  Args:
    state: parameters, optimiser state and step counter.
    batch: per-example arrays with leading axis B and a float32 'mask' (B,).
    rng: base PRNG key of the run; the step's key is `fold_in(rng, state.step)`.
    loss_fn: the family's loss function (see module docstring).
    axis_name: set when run under `jax.pmap`/`shard_map` with this axis name: gradient
      sums and metrics are then summed over it and each device sees a different
      key (folded with its axis index).
    microbatches: independent parts the batch is cut into (see module docstring);
      B must be a multiple of it.

  Returns:
    the updated state and the batch's metrics as global (sum, count) pairs, plus
    'grad_norm': (global norm of the mean gradient, 1).
  """
  step_rng = jax.random.fold_in(rng, state.step)
  if axis_name is not None:
    step_rng = jax.random.fold_in(step_rng, jax.lax.axis_index(axis_name))

  def loss_sum(params, part, part_rng):
    metrics, _ = loss_fn(params, part, part_rng, True)
    return metrics['loss'][0], metrics

  grad_fn = jax.grad(loss_sum, has_aux=True)
  if microbatches == 1:
    grads, metrics = grad_fn(state.params, batch, step_rng)
  else:
    grads, metrics = _sum_trees(
      [
        grad_fn(state.params, part, jax.random.fold_in(step_rng, i))
        for i, part in enumerate(split_batch(batch, microbatches))
      ]
    )
  grads, metrics = _psum((grads, metrics), axis_name)
  count = jnp.maximum(metrics['loss'][1], 1.0)
  grads = jax.tree.map(lambda g: g / count.astype(g.dtype), grads)
  # One value per step (count 1): lets the host stop on a non-finite gradient.
  metrics = dict(metrics, grad_norm=(optax.global_norm(grads), jnp.ones(())))
  return state.apply_gradients(grads=grads), metrics


def eval_step(
  state: TrainState, batch: dict[str, jax.Array], *, loss_fn: LossFn, axis_name: str | None = None
) -> tuple[Metrics, dict[str, jax.Array]]:
  """Evaluates a batch without updating anything (dropout and augmentation off).

  (No micro-batches here: for the forward pass alone they measured slower.)

  Returns:
    the batch's metrics as global (sum, count) pairs, and the per-example outputs
    of the loss function (shards stay on their devices).
  """
  metrics, outputs = loss_fn(state.params, batch, None, False)
  return _psum(metrics, axis_name), outputs
