"""The training loop of every family: steps counted globally, epochs a view of them.

Which examples each step trains on comes from a `research.train.batch_plans.IndexSource`.
The loop keeps the device busy: it dispatches chunk k+1 before it fetches the metrics
of chunk k, checks them for non-finite values on the host (`check_finite`), and calls
the hooks at the boundaries they asked for.
"""

import dataclasses
import math
import sys
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
from tqdm import auto as tqdm

from research.errors import NonFiniteLossError
from research.train import batch_plans
from research.train import efficiency
from research.train import input_pipeline
from research.train import metrics as metrics_lib
from research.train import profiling


def check_finite(chunk_metrics, first_step: int, *, epoch: int | None = None, skip: bool = False):
  """Raises NonFiniteLossError naming the first bad step, or, when `skip`, drops it.

  Args:
    chunk_metrics: host metrics of consecutive steps, stacked on axis 0, with
      'loss' and optionally 'grad_norm' pairs.
    first_step: optimiser step before the first of them.
    epoch: named in the message when given.
    skip: drop the bad steps instead of raising.

  Returns:
    the metrics with non-finite steps removed, and how many were removed.
  """
  loss = np.asarray(chunk_metrics['loss'][0])
  norm = np.asarray(chunk_metrics.get('grad_norm', (loss,))[0])
  bad = ~(np.isfinite(loss) & np.isfinite(norm))
  if bad.any() and not skip:
    i = int(np.flatnonzero(bad)[0])
    what = 'loss' if not np.isfinite(loss[i]) else 'gradient norm'
    value = loss[i] if what == 'loss' else norm[i]
    where = '' if epoch is None else f' (epoch {epoch + 1})'
    raise NonFiniteLossError(f'training {what} is {value} at step {first_step + i + 1}{where}')
  keep = jax.tree.map(lambda x: np.asarray(x)[~bad], chunk_metrics)
  return keep, int(bad.sum())


