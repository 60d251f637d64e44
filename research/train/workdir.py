"""Checks on the run directory, made before anything is written into it."""

import os
import tempfile

from research.errors import UserInputError


def prepare_workdir(workdir: str, resume: bool) -> str:
  """Creates `workdir` if needed and makes sure a run may write there.

  A directory that already holds checkpoints is only reused with `resume`, so a
  new run never overwrites an earlier one's results.

  Returns:
    the absolute path of the workdir.

  Raises:
    UserInputError: if the workdir is empty, not writable, or holds checkpoints
      from an earlier run while `resume` is False.
  """
  if not workdir:
    raise UserInputError('--workdir is required: the directory for checkpoints, '
                         'metrics and reports')
  path = os.path.abspath(os.path.expanduser(workdir))
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix='.write-test-'):
      pass
  except OSError as e:
    raise UserInputError(f'workdir {workdir!r} is not writable: '
                         f'{e.strerror or e}') from None
  checkpoints = os.path.join(path, 'checkpoints')
  if not resume and os.path.isdir(checkpoints) and any(
      name.isdigit() for name in os.listdir(checkpoints)):
    raise UserInputError(f'workdir {workdir!r} already holds checkpoints of an earlier '
                         'run: pass --resume to continue it, or use a new --workdir')
  return path
