"""Checks on the run directory, made before anything is written into it.

A workdir is a local directory or a URL (gs://bucket/runs/cnn); both go through
`etils.epath` (see `research.train.files`), so URLs are never turned into paths.
"""

import uuid

from research.errors import UserInputError
from research.train import files


def _first_line(e: Exception) -> str:
  text = getattr(e, 'strerror', None) or str(e) or type(e).__name__
  return text.splitlines()[0][:300]


def _check_writable(workdir: str, path: str) -> None:
  """Creates `path` and writes and deletes a small file there."""
  try:
    files.makedirs(path)
    probe = files.as_path(path) / f'.write-test-{uuid.uuid4().hex}'
    probe.write_text('')
    probe.unlink()
  # Beyond OSError, URL back ends raise their own errors (TensorFlow's OpError,
  # missing credentials or fsspec packages): all mean the workdir cannot be used.
  except Exception as e:  # pylint: disable=broad-except
    raise UserInputError(f'workdir {workdir!r} is not writable: {_first_line(e)}') from None


def _holds_checkpoints(path: str) -> bool:
  checkpoints = files.as_path(path) / 'checkpoints'
  return checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())


def prepare_workdir(workdir: str, resume: bool) -> str:
  """Creates `workdir` if needed and makes sure a run may write there.

  A directory that already holds checkpoints is only reused with `resume`, so a
  new run never overwrites an earlier one's results.

  Args:
    workdir: a local directory (made absolute, '~' expanded) or a URL such as
      gs://bucket/runs/cnn (kept as it is).
    resume: whether the run continues from the workdir's checkpoints.

  Returns:
    the absolute local path of the workdir, or its URL.

  Raises:
    UserInputError: if the workdir is empty, has an unknown URL scheme, is not
      writable, or holds checkpoints from an earlier run while `resume` is False.
  """
  if not workdir:
    raise UserInputError(
      '--workdir is required: the directory for checkpoints, metrics and reports'
    )
  try:
    path = files.absolute(workdir)
  except KeyError:  # epath knows no file system for this scheme.
    scheme = workdir.split('://', 1)[0]
    raise UserInputError(
      f'workdir {workdir!r}: unsupported URL scheme {scheme!r}; '
      'use a local directory or gs://, s3://, az://'
    ) from None
  _check_writable(workdir, path)
  if not resume and _holds_checkpoints(path):
    raise UserInputError(
      f'workdir {workdir!r} already holds checkpoints of an earlier '
      'run: pass --resume to continue it, or use a new --workdir'
    )
  return path
