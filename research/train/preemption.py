"""Graceful stop on SIGTERM / SIGINT: finish the step, checkpoint, exit."""

import signal
import threading


class StopOnSignal:
  """Context manager that turns SIGTERM and SIGINT into a stop request.

  Inside the block, the first signal only sets a flag (`stop_requested()` returns
  True) so the training loop can finish its current steps and checkpoint; a second
  SIGINT raises KeyboardInterrupt at once. Handlers are restored on exit. Outside
  the main thread (where Python allows no handlers) it never requests a stop.
  """

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
    self._signals = signals
    self._previous = {}
    self._requested = False

  def _handle(self, signum, frame):
    if self._requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self._requested = True

  def stop_requested(self) -> bool:
    """True once a signal has arrived."""
    return self._requested

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self._signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous.clear()
    return False
