"""Data-parallel drivers: compile the pure steps for one or many devices.

With the 'device' input pipeline both drivers keep each process's training split on
its devices and take, per call, a chunk of S steps' worth of example indices, so one
dispatch runs S steps and the host never copies batches (`DataParallel` cuts the
split's rows over a process's devices, each holds 1 / local devices of it;
`PmapDataParallel` copies it whole to each):

  train(state, data, idx_SxB, mask_SxB, rng) -> (state, metrics stacked over S)
  evaluate(state, data, idx_SxB, mask_SxB) -> (metrics summed over S, outputs SxB..)

With 'stream' (`research.train.input_pipeline`, jit driver) the host gathers the
batches and `DataParallel.train_batches(state, batch_SxB, rng)` trains on them.

`DataParallel` (the default) is `jax.jit` over a (process, local) device mesh: the
state replicated (or FSDP-sharded), the data's rows and every batch sharded over the
devices. `PmapDataParallel` runs the same steps under `jax.pmap` with an axis name.
Both donate the train state. Their platform choices (a chunk's steps traced flat or
scanned, a `steps.SplitLoss` in one or two programs per step, step micro-batches) are
`research.platform_policy`'s.
"""

import functools
from typing import Any, Callable, Sequence

from flax import jax_utils
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from research import platform_policy
from research.errors import UserInputError
from research.train import steps

GatherFn = Callable[[dict[str, jax.Array], jax.Array], dict[str, jax.Array]]


def take_examples(data: dict[str, jax.Array], idx_B: jax.Array) -> dict[str, jax.Array]:
  """Default batch gather: example `i` of every array for each index in `idx_B`."""
  return {k: jnp.take(v, idx_B, axis=0) for k, v in data.items()}


def _gathered_batch(gather_fn, data, idx_B, mask_B):
  """The batch of examples `idx_B` of `data`, with its 'mask'."""
  return dict(gather_fn(data, idx_B), mask=mask_B)


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


# A chunk's S steps are a `lax.scan`, which compiles the step once, except on CPU for a
# step that convolves: there they are traced one after another, since inside an XLA:CPU
# while loop (even a fully unrolled scan keeps one) convolutions lose their fast kernels
# (`platform_policy.unrolls_steps_on_cpu`; `on_cpu` traces both branches, S + 1
# steps). A chunk of one step needs no loop anywhere and is traced once.
def _train_steps(state, xs_S, rng, *, batch_of, loss_fn, axis_name, microbatches):
  """S train steps; step s trains on `batch_of(xs_S[s])` (xs_S: a pytree, leading S)."""

  def step(state, xs):
    return steps.train_step(
      state, batch_of(xs), rng, loss_fn=loss_fn, axis_name=axis_name, microbatches=microbatches
    )

  def flat(state, xs_S):
    metrics = []
    for s in range(num):
      state, m = step(state, jax.tree.map(lambda x, s=s: x[s], xs_S))
      metrics.append(m)
    return state, _stack(metrics)

  def scanned(state, xs_S):
    return jax.lax.scan(step, state, xs_S)

  num = jax.tree.leaves(xs_S)[0].shape[0]
  if num == 1:
    return flat(state, xs_S)
  if not platform_policy.unrolls_steps_on_cpu(step, state, jax.tree.map(lambda x: x[0], xs_S)):
    return scanned(state, xs_S)
  return platform_policy.on_cpu(flat, scanned, state, xs_S)


def _train_chunk(state, data, idx_SxB, mask_SxB, rng, *, gather_fn, **kw):
  """'device' input: S steps on the examples `idx_SxB` gathered from `data`."""
  batch_of = lambda xs: _gathered_batch(gather_fn, data, *xs)
  return _train_steps(state, (idx_SxB, mask_SxB), rng, batch_of=batch_of, **kw)


def _train_batches(state, batch_SxB, rng, *, gather_fn, **kw):
  """'stream' input: S steps on the gathered batches `batch_SxB` (with 'mask')."""
  del gather_fn  # The host gathered them.
  return _train_steps(state, batch_SxB, rng, batch_of=lambda b: b, **kw)


