"""Orbax checkpoints of the train state in `<workdir>/checkpoints/<step>`."""

from typing import Any

import jax
import orbax.checkpoint as ocp

from research.train import files


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
    """Starts saving `state` at `step` (asynchronous; see `wait`)."""
    self._manager.save(int(step), args=ocp.args.StandardSave(state))

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
    """Blocks until pending saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
