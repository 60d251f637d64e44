"""Data-parallel drivers: compile the pure steps for one or many devices.

Both drivers keep the whole (small) data set on the devices and take, per call, a
chunk of S steps' worth of example indices, so one dispatch runs S steps and the
host never copies batches:

  train(state, data, idx_SxB, mask_SxB, rng) -> (state, metrics stacked over S)
  evaluate(state, data, idx_SxB, mask_SxB) -> (metrics summed over S, outputs SxB..)

`DataParallel` (the default) is `jax.jit` over a one-axis device mesh: the state and
data replicated, every batch sharded along B. `PmapDataParallel` runs the same steps
under `jax.pmap` with an axis name. Both donate the train state.
"""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import jax_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from research.errors import UserInputError
from research.train import steps

GatherFn = Callable[[dict[str, jax.Array], jax.Array], dict[str, jax.Array]]


def take_examples(data: dict[str, jax.Array], idx_B: jax.Array) -> dict[str, jax.Array]:
  """Default batch gather: example `i` of every array for each index in `idx_B`."""
  return {k: jnp.take(v, idx_B, axis=0) for k, v in data.items()}


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


# The S steps of a chunk are traced one after another rather than in a `lax.scan`:
# inside an XLA:CPU while loop (even a fully unrolled scan keeps one) convolutions
# lose their fast kernels, measured 80x slower for the CNN.
def _train_chunk(state, data, idx_SxB, mask_SxB, rng, *, loss_fn, gather_fn,
                 axis_name):
  metrics = []
  for s in range(idx_SxB.shape[0]):
    batch = dict(gather_fn(data, idx_SxB[s]), mask=mask_SxB[s])
    state, m = steps.train_step(state, batch, rng, loss_fn=loss_fn,
                                axis_name=axis_name)
    metrics.append(m)
  return state, _stack(metrics)


def _eval_chunk(state, data, idx_SxB, mask_SxB, *, loss_fn, gather_fn, axis_name):
  metrics, outputs = [], []
  for s in range(idx_SxB.shape[0]):
    batch = dict(gather_fn(data, idx_SxB[s]), mask=mask_SxB[s])
    m, o = steps.eval_step(state, batch, loss_fn=loss_fn, axis_name=axis_name)
    metrics.append(m)
    outputs.append(o)
  return jax.tree.map(lambda x: x.sum(0), _stack(metrics)), _stack(outputs)


def check_batch_size(batch_size: int, num_devices: int) -> None:
  """Raises UserInputError unless batch_size >= 1 and divisible by num_devices."""
  if batch_size < 1 or batch_size % num_devices:
    raise UserInputError(f'batch size must be a positive multiple of the device count '
                         f'({num_devices}), got {batch_size}')


class DataParallel:
  """`jax.jit` over a one-axis mesh named 'data': batch sharded, state replicated."""

  def __init__(self, loss_fn: steps.LossFn, gather_fn: GatherFn = take_examples,
               devices: list[Any] | None = None):
    self.devices = list(devices or jax.devices())
    self.mesh = Mesh(np.array(self.devices), ('data',))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharded = NamedSharding(self.mesh, P(None, 'data'))
    kw = dict(loss_fn=loss_fn, gather_fn=gather_fn, axis_name=None)
    self._train = jax.jit(functools.partial(_train_chunk, **kw), donate_argnums=0,
                          out_shardings=(self.replicated, self.replicated))
    self._eval = jax.jit(functools.partial(_eval_chunk, **kw),
                         out_shardings=(self.replicated, self.batch_sharded))

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def put_replicated(self, tree):
    """Places a host pytree (state or data) on every device."""
    return jax.device_put(tree, self.replicated)

  def host_state(self, state):
    """The state as one copy (what checkpoints store)."""
    return state

  def _indices(self, idx_SxB, mask_SxB):
    return (jax.device_put(np.asarray(idx_SxB, np.int32), self.batch_sharded),
            jax.device_put(np.asarray(mask_SxB, np.float32), self.batch_sharded))

  def train(self, state, data, idx_SxB, mask_SxB, rng):
    """Runs S train steps; returns the new state and metrics stacked over S."""
    return self._train(state, data, *self._indices(idx_SxB, mask_SxB), rng)

  def evaluate(self, state, data, idx_SxB, mask_SxB):
    """Evaluates S batches; returns summed metrics and outputs shaped (S, B, ...)."""
    return self._eval(state, data, *self._indices(idx_SxB, mask_SxB))


class PmapDataParallel:
  """The same steps under `jax.pmap` (axis 'batch'): per-device batch B / D."""

  axis_name = 'batch'

  def __init__(self, loss_fn: steps.LossFn, gather_fn: GatherFn = take_examples,
               devices: list[Any] | None = None):
    self.devices = list(devices or jax.devices())
    kw = dict(loss_fn=loss_fn, gather_fn=gather_fn, axis_name=self.axis_name)
    pmap = functools.partial(jax.pmap, axis_name=self.axis_name, devices=self.devices)
    self._train = pmap(functools.partial(_train_chunk, **kw), donate_argnums=0,
                       in_axes=(0, 0, 0, 0, None))
    self._eval = pmap(functools.partial(_eval_chunk, **kw))

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def put_replicated(self, tree):
    return jax_utils.replicate(tree, self.devices)

  def host_state(self, state):
    return jax_utils.unreplicate(state)

  def _split(self, idx_SxB, mask_SxB):
    s, b = np.shape(idx_SxB)
    d = self.num_devices
    split = lambda a, dt: np.asarray(a, dt).reshape(s, d, b // d).transpose(1, 0, 2)
    return split(idx_SxB, np.int32), split(mask_SxB, np.float32)

  def train(self, state, data, idx_SxB, mask_SxB, rng):
    state, metrics = self._train(state, data, *self._split(idx_SxB, mask_SxB), rng)
    return state, jax.tree.map(lambda m: m[0], metrics)

  def evaluate(self, state, data, idx_SxB, mask_SxB):
    metrics, outputs = self._eval(state, data, *self._split(idx_SxB, mask_SxB))

    def merge(o_DxSxBd):  # (D, S, B/D, ...) -> (S, B, ...)
      o = jnp.swapaxes(o_DxSxBd, 0, 1)
      return o.reshape((o.shape[0], -1) + o.shape[3:])
    return jax.tree.map(lambda m: m[0], metrics), jax.tree.map(merge, outputs)


DRIVERS = {'jit': DataParallel, 'pmap': PmapDataParallel}


def make_driver(name: str, loss_fn: steps.LossFn, gather_fn: GatherFn = take_examples,
                devices: list[Any] | None = None):
  """Returns the data-parallel driver called `name` ('jit' or 'pmap')."""
  if name not in DRIVERS:
    raise UserInputError(f'unknown driver {name!r}: use one of {sorted(DRIVERS)}')
  return DRIVERS[name](loss_fn, gather_fn, devices)
