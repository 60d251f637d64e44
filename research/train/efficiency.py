"""How efficiently a run trains: FLOPs per step, the devices' peak, MFU and where the
wall time went.

- `train_step_flops`: XLA's cost analysis of ONE lowered (not compiled) train step
  for the global batch, divided by the device count. A while loop's body is counted
  once (XLA's cost analysis does not multiply by trip counts), which is why the step
  is lowered alone and not the driver's chunk of S steps; a model that loops over
  time inside its step (the LSTM's scan) is counted on a twin with the loop unrolled
  (`trainer.Model.flops_loss_fn`).
- `peak_tflops`: a device's dense peak from `PEAK_TFLOPS` by its kind and the compute
  dtype; on CPU a short matmul measured once per process; None when unknown (then no
  MFU is reported rather than a made-up one).
- `WallClock`: exclusive wall seconds per part of a run (compiling, train steps,
  evaluation, checkpointing, data, logging; the rest is 'other'). JAX reports every
  trace, lowering and XLA compilation (`jax.monitoring`), so compile time is moved out
  of whichever part triggered it.

Nothing is measured at import time.
"""

import contextlib
import functools
import threading
import time
from typing import Any, Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from research.train import steps

# Dense (no sparsity) peak TFLOP/s per JAX device, by a substring of its
# `device_kind` (first match wins, so specific names come first) and compute dtype.
# float32 matmuls run at JAX's default precision: TF32 on NVIDIA GPUs, one bfloat16
# pass on TPUs. A TPU v2/v3 JAX device is one core (half a chip).
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
  ('H100 PCIe', {'bfloat16': 756.0, 'float32': 378.0}),
  ('H100', {'bfloat16': 989.0, 'float32': 494.7}),
  ('H200', {'bfloat16': 989.0, 'float32': 494.7}),
  ('A100', {'bfloat16': 312.0, 'float32': 156.0}),
  ('L4', {'bfloat16': 121.0, 'float32': 60.0}),
  ('TPU v6', {'bfloat16': 918.0, 'float32': 918.0}),  # v6e ('TPU v6 lite').
  ('TPU v5 lite', {'bfloat16': 197.0, 'float32': 197.0}),  # v5e.
  ('TPU v5e', {'bfloat16': 197.0, 'float32': 197.0}),
  ('TPU v5', {'bfloat16': 459.0, 'float32': 459.0}),  # v5p.
  ('TPU v4', {'bfloat16': 275.0, 'float32': 275.0}),
  ('TPU v3', {'bfloat16': 61.5, 'float32': 61.5}),
  ('TPU v2', {'bfloat16': 22.5, 'float32': 22.5}),
)

# Compilation events JAX records (`jax.monitoring`): tracing to a jaxpr, lowering to
# MLIR and XLA's compile (or the persistent cache's read).
COMPILE_EVENTS = (
  '/jax/core/compile/jaxpr_trace_duration',
  '/jax/core/compile/jaxpr_to_mlir_module_duration',
  '/jax/core/compile/backend_compile_duration',
)


def table_peak_tflops(device_kind: str, dtype: str) -> float | None:
  """The dense peak TFLOP/s of one device of `device_kind` (`jax.Device.device_kind`)
  for compute `dtype` ('float32' | 'bfloat16'), or None if `PEAK_TFLOPS` lacks it."""
  for kind, peaks in PEAK_TFLOPS:
    if kind.lower() in device_kind.lower():
      return peaks.get(dtype)
  return None


