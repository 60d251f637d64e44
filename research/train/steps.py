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
on CPU two parts keep both cores busy (the transformer and the U-Net gain; the
LSTM/GRU scans do not; the seed CNN instead cuts only its convolutions into parts,
`CNNConfig.conv_parts`, so its large fc1 matmuls see the whole batch; figures in
docs/performance.md). Interleaving keeps every part on the devices that hold the batch.

Carried state (truncated backpropagation through time): a `CarriedTrainState` also
holds `carry`, a pytree of per-stream arrays with leading axis B (a recurrent model's
state at the end of the last window each batch row read). Each train step gives the
loss `batch['carry']`, the carry zeroed in the rows whose 'reset' (float32 (B,)) is 1
(a stream's first window), and stores the loss's `outputs['carry']` for the next
step. The carry enters as a constant, so no gradient crosses a window boundary. Row b
of every batch must continue row b of the batch before (`batch_plans` 'streams').

Split losses: a family whose loss first makes the model's inputs from the stored batch
(normalisation, augmentation: work without parameters) can give it as a `SplitLoss`,
its two halves named. Called whole it is an ordinary loss function; the jit driver
runs the first half as a program of its own on CPU (see `research.train.parallel`),
with the same keys, so both ways compute the same step.
"""

import dataclasses
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


class CarriedTrainState(train_state.TrainState):
  """A `TrainState` that also carries a recurrent state across train steps.

  Attributes:
    carry: pytree of float32 arrays with leading axis B, the global batch (row b is
      stream b's state after the last window it trained on); drivers shard it like
      the batch and checkpoints store it with the rest of the state.
  """

  carry: Any = None


def carry_in(carry: Any, reset_B: jax.Array) -> Any:
  """`carry` with the rows of restarting streams zeroed.

  Args:
    carry: pytree of arrays with leading axis B.
    reset_B: float32 (B,), 1 where a stream starts (its state is forgotten).
  """
  keep_B = 1.0 - reset_B
  return jax.tree.map(
    lambda c: c * keep_B.reshape((-1,) + (1,) * (c.ndim - 1)).astype(c.dtype), carry
  )


PrepareFn = Callable[[dict[str, jax.Array], jax.Array | None, bool], dict[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class SplitLoss:
  """A loss function in two halves: `prepare` makes the model's inputs from a stored
  batch (no parameters; per-example arrays keep their leading axis B and 'mask'),
  `loss` runs the model on them and is itself a `LossFn`.

  Calling it is calling the whole loss: loss(params, prepare(batch, rng, train), rng,
  train), with the same `rng` given to both halves.
  """

  prepare: PrepareFn
  loss: LossFn

  def __call__(self, params, batch, rng, train):
    return self.loss(params, self.prepare(batch, rng, train), rng, train)


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

  return [
    {k: jax.tree.map(lambda v, i=i: part(v, i), v) for k, v in batch.items()}
    for i in range(num_parts)
  ]


def merge_parts(parts: list[dict[str, jax.Array]]) -> dict[str, jax.Array]:
  """Inverse of `split_batch`: interleaves the parts back into one batch (example j
  of part i becomes example j * num_parts + i)."""
  return jax.tree.map(lambda *xs: jnp.stack(xs, axis=1).reshape((-1,) + xs[0].shape[1:]), *parts)


def step_rng(rng: jax.Array, step: int | jax.Array, axis_name: str | None = None) -> jax.Array:
  """The key of train step `step`: `fold_in(rng, step)`, and under `axis_name` folded
  with this device's axis index too."""
  key = jax.random.fold_in(rng, step)
  if axis_name is not None:
    key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
  return key


def prepare_train_batch(
  batch: dict[str, jax.Array],
  rng: jax.Array,
  step: jax.Array,
  *,
  prepare: PrepareFn,
  axis_name: str | None = None,
  microbatches: int = 1,
) -> dict[str, jax.Array]:
  """What `train_step` with a `SplitLoss` would prepare from `batch` at step `step`.

  Each micro-batch part is prepared with the key its loss gets in `train_step`, and
  the parts are interleaved back, so `train_step(state, prepared, rng,
  loss_fn=split.loss, microbatches=...)` computes what `loss_fn=split` computes on
  `batch`.

  Returns:
    the prepared batch, leading axis B (dtypes as `prepare` makes them).
  """
  key = step_rng(rng, step, axis_name)
  if microbatches == 1:
    return prepare(batch, key, True)
  parts = split_batch(batch, microbatches)
  return merge_parts([prepare(p, jax.random.fold_in(key, i), True) for i, p in enumerate(parts)])


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
    'grad_norm': (global norm of the mean gradient, 1). A `CarriedTrainState`
    comes back with the loss's `outputs['carry']` (see module docstring).
  """
  key = step_rng(rng, state.step, axis_name)
  carried = isinstance(state, CarriedTrainState)
  if isinstance(state, CarriedTrainState):  # (`carried`, spelled out for mypy.)
    batch = dict(batch, carry=carry_in(state.carry, batch['reset']))

  def loss_sum(params, part, part_rng):
    metrics, outputs = loss_fn(params, part, part_rng, True)
    return metrics['loss'][0], (metrics, outputs['carry'] if carried else None)

  grad_fn = jax.grad(loss_sum, has_aux=True)
  if microbatches == 1:
    grads, (metrics, carry) = grad_fn(state.params, batch, key)
  else:
    parts = [
      grad_fn(state.params, part, jax.random.fold_in(key, i))
      for i, part in enumerate(split_batch(batch, microbatches))
    ]
    grads, metrics = _sum_trees([(g, m) for g, (m, _) in parts])
    carry = merge_parts([{'carry': c} for _, (_, c) in parts])['carry'] if carried else None
  grads, metrics = _psum((grads, metrics), axis_name)
  count = jnp.maximum(metrics['loss'][1], 1.0)
  grads = jax.tree.map(lambda g: g / count.astype(g.dtype), grads)
  # One value per step (count 1): lets the host stop on a non-finite gradient.
  metrics = dict(metrics, grad_norm=(optax.global_norm(grads), jnp.ones(())))
  state = state.apply_gradients(grads=grads)
  return (state.replace(carry=carry) if carried else state), metrics


def eval_step(
  state: TrainState, batch: dict[str, jax.Array], *, loss_fn: LossFn, axis_name: str | None = None
) -> tuple[Metrics, dict[str, jax.Array]]:
  """Evaluates a batch without updating anything (dropout and augmentation off).

  (No micro-batches here: for the forward pass alone they are slower than the whole
  batch.)

  Returns:
    the batch's metrics as global (sum, count) pairs, and the per-example outputs
    of the loss function (shards stay on their devices).
  """
  metrics, outputs = loss_fn(state.params, batch, None, False)
  return _psum(metrics, axis_name), outputs
