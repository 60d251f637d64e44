"""Graceful stop on SIGTERM / SIGINT or a time budget: finish the step, checkpoint, exit.

In a multi-process run a signal usually reaches one process first (or only one:
a single preempted host). Every process must stop at the same step, since
checkpointing and every train step are collectives, so the processes agree: the
trainer ORs each process's flags on the devices behind the chunk just dispatched
(`parallel.DataParallel.any_process`) and reads them with that chunk's metrics, a
chunk later, so no process waits for the others at every chunk; a loop without
device work agrees with `agreed_stop`, an all-gather that waits for all processes.

Why not `jax.experimental.multihost_utils.reached_preemption_sync_point`: it only
knows SIGTERM (caught by JAX's own C++ handler, which fights with ours), not
SIGINT or a time budget, needs `jax_enable_preemption_service`, and picks a step
after the request. A few flags OR-ed by the devices work on every backend (gloo on CPU).
"""

import signal
import threading
import time
from typing import Any, Sequence

import jax
import numpy as np


def agreed_flags(flags: Sequence[bool]) -> tuple[bool, ...]:
  """Each flag OR-ed over all processes (a cheap no-op in a one-process run).

  In a multi-process run this is a collective: every process must call it at the
  same point of its loop (e.g. every step, or every N steps) with as many flags.

  Args:
    flags: this process's flags, e.g. (signal received, over time budget).

  Returns:
    the flags, each True if it is True on any process.
  """
  if jax.process_count() == 1:
    return tuple(bool(f) for f in flags)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  local = np.asarray([bool(f) for f in flags], np.int32)
  gathered = np.asarray(multihost_utils.process_allgather(local))  # (processes, n)
  return tuple(bool(f) for f in np.asarray(gathered.reshape(-1, len(local)).any(axis=0)))


def agreed_stop(local_request: bool) -> bool:
  """True on every process if any process requested a stop (see `agreed_flags`).

  A collective in a multi-process run: call it at the same iteration everywhere;
  all processes then get the same answer at the same iteration.
  """
  return agreed_flags([local_request])[0]


class StopOnSignal:
  """Context manager that turns SIGTERM, SIGINT or a time budget into a stop request.

  Inside the block, the first signal only sets a flag (`stop_requested()` returns
  True) so the training loop can finish its current steps and checkpoint; a second
  SIGINT raises KeyboardInterrupt at once. Handlers are restored on exit. Outside
  the main thread (where Python allows no handlers) no signal requests a stop.

  Args:
    signals: the signals that request a stop.
    max_seconds: if set, `stop_requested()` also turns True this many seconds
      after the block is entered.
  """

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT), max_seconds: float | None = None):
    self._signals = signals
    self._previous: dict[int, Any] = {}  # signal number -> the handler it replaced
    self._requested = False
    self._max_seconds = max_seconds
    self._entered = time.monotonic()

  def _handle(self, signum, frame):
    del frame
    if self._requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self._requested = True

  def signalled(self) -> bool:
    """True once a signal has arrived."""
    return self._requested

  def over_time_budget(self) -> bool:
    """True once `max_seconds` have passed since the block was entered."""
    return self._max_seconds is not None and time.monotonic() - self._entered >= self._max_seconds

  def stop_requested(self) -> bool:
    """True once a signal has arrived or the time budget is spent (this process)."""
    return self.signalled() or self.over_time_budget()

  def agreed_stop_requested(self) -> bool:
    """`stop_requested()` OR-ed over all processes: a collective (see `agreed_stop`)."""
    return agreed_stop(self.stop_requested())

  def __enter__(self):
    self._entered = time.monotonic()
    if threading.current_thread() is threading.main_thread():
      for s in self._signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous.clear()
    return False