@functools.cache
def measured_cpu_peak_tflops(size: int = 1024, repeats: int = 5) -> float:
  """TFLOP/s of a float32 (size, size) matmul on the default CPU device, best of
  `repeats` timed runs: a peak for MFU where no table applies. Measured once per
  process (a fraction of a second), on first call."""
  a = jax.device_put(np.ones((size, size), np.float32), jax.devices('cpu')[0])
  matmul = jax.jit(jnp.matmul)
  matmul(a, a).block_until_ready()  # Compiled and warm.
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    matmul(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * size**3 / best / 1e12


def peak_tflops(device: Any, dtype: str, configured: float = 0.0) -> float | None:
  """The peak TFLOP/s per device that MFU is measured against.

  Args:
    device: a `jax.Device` of the run.
    dtype: the model's compute dtype name ('float32' | 'bfloat16').
    configured: the config's `peak_tflops_per_device`; > 0 is used as given.

  Returns:
    `configured` if set; else `PEAK_TFLOPS`'s entry for the device's kind; on CPU
    the measured matmul peak shared by the process's CPU devices (forced host
    devices share the cores); else None.
  """
  if configured > 0:
    return configured
  if device.platform == 'cpu':
    return measured_cpu_peak_tflops() / len(jax.local_devices(backend='cpu'))
  return table_peak_tflops(device.device_kind, dtype)


def train_step_flops(
  loss_fn: steps.LossFn,
  gather_fn: Callable,
  abstract_state: Any,
  train_arrays: Mapping[str, Any],
  batch_size: int,
  rng: jax.Array,
  num_devices: int | None = None,
) -> float | None:
  """FLOPs per device of one train step, from XLA's cost analysis of the lowered step.

  Args:
    loss_fn: the family's loss function (a `steps.SplitLoss` counts both halves).
    gather_fn: (data, idx_B) -> batch, as the driver gathers it.
    abstract_state: the train state's `jax.ShapeDtypeStruct`s (`jax.eval_shape`).
    train_arrays: the training arrays (N, ...) the batch is gathered from (only
      their shapes and dtypes are used).
    batch_size: B, the global train batch.
    rng: the run's key.
    num_devices: devices the global step is spread over (default: all).

  Returns:
    the global step's FLOPs / `num_devices`, or None where the backend gives no
    cost analysis. Compiled only where the lowered program has no analysis.
  """

  def one_step(state, data, idx_B, mask_B, rng):
    batch = dict(gather_fn(data, idx_B), mask=mask_B)
    return steps.train_step(state, batch, rng, loss_fn=loss_fn)

  shape = lambda v: jax.ShapeDtypeStruct(np.shape(v), v.dtype)  # No copy of the data.
  data = {k: shape(v) for k, v in train_arrays.items()}
  idx_B = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
  mask_B = jax.ShapeDtypeStruct((batch_size,), jnp.float32)
  lowered = jax.jit(one_step).trace(abstract_state, data, idx_B, mask_B, rng).lower()
  flops = xla_flops(lowered)
  return None if flops is None else flops / (num_devices or jax.device_count())


def xla_flops(lowered_or_compiled: Any) -> float | None:
  """XLA's positive FLOP count of a lowered or compiled program, else None.

  Some PJRT plugins (CUDA in jax 0.11) analyse only a compiled program: a lowered one
  without FLOPs is compiled and asked again (one compile, the price of knowing).
  """
  cost = lowered_or_compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per program.
    cost = cost[0] if cost else None
  flops = (cost or {}).get('flops')
  if flops and flops > 0:
    return float(flops)
  if hasattr(lowered_or_compiled, 'compile'):  # Lowered, not yet compiled.
    return xla_flops(lowered_or_compiled.compile())
  return None


def rates(
  flops_per_step: float | None, peak: float | None, steps: int, seconds: float
) -> dict[str, float]:
  """`step_seconds`, and where known `tflops_per_device` and `mfu` (a fraction of
  `peak`), of `steps` train steps that took `seconds`; {} without steps or time."""
  if steps <= 0 or seconds <= 0:
    return {}
  out = {'step_seconds': seconds / steps}
  if flops_per_step:
    out['tflops_per_device'] = flops_per_step * steps / seconds / 1e12
    if peak:
      out['mfu'] = out['tflops_per_device'] / peak
  return out


PARTS = ('compiling', 'train_steps', 'evaluation', 'checkpointing', 'data', 'logging')


class WallClock:
  """Exclusive wall seconds per part of a run, the rest counted as 'other'.

  `part(name)` times a block; a part inside another pauses the outer one, so the
  parts never overlap. While `listen()` is open, every compilation JAX reports on
  this thread moves its seconds from the running part to 'compiling'.
  """

  def __init__(self) -> None:
    self._begin = self._since = time.perf_counter()
    self._seconds = dict.fromkeys(PARTS, 0.0)
    self._stack: list[str] = []
    self._thread = threading.get_ident()
    self._spans: list[tuple[float, float]] = []  # Compile spans already counted.

  def _switch(self) -> None:
    now = time.perf_counter()
    if self._stack:
      self._seconds[self._stack[-1]] += now - self._since
    self._since = now

  @contextlib.contextmanager
  def part(self, name: str) -> Iterator[None]:
    """Times the block as part `name` (one of `PARTS`)."""
    if name not in self._seconds:
      raise ValueError(f'part must be one of {PARTS}, got {name!r}')
    self._switch()
    self._stack.append(name)
    try:
      yield
    finally:
      self._switch()
      self._stack.pop()

  def seconds(self, name: str) -> float:
    """Seconds spent in part `name` so far (the running part included)."""
    self._switch()
    return self._seconds[name]

  def _on_compile(self, event: str, start_time: float, end_time: float, **_: str | int) -> None:
    if event not in COMPILE_EVENTS or threading.get_ident() != self._thread:
      return
    start, end = start_time, end_time
    # Nested events (a jit traced inside another's trace) count once.
    new = end - start
    for s, e in self._spans:
      new -= max(0.0, min(e, end) - max(s, start))
    self._spans = [(s, e) for s, e in self._spans if e > start] + [(start, end)]
    if new > 0:
      self._switch()
      self._seconds['compiling'] += new
      if self._stack and self._stack[-1] != 'compiling':
        self._seconds[self._stack[-1]] -= new

  @contextlib.contextmanager
  def listen(self) -> Iterator['WallClock']:
    """Counts JAX's compilations on this thread as 'compiling' within the block."""
    jax.monitoring.register_event_time_span_listener(self._on_compile)
    try:
      yield self
    finally:
      jax.monitoring.unregister_event_time_span_listener(self._on_compile)

  def breakdown(self) -> dict[str, float]:
    """{part: seconds} for every part, 'other' and 'total' (since construction)."""
    self._switch()
    total = time.perf_counter() - self._begin
    parts = dict(self._seconds)
    return dict(parts, other=total - sum(parts.values()), total=total)


class Meter:
  """A run's efficiency: its `WallClock`, FLOPs per step and peak, and the rates
  since the last logging boundary (`interval`) and over the run (`summary`).

  Args:
    clock: the run's clock; train-step time is its 'train_steps' part (compiling,
      input waits, evaluation, checkpoints and logging excluded).
    flops_per_step: FLOPs per device of one train step (`train_step_flops`), or None.
    peak: peak TFLOP/s per device (`peak_tflops`), or None.
  """

  def __init__(
    self, clock: WallClock, flops_per_step: float | None = None, peak: float | None = None
  ):
    self.clock, self.flops_per_step, self.peak = clock, flops_per_step, peak
    self._first_step: int | None = None
    self._last = (0, 0.0)  # (step, train-step seconds) at the last boundary.

  def start(self, step: int) -> None:
    """Marks the step the training loop starts from."""
    self._first_step = step
    self._last = (step, self.clock.seconds('train_steps'))

  def interval(self, step: int) -> dict[str, float]:
    """`rates` of the steps since the last call (or `start`), up to `step`."""
    last_step, last_seconds = self._last
    seconds = self.clock.seconds('train_steps')
    self._last = (step, seconds)
    return rates(self.flops_per_step, self.peak, step - last_step, seconds - last_seconds)

  def summary(self, step: int) -> dict[str, Any]:
    """What final_metrics.json records: compile seconds, the run's mean `rates` up
    to `step`, FLOPs per step, the peak and the wall-time breakdown."""
    wall = self.clock.breakdown()
    first = step if self._first_step is None else self._first_step
    out: dict[str, Any] = {'compile_seconds': wall['compiling']}
    out.update(rates(self.flops_per_step, self.peak, step - first, wall['train_steps']))
    if self.flops_per_step:
      out['flops_per_step_per_device'] = self.flops_per_step
    if self.peak:
      out['peak_tflops_per_device'] = self.peak
    out['wall_seconds'] = wall
    return out