# On CPU a `steps.SplitLoss` runs in two programs per step: the gather and the
# loss's first half (for the CNN, augmentation), then the train step on the prepared
# batch. XLA:CPU runs the step slower when its input is computed in the same program
# than when it is given to it (`platform_policy.splits_loss_steps`). Same keys, same
# values. GPU/TPU keep one program, where XLA fuses the preparation into
# the step.
def _prepare_step(
  data, idx_SxB, mask_SxB, s, rng, step, *, loss_fn, gather_fn, axis_name, microbatches
):
  batch = _gathered_batch(gather_fn, data, idx_SxB[s], mask_SxB[s])
  return steps.prepare_train_batch(
    batch, rng, step, prepare=loss_fn.prepare, axis_name=axis_name, microbatches=microbatches
  )


def _prepare_batch(batch_SxB, s, rng, step, *, loss_fn, gather_fn, axis_name, microbatches):
  """`_prepare_step` of 'stream' input: batch s of the gathered chunk, prepared."""
  del gather_fn  # The host gathered the batch.
  batch = jax.tree.map(lambda x: x[s], batch_SxB)
  return steps.prepare_train_batch(
    batch, rng, step, prepare=loss_fn.prepare, axis_name=axis_name, microbatches=microbatches
  )


def _eval_chunk(state, data, idx_SxB, mask_SxB, *, loss_fn, gather_fn, axis_name):
  metrics, outputs = [], []
  for s in range(idx_SxB.shape[0]):
    batch = _gathered_batch(gather_fn, data, idx_SxB[s], mask_SxB[s])
    m, o = steps.eval_step(state, batch, loss_fn=loss_fn, axis_name=axis_name)
    metrics.append(m)
    outputs.append(o)
  return jax.tree.map(lambda x: x.sum(0), _stack(metrics)), _stack(outputs)


def check_batch_size(batch_size: int, num_devices: int) -> None:
  """Raises UserInputError unless batch_size >= 1 and divisible by num_devices."""
  if batch_size < 1 or batch_size % num_devices:
    raise UserInputError(
      f'batch size must be a positive multiple of the device count '
      f'({num_devices}), got {batch_size}'
    )


BATCH_AXES = ('process', 'local')


def device_grid(devices: list[Any]) -> np.ndarray:
  """Devices as a (processes, local devices) grid, each row one process's devices."""
  by_process: dict[int, list[Any]] = {}
  for d in devices:
    by_process.setdefault(d.process_index, []).append(d)
  rows = [by_process[p] for p in sorted(by_process)]
  if len({len(r) for r in rows}) != 1:
    raise ValueError(f'processes have different device counts: {[len(r) for r in rows]}')
  return np.array(rows)


def fsdp_spec(shape: tuple[int, ...], num_shards: int, min_size: int) -> P:
  """Shards the largest dimension divisible by `num_shards` of arrays with at least
  `min_size` elements over all devices; smaller arrays stay replicated."""
  if num_shards == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % num_shards == 0:
      spec: list[Any] = [None] * len(shape)
      spec[axis] = BATCH_AXES
      return P(*spec)
  return P()


