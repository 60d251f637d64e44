"""Creating the train state shape-first, and counting parameters."""

from typing import Any, Callable

from flax import traverse_util
import jax
import numpy as np
import optax

from research.train.steps import CarriedTrainState
from research.train.steps import TrainState


def train_state_init(
  init_params: Callable[[jax.Array], Any],
  apply_fn: Callable,
  tx: optax.GradientTransformation,
  init_carry: Callable[[], Any] | None = None,
) -> Callable[[jax.Array], TrainState]:
  """The pure function rng -> initial `TrainState` (step 0), for `jax.eval_shape` and
  for a driver to compile with its state shardings (`parallel.DataParallel.init_state`).

  Args:
    init_params: rng -> params pytree (float32).
    apply_fn: the model's apply function, kept on the state for convenience.
    tx: the optax optimiser.
    init_carry: () -> the initial carried state (arrays with leading axis B, the
      global batch): the state is then a `CarriedTrainState` (truncated
      backpropagation through time, `research.train.steps`).
  """

  def init(rng):
    if init_carry is not None:
      params = init_params(rng)
      return CarriedTrainState.create(apply_fn=apply_fn, params=params, tx=tx, carry=init_carry())
    return TrainState.create(apply_fn=apply_fn, params=init_params(rng), tx=tx)

  return init


def init_train_state(
  init_params: Callable[[jax.Array], Any],
  apply_fn: Callable,
  tx: optax.GradientTransformation,
  rng: jax.Array,
  sharding: Any = None,
) -> TrainState:
  """Builds params and optimiser state directly on device(s).

  Shapes are derived first with `jax.eval_shape`, so nothing is computed on the
  host; the real initialisation is then one jitted call placed by `sharding`.

  Args:
    init_params: rng -> params pytree (float32).
    apply_fn: the model's apply function, kept on the state for convenience.
    tx: the optax optimiser.
    rng: PRNG key for the parameters.
    sharding: output sharding of the whole state (None: default device).

  Returns:
    a `TrainState` with step 0.
  """

  return jax.jit(train_state_init(init_params, apply_fn, tx), out_shardings=sharding)(rng)


def abstract_train_state(
  init_params: Callable[[jax.Array], Any], apply_fn: Callable, tx: optax.GradientTransformation
) -> TrainState:
  """The state's shapes and dtypes (`jax.ShapeDtypeStruct` leaves), computing nothing."""
  return jax.eval_shape(train_state_init(init_params, apply_fn, tx), jax.random.key(0))


def count_params(params: Any) -> dict[str, int]:
  """Parameter count per top-level module, plus 'total'.

  Args:
    params: a params pytree (arrays or ShapeDtypeStructs), e.g. {'conv1': {...}}.

  Returns:
    {module name: number of scalars, ..., 'total': sum}.
  """
  counts: dict[str, int] = {}
  for path, leaf in traverse_util.flatten_dict(params).items():
    counts[path[0]] = counts.get(path[0], 0) + int(np.prod(leaf.shape))
  counts['total'] = sum(counts.values())
  return counts
