"""Orbax checkpoints of the train state in `<workdir>/checkpoints/<step>`."""

import logging
import os
import re
import sys
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from research.errors import UserInputError
from research.train import files


def write_cause(error: BaseException) -> str:
  """The operating system's reason for a failed write ('No space left on device'),
  found in `error` or the errors it was raised from, else its first line.

  Orbax raises write errors of its background thread again in the caller, often as
  TensorStore's ValueError that carries the errno as `os_error_code='28'`.
  """
  seen: BaseException | None = error
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno:
      return os.strerror(seen.errno)
    code = re.search(r"os_error_code='?(\d+)", str(seen))
    if code:
      return os.strerror(int(code.group(1)))
    seen = seen.__cause__ or seen.__context__
  text = str(error) or type(error).__name__
  return text.splitlines()[0][:300]


class _OrbaxErrorsReraised(logging.Filter):
  """Drops orbax's error records: orbax logs a failure of its background save thread
  with tracebacks (and asyncio those of its other write tasks), then raises it again
  in the caller, where `Checkpointer` turns it into one line naming the cause."""

  def filter(self, record: logging.LogRecord) -> bool:
    orbax = '/orbax/' in record.pathname or '/orbax/' in record.getMessage()
    return not (record.levelno >= logging.ERROR and orbax)


_ORBAX_ERRORS_FILTER = _OrbaxErrorsReraised()


def _without_closed_loop_noise(hook: Callable[[Any], None]) -> Callable[[Any], None]:
  """`hook`, silent about 'Event loop is closed': when a save fails, the writes
  still in flight complete into orbax's closed event loop, each with a traceback."""
  if getattr(hook, 'quiet_closed_loop', False):
    return hook

  def unraisable(info: Any) -> None:
    if not (
      isinstance(info.exc_value, RuntimeError) and 'Event loop is closed' in str(info.exc_value)
    ):
      hook(info)

  unraisable.quiet_closed_loop = True  # type: ignore[attr-defined]
  return unraisable


class Checkpointer:
  """Saves and restores the train state's pytree (step, params, opt_state).

  Orbax writes each checkpoint to a temporary directory and renames it when complete
  (on object stores such as gs://, it writes a commit marker last), so a crash
  mid-write never leaves a checkpoint that is taken as valid.

  Args:
    workdir: run directory, a local path or a URL (gs://bucket/run); checkpoints
      go to `<workdir>/checkpoints` (`directory`, an `epath.Path`).
    max_to_keep: how many recent checkpoints to keep.
  """

  def __init__(self, workdir: str, max_to_keep: int = 3):
    self.directory = files.as_path(files.absolute(workdir)) / 'checkpoints'
    self._pending: int | None = None  # The step being written, if any.
    self._failed = False  # A save could not be written (and was reported).
    for logger in ('absl', 'asyncio'):  # Orbax's logs, its tasks' unretrieved errors.
      logging.getLogger(logger).addFilter(_ORBAX_ERRORS_FILTER)  # Added once (same object).
    sys.unraisablehook = _without_closed_loop_noise(sys.unraisablehook)
    self._manager = ocp.CheckpointManager(
      self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    )

  def latest_step(self) -> int | None:
    """Step of the newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of the complete checkpoints, oldest first."""
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Starts saving `state` at `step`: orbax copies the device arrays to host memory
    and writes them in a background thread, so only the copy holds up the caller.

    Raises:
      UserInputError: if this or the previous save could not be written (see `wait`).
    """
    self.wait()  # Orbax waits for the previous save anyway; this names its step.
    self._pending = int(step)
    try:
      self._manager.save(int(step), args=ocp.args.StandardSave(state))
    except Exception as e:  # pylint: disable=broad-except
      raise self._write_error(e) from None

  def restore(self, step: int, like: Any) -> Any:
    """Restores the checkpoint at `step` into the structure, shapes and shardings of
    `like` (a state of arrays or `jax.ShapeDtypeStruct`s with `.sharding`)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self._manager.restore(int(step), args=ocp.args.StandardRestore(abstract))

  def restore_latest(self, like: Any, log=print) -> tuple[int | None, Any]:
    """Restores the newest checkpoint that reads back; unreadable ones are skipped.

    A checkpoint whose files are missing or corrupt (e.g. truncated by a crash) is
    reported through `log` and the next older one is tried.

    Returns:
      (step, state), or (None, like) when there is no checkpoint.

    Raises:
      ValueError: if checkpoints exist but none can be restored into `like`
        (the message of the newest failure).
    """
    first_error = None
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        return step, self.restore(step, like)
      except Exception as e:  # pylint: disable=broad-except
        message = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        log(f'Checkpoint at step {step} could not be restored ({message}): skipped.')
        first_error = first_error or message
    if first_error is not None:
      raise ValueError(first_error)
    return None, like

  def wait(self) -> None:
    """Blocks until pending saves are on disk.

    Raises:
      UserInputError: naming the step that could not be written, the cause (e.g.
        'No space left on device') and the newest complete checkpoint, which is
        kept: orbax renames a checkpoint into place only once it is whole.
    """
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._write_error(e) from None
    finally:
      self._pending = None

  def _write_error(self, error: Exception) -> UserInputError:
    self._failed = True
    self._manager.reload()  # Forget the failed step: only complete ones count.
    good = self._manager.latest_step()
    kept = (
      'no earlier checkpoint' if good is None else f'the last good checkpoint, step {good}, is kept'
    )
    return UserInputError(
      f'the checkpoint at step {self._pending} could not be written to {self.directory}: '
      f'{write_cause(error)}; {kept}: free the space or fix the permissions and rerun '
      'with --resume'
    )

  def close(self) -> None:
    """Waits for pending saves and releases orbax's threads.

    Raises:
      UserInputError: if a pending save could not be written (unless `save` or
        `wait` has already reported that failure).
    """
    try:
      self._manager.close()
    except Exception as e:  # pylint: disable=broad-except
      if not self._failed:  # Orbax raises a failed save again on close.
        raise self._write_error(e) from None
