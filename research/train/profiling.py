"""Profiles of train steps on request: `profile_steps='START:END'` writes a
`jax.profiler` trace of steps START .. END - 1 (the state going from step START to
END) on process 0 into `<workdir>/profile/`, for TensorBoard's profile plugin.

The step loop puts chunk boundaries at START and END (it waits for the devices
there), so the trace holds exactly those steps, one `jax.profiler.StepTraceAnnotation`
per chunk.
"""

import contextlib
import re
from typing import Any

import jax

from research.errors import UserInputError

FORM = "'' (off) or 'START:END' with 0 <= START < END"


def parse_steps(value: str) -> tuple[int, int] | None:
  """`profile_steps` as (START, END), or None for ''.

  Raises:
    UserInputError: for anything but '' or 'START:END' with 0 <= START < END.
  """
  if value == '':
    return None
  match = re.fullmatch(r'\s*(\d+)\s*:\s*(\d+)\s*', str(value))
  if match is None or int(match[1]) >= int(match[2]):
    raise UserInputError(f'profile_steps must be {FORM}, got {value!r}')
  return int(match[1]), int(match[2])


class StepTrace:
  """Traces the train steps of a window [start, end) into `logdir`.

  Args:
    window: (START, END) from `parse_steps`, or None (then nothing is traced).
    logdir: where `jax.profiler` writes (`<workdir>/profile`); None: no trace.
  """

  def __init__(self, window: tuple[int, int] | None, logdir: str | None):
    self.window = window if logdir is not None else None
    self.logdir = logdir
    self._running = self._done = False

  @property
  def steps(self) -> tuple[int, ...]:
    """The steps at which the loop must put chunk boundaries."""
    return self.window or ()

  def before_chunk(self, step: int) -> None:
    """Starts the trace if the chunk starting at `step` is the window's first."""
    if self.window and self.logdir and not (self._running or self._done):
      start, end = self.window
      if start <= step < end:
        jax.profiler.start_trace(self.logdir)
        self._running = True

  def annotate(self, step: int) -> Any:
    """A context for dispatching the chunk starting at `step`: a step annotation
    while tracing, else nothing."""
    if self._running:
      return jax.profiler.StepTraceAnnotation('train', step_num=step)
    return contextlib.nullcontext()

  def after_sync(self, step: int) -> None:
    """Stops the trace once the devices have finished step `step` >= END."""
    if self._running and self.window and step >= self.window[1]:
      self.close()

  def close(self) -> None:
    """Stops a running trace (the end of the loop, or a stop within the window)."""
    if self._running:
      jax.profiler.stop_trace()
      self._running, self._done = False, True