@dataclasses.dataclass
class Boundaries:
  """Step intervals at which the loop stops dispatching and calls `on_boundary`, and
  single steps `at` (a profile's first and last) where it does too."""

  every: tuple[int, ...]
  total_steps: int
  at: tuple[int, ...] = ()

  def next_after(self, step: int) -> int:
    """The first boundary step > `step` (the end at the latest)."""
    ahead = [(step // n + 1) * n for n in self.every if n] + [a for a in self.at if a > step]
    return min(ahead + [self.total_steps])

  def chunks(self, start_step: int, steps_per_dispatch: int) -> Iterator[tuple[int, int]]:
    """(first step, number of steps) of every chunk `run_steps` dispatches from
    `start_step`, in order."""
    step = start_step
    while step < self.total_steps:
      num = min(steps_per_dispatch, self.next_after(step) - step)
      yield step, num
      step += num


@dataclasses.dataclass
class Instruments:
  """What watches the loop besides its hooks.

  Attributes:
    wall_clock: the run's clock; the stream's waits are its 'data' part.
    trace: a profile of a window of steps (its ends must be in `Boundaries.at`).
  """

  wall_clock: efficiency.WallClock = dataclasses.field(default_factory=efficiency.WallClock)
  trace: profiling.StepTrace = dataclasses.field(
    default_factory=lambda: profiling.StepTrace(None, None)
  )


def _dispatch(driver, state, data, source, step: int, num: int, rng, watch: Instruments):
  """Trains steps step .. step + num - 1: on the indices of `source` into the placed
  `data` ('device' input), or on the stream's next chunk ('stream' input)."""
  watch.trace.before_chunk(step)
  with watch.trace.annotate(step):
    if isinstance(data, input_pipeline.Stream):
      with watch.wall_clock.part('data'):
        batch = data.chunk(step, num)
      return driver.train_batches(state, batch, rng)
    idx, mask = source.chunk(step, num)
    return driver.train(state, data, idx, mask, rng)


class Progress:
  """A tqdm bar on a terminal; elsewhere (logs, files) nothing: the loop's log lines
  at each log interval say how far it is."""

  def __init__(self, total: int, initial: int, enabled: bool):
    self._bar = tqdm.tqdm(
      total=total,
      initial=initial,
      unit='step',
      leave=False,
      desc='train',
      disable=not (enabled and sys.stderr.isatty() and jax.process_index() == 0),
    )

  def update(self, num: int, loss: float) -> None:
    self._bar.update(num)
    self._bar.set_postfix(loss=f'{loss:.4f}')

  def close(self) -> None:
    self._bar.close()


@dataclasses.dataclass
class LoopResult:
  """How the loop ended: the state, the last step and why it stopped."""

  state: Any
  step: int
  stopped: str  # 'done', 'preempted' or 'time_budget'.
  train_seconds: float  # Training time after the first chunk (compilation), hooks excluded.
  examples_trained: int  # Examples trained in that time.


def run_steps(
  driver,
  state,
  data,
  source: batch_plans.IndexSource,
  rng: jax.Array,
  *,
  start_step: int,
  boundaries: Boundaries,
  steps_per_dispatch: int,
  on_boundary: Callable[[int, Any, metrics_lib.MetricSums], None],
  should_stop: Callable[[], str | None],
  skip_nonfinite: bool = False,
  progress: bool = True,
  watch: Instruments | None = None,
) -> LoopResult:
  """Trains from `start_step` to `boundaries.total_steps`.

  Args:
    driver: a `research.train.parallel` driver.
    state: the device-placed train state.
    data: the device-placed training arrays, or an `input_pipeline.Stream` of
      this run's chunks.
    source: which examples each step trains on.
    rng: the run's base key (each step folds in its step number).
    start_step: the step the state is at.
    boundaries: the steps at which to call `on_boundary`.
    steps_per_dispatch: steps per compiled call (chunks never cross a boundary).
    on_boundary: called as on_boundary(step, state, sums) with the (sum, count)
      train metrics since the last call ('skipped_steps' with skip_nonfinite).
    should_stop: polled after every chunk is dispatched: None to go on, or a reason
      ('preempted', 'time_budget'); the loop then calls on_boundary and returns. Or
      a function giving that answer, called when the chunk's metrics are read, one
      chunk later (a stop agreed by the processes on the devices, which the host
      does not wait for: `parallel.DataParallel.any_process`).
    skip_nonfinite: drop non-finite steps from the metrics instead of raising.
    progress: show a progress bar (on a terminal).
    watch: the run's wall clock and profile (the caller closes the profile).

  Returns:
    a LoopResult.

  Raises:
    NonFiniteLossError: naming the first step whose loss or gradient is not finite.
  """
  sums, bar = metrics_lib.MetricSums(), Progress(boundaries.total_steps, start_step, progress)
  clock: dict[str, Any] = {'start': None, 'hooks': 0.0, 'examples': 0, 'skipped': 0}
  step, pending, stopped = start_step, None, 'done'
  watch = watch or Instruments()

  def consume():
    chunk_metrics, first, num, agreed = pending
    chunk_metrics, bad = check_finite(jax.device_get(chunk_metrics), first, skip=skip_nonfinite)
    sums.add(chunk_metrics)
    clock['skipped'] += bad
    if clock['start'] is None:  # Time from the end of the compiled first chunk.
      clock['start'] = time.perf_counter()
    else:
      clock['examples'] += int(num * source.local_batch * jax.process_count())
    bar.update(num, sums.result().get('loss', math.nan))
    return agreed() if agreed is not None else None

  try:
    while step < boundaries.total_steps:
      num = min(steps_per_dispatch, boundaries.next_after(step) - step)
      state, chunk_metrics = _dispatch(driver, state, data, source, step, num, rng, watch)
      answer = should_stop()
      stop, later = (None, answer) if callable(answer) else (answer, None)
      if pending is not None:
        stop = consume() or stop  # The device is already busy with this chunk.
      pending, step = (chunk_metrics, step, num, later), step + num
      if stop or step == boundaries.next_after(step - 1):
        stop = consume() or stop
        pending = None
        watch.trace.after_sync(step)  # The devices are done: a profile may end here.
        t0 = time.perf_counter()
        if skip_nonfinite:  # Steps dropped since the last boundary.
          sums.add({'skipped_steps': (float(clock['skipped']), 1.0)})
          clock['skipped'] = 0
        on_boundary(step, state, sums)
        clock['hooks'] += time.perf_counter() - t0
        sums = metrics_lib.MetricSums()
      if stop:
        stopped = stop
        break
  finally:
    bar.close()
  return _result(state, step, stopped, clock)


def _result(state, step: int, stopped: str, clock: dict[str, Any]) -> LoopResult:
  """The LoopResult, timed from the end of the first chunk, hooks excluded."""
  start = clock['start']
  seconds = time.perf_counter() - start - clock['hooks'] if start is not None else 0.0
  return LoopResult(state, step, stopped, seconds, clock['examples'])