class DataParallel:
  """`jax.jit` over a (process, local) device mesh: batch sharded over every device.

  Each process holds its own shard of the data set (`put_data`), its rows cut over
  the process's devices, and indexes it with process-local indices. The gather is
  manual over processes (`shard_map`), so no example crosses a network, and left to
  GSPMD over a process's devices: each device takes the indexed rows it holds, and
  an all-reduce within the process assembles the batch (B x example bytes per step,
  never the split). The train state is replicated, or
  with `fsdp=True` its large arrays are sharded over all devices (ZeRO-3 style,
  by shape rule, no model change); GSPMD inserts the collectives.

  Args:
    loss_fn: the family's loss function.
    gather_fn: gathers a batch from the data by index (per device).
    devices: the devices to use (default: all devices of all processes).
    fsdp: shard parameters and optimiser state instead of replicating them.
    fsdp_min_size: arrays smaller than this stay replicated under fsdp.
    microbatches: independent parts per device batch in training (0: automatic,
      see `platform_policy.batch_parts`).
  """

  def __init__(
    self,
    loss_fn: steps.LossFn,
    gather_fn: GatherFn = take_examples,
    devices: list[Any] | None = None,
    fsdp: bool = False,
    fsdp_min_size: int = 2**14,
    microbatches: int = 1,
  ):
    self.devices = list(devices or jax.devices())
    self.microbatches = microbatches
    self.mesh = Mesh(device_grid(self.devices), BATCH_AXES)
    self.fsdp, self.fsdp_min_size = fsdp, fsdp_min_size
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharded = NamedSharding(self.mesh, P(None, BATCH_AXES))
    self.data_sharding = NamedSharding(self.mesh, P(BATCH_AXES))
    # Each process gathers its part of the batch from its own data shard; within it
    # GSPMD partitions the gather over the devices holding the rows.
    gather = jax.shard_map(
      gather_fn,
      mesh=self.mesh,
      in_specs=(P('process'), P('process')),
      out_specs=P('process'),
      axis_names={'process'},
      check_vma=False,
    )
    self._kw = dict(loss_fn=loss_fn, gather_fn=gather, axis_name=None)
    self._train = self._eval = self._prepare = self._step = None
    self._any: Any = None  # The jitted OR of `any_process`.
    self._train_given = self._prepare_given = None  # The same, on gathered batches.
    # Two programs per train step (see `_prepare_step`): a split loss, on CPU.
    self.splits_steps = isinstance(loss_fn, steps.SplitLoss) and platform_policy.splits_loss_steps(
      self.devices[0].platform
    )

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def state_sharding(self, state):
    """Shardings for a state pytree: replicated, or by the FSDP shape rule; a
    `steps.CarriedTrainState`'s carry is sharded over the devices like the batch."""
    if isinstance(state, steps.CarriedTrainState):
      rows = jax.tree.map(lambda _: self.data_sharding, state.carry)
      return self._replicated_or_fsdp(state.replace(carry=None)).replace(carry=rows)
    return self._replicated_or_fsdp(state)

  def _replicated_or_fsdp(self, state):
    if not self.fsdp:
      return jax.tree.map(lambda _: self.replicated, state)
    n = self.num_devices
    return jax.tree.map(
      lambda x: NamedSharding(self.mesh, fsdp_spec(np.shape(x), n, self.fsdp_min_size)), state
    )

  def put_replicated(self, tree):
    """Places a pytree (state or small data) on every device, per `state_sharding`.

    Every process must pass the same values. In a multi-process run the tree goes
    through host memory first: arrays committed to one local device cannot be
    transferred to other hosts' devices (each process supplies its own copy).
    """
    if jax.process_count() > 1:
      tree = jax.device_get(tree)
    return jax.device_put(tree, self.state_sharding(tree))

  def any_process(self, flags: Sequence[bool]) -> Callable[[], tuple[bool, ...]]:
    """Each of this process's `flags` OR-ed over all processes by an all-reduce on the
    devices, queued behind the chunks already dispatched: the host does not wait for
    it here. Returns a function that reads the agreed flags (it waits for that work:
    call it when the chunk before is read anyway)."""
    if self._any is None:
      self._any = jax.jit(lambda f: f.max(axis=0), out_shardings=self.replicated)
    local = np.tile(np.asarray(flags, np.int32), (self.num_devices // jax.process_count(), 1))
    flags_DxN = jax.make_array_from_process_local_data(
      NamedSharding(self.mesh, P(BATCH_AXES)), local, (self.num_devices, len(flags))
    )
    agreed = self._any(flags_DxN)
    return lambda: tuple(bool(f) for f in np.asarray(agreed))

  def init_program(self, init: Callable[[jax.Array], Any], abstract: Any):
    """`init` (rng -> state) compiled to write each array straight into its
    `state_sharding`, given the state's shapes `abstract` (`jax.eval_shape`)."""
    return jax.jit(init, out_shardings=self.state_sharding(abstract))

  def init_state(self, init: Callable[[jax.Array], Any], rng: jax.Array, abstract: Any):
    """The state `init(rng)`, sharded from its first byte: one compiled call whose
    outputs are born in `state_sharding` of the shapes `abstract` (the caller's
    `jax.eval_shape(init, rng)`), so no device ever holds more than its share of an
    FSDP-sharded array (nor does any host)."""
    # Every process has the same key; its data goes onto every device from host
    # memory (as in `put_replicated`): a key on one local device cannot feed others'.
    key_data = jax.device_put(np.asarray(jax.random.key_data(rng)), self.replicated)
    key = jax.random.wrap_key_data(key_data, impl=jax.random.key_impl(rng))
    return self.init_program(init, abstract)(key)

  def restore_target(self, abstract: Any):
    """`abstract` (`jax.ShapeDtypeStruct`s) with the state shardings: what a checkpoint
    is restored into, each device reading only its shards."""
    return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      abstract,
      self.state_sharding(abstract),
    )

  def place_restored(self, state):
    """A state restored into `restore_target`: already in place."""
    return state

  def put_data(self, local_arrays: dict[str, np.ndarray]):
    """This process's data shard onto its devices, each array's rows cut evenly over
    them (zero rows appended up to a multiple of the local device count; no index
    reaches them). Every process must call it with equally many examples."""
    local_devices = self.num_devices // jax.process_count()

    def put(v):
      v = np.asarray(v)
      if len(v) % local_devices:
        v = np.pad(v, [(0, -len(v) % local_devices)] + [(0, 0)] * (v.ndim - 1))
      shape = (v.shape[0] * jax.process_count(),) + v.shape[1:]
      return jax.make_array_from_process_local_data(self.data_sharding, v, shape)

    return {k: put(v) for k, v in local_arrays.items()}

  def host_state(self, state):
    """The state as checkpoints store it (global arrays, any sharding)."""
    return state

  def _compile(self, state):
    if self._train is None:
      out = (self.state_sharding(state), self.replicated)
      self._train = jax.jit(
        functools.partial(_train_chunk, **self._kw),
        donate_argnums=0,
        out_shardings=out,
        static_argnames='microbatches',
      )
      self._train_given = jax.jit(
        functools.partial(_train_batches, **self._kw),
        donate_argnums=0,
        out_shardings=out,
        static_argnames='microbatches',
      )
      self._eval = jax.jit(
        functools.partial(_eval_chunk, **self._kw),
        out_shardings=(self.replicated, self.batch_sharded),
      )
      if self.splits_steps:
        self._prepare = jax.jit(
          functools.partial(_prepare_step, **self._kw),
          out_shardings=NamedSharding(self.mesh, P(BATCH_AXES)),
          static_argnames='microbatches',
        )
        self._prepare_given = jax.jit(
          functools.partial(_prepare_batch, **self._kw),
          out_shardings=NamedSharding(self.mesh, P(BATCH_AXES)),
          static_argnames='microbatches',
        )
        self._step = jax.jit(
          functools.partial(steps.train_step, loss_fn=self._kw['loss_fn'].loss),
          donate_argnums=0,
          out_shardings=out,
          static_argnames='microbatches',
        )

  def _parts(self, global_batch: int) -> int:
    per_device = global_batch // self.num_devices
    return platform_policy.batch_parts(self.microbatches, per_device, self.devices[0].platform)

  def _indices(self, idx_SxB, mask_SxB):
    put = lambda a: jax.make_array_from_process_local_data(
      self.batch_sharded, a, (a.shape[0], a.shape[1] * jax.process_count())
    )
    return (put(np.asarray(idx_SxB, np.int32)), put(np.asarray(mask_SxB, np.float32)))

  def train(self, state, data, idx_SxB, mask_SxB, rng):
    """Runs S train steps on this process's (S, B / processes) indices into its data
    shard; returns the new state and the global metrics stacked over S."""
    self._compile(state)
    parts = self._parts(np.shape(idx_SxB)[1] * jax.process_count())
    idx, mask = self._indices(idx_SxB, mask_SxB)
    if not self.splits_steps:
      return self._train(state, data, idx, mask, rng, microbatches=parts)
    prepare = lambda s, step: self._prepare(data, idx, mask, s, rng, step, microbatches=parts)
    return self._split_steps(state, rng, idx.shape[0], parts, prepare)

  def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's gathered chunk, arrays (S, B / processes, ...), as global arrays
    (S, B, ...) sharded along B over every device ('stream' input)."""

    def put(v):
      v = np.asarray(v)
      shape = (v.shape[0], v.shape[1] * jax.process_count()) + v.shape[2:]
      return jax.make_array_from_process_local_data(self.batch_sharded, v, shape)

    return {k: put(v) for k, v in local_batch.items()}

  def train_batches(self, state, batch_SxB, rng):
    """Runs S train steps on gathered batches placed by `put_batch` (with 'mask');
    returns the new state and the global metrics stacked over S."""
    self._compile(state)
    parts = self._parts(batch_SxB['mask'].shape[1])
    if not self.splits_steps:
      return self._train_given(state, batch_SxB, rng, microbatches=parts)
    prepare = lambda s, step: self._prepare_given(batch_SxB, s, rng, step, microbatches=parts)
    return self._split_steps(state, rng, batch_SxB['mask'].shape[0], parts, prepare)

  def _split_steps(self, state, rng, num, parts, prepare):
    """S steps in two programs each (see `_prepare_step`); `prepare(s, step)` gives
    step s's prepared batch."""
    metrics = []
    for s in range(num):
      state, m = self._step(state, prepare(np.int32(s), state.step), rng, microbatches=parts)
      metrics.append(m)
    return state, _stack(metrics)

  def evaluate(self, state, data, idx_SxB, mask_SxB):
    """Evaluates S batches; returns summed metrics and this process's outputs
    shaped (S, B / processes, ...)."""
    self._compile(state)
    metrics, outputs = self._eval(state, data, *self._indices(idx_SxB, mask_SxB))
    local = lambda o: np.concatenate(
      [
        np.asarray(s.data)
        for s in sorted(o.addressable_shards, key=lambda s: s.index[1].start or 0)
        if s.replica_id == 0
      ],
      axis=1,
    )
    return metrics, jax.tree.map(local, outputs)


class PmapDataParallel:
  """The same steps under `jax.pmap` (axis 'batch'): per-device batch B / D."""

  axis_name = 'batch'

  def __init__(
    self,
    loss_fn: steps.LossFn,
    gather_fn: GatherFn = take_examples,
    devices: list[Any] | None = None,
    microbatches: int = 1,
  ):
    self.devices = list(devices or jax.devices())
    self.microbatches = microbatches
    kw = dict(loss_fn=loss_fn, gather_fn=gather_fn, axis_name=self.axis_name)
    self._pmap = functools.partial(jax.pmap, axis_name=self.axis_name, devices=self.devices)
    self._train_chunk = functools.partial(_train_chunk, **kw)
    self._trains: dict[int, Any] = {}  # micro-batch count -> pmapped train chunk
    self._eval = self._pmap(functools.partial(_eval_chunk, **kw))
    self._any: Any = None  # The pmapped OR of `any_process`.

  def _train_fn(self, idx_SxB):
    k = platform_policy.batch_parts(
      self.microbatches, np.shape(idx_SxB)[1] // self.num_devices, self.devices[0].platform
    )
    if k not in self._trains:
      self._trains[k] = self._pmap(
        functools.partial(self._train_chunk, microbatches=k),
        donate_argnums=0,
        in_axes=(0, 0, 0, 0, None),
      )
    return self._trains[k]

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def put_replicated(self, tree):
    return jax_utils.replicate(tree, self.devices)

  def put_data(self, local_arrays):
    return self.put_replicated(local_arrays)

  def any_process(self, flags: Sequence[bool]) -> Callable[[], tuple[bool, ...]]:
    """`DataParallel.any_process` under pmap: a `pmax` over the devices."""
    if self._any is None:
      self._any = self._pmap(lambda f: jax.lax.pmax(f, self.axis_name))
    local = sum(d.process_index == jax.process_index() for d in self.devices)
    agreed = self._any(np.tile(np.asarray(flags, np.int32), (local, 1)))
    return lambda: tuple(bool(f) for f in np.asarray(agreed.addressable_data(0)))

  def init_state(self, init: Callable[[jax.Array], Any], rng: jax.Array, abstract: Any):
    """The state `init(rng)`, built on one device and replicated (pmap needs it
    whole on every device); `abstract`, its shapes, is not needed here."""
    del abstract
    return self._place(jax.jit(init)(rng))

  def restore_target(self, abstract: Any):
    """`abstract` on this process's first device, to be replicated by `place_restored`."""
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), abstract)

  def place_restored(self, state):
    return self._place(state)

  def _place(self, state):
    """A host-shaped state on the devices: replicated, except that a carry's rows
    (B, ...) are cut into one (B / D, ...) block per device, each device's batch rows."""
    if not isinstance(state, steps.CarriedTrainState):
      return self.put_replicated(state)
    if jax.process_count() > 1:
      raise UserInputError('a carried recurrent state needs the jit driver in a multi-process run')
    # One block of rows per device, along a leading device axis (as `put_replicated`).
    sharding = NamedSharding(Mesh(np.array(self.devices), ('d',)), P('d'))
    blocks = lambda x: np.asarray(x).reshape((self.num_devices, -1) + x.shape[1:])
    carry = jax.tree.map(lambda x: jax.device_put(blocks(x), sharding), state.carry)
    return self.put_replicated(state.replace(carry=None)).replace(carry=carry)

  def host_state(self, state):
    """The state as checkpoints store it: one replica, and a carry's per-device
    blocks (D, B / D, ...) joined back into (B, ...)."""
    if not isinstance(state, steps.CarriedTrainState):
      return jax_utils.unreplicate(state)
    carry = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), state.carry)
    return jax_utils.unreplicate(state.replace(carry=None)).replace(carry=carry)

  def _split(self, idx_SxB, mask_SxB):
    s, b = np.shape(idx_SxB)
    d = self.num_devices
    split = lambda a, dt: np.asarray(a, dt).reshape(s, d, b // d).transpose(1, 0, 2)
    return split(idx_SxB, np.int32), split(mask_SxB, np.float32)

  def train(self, state, data, idx_SxB, mask_SxB, rng):
    train = self._train_fn(idx_SxB)
    state, metrics = train(state, data, *self._split(idx_SxB, mask_SxB), rng)
    return state, jax.tree.map(lambda m: m[0], metrics)

  def evaluate(self, state, data, idx_SxB, mask_SxB):
    metrics, outputs = self._eval(state, data, *self._split(idx_SxB, mask_SxB))

    def merge(o_DxSxBd):  # (D, S, B/D, ...) -> (S, B, ...)
      o = jnp.swapaxes(o_DxSxBd, 0, 1)
      return o.reshape((o.shape[0], -1) + o.shape[3:])

    return jax.tree.map(lambda m: m[0], metrics), jax.tree.map(merge, outputs)


DRIVERS = {'jit': DataParallel, 'pmap': PmapDataParallel}


def make_driver(
  name: str,
  loss_fn: steps.LossFn,
  gather_fn: GatherFn = take_examples,
  devices: list[Any] | None = None,
  fsdp: bool = False,
  microbatches: int = 1,
  fsdp_min_size: int = 2**14,
):
  """Returns the data-parallel driver called `name` ('jit' or 'pmap').

  `fsdp` (jit only) shards the train state's large arrays over all devices;
  `microbatches` cuts each device's train batch into independent parts (0:
  automatic, what the experiment configs ask for; see `platform_policy.batch_parts`).
  """
  if name not in DRIVERS:
    raise UserInputError(f'unknown driver {name!r}: use one of {sorted(DRIVERS)}')
  if fsdp and name != 'jit':
    raise UserInputError('fsdp needs the jit driver')
  if name == 'jit':
    return DataParallel(
      loss_fn, gather_fn, devices, fsdp=fsdp, fsdp_min_size=fsdp_min_size, microbatches=microbatches
    )
  return PmapDataParallel(loss_fn, gather_fn, devices, microbatches=microbatches)
