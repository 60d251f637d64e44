"""Checks on the run directory, made before anything is written into it.

A workdir is a local directory or a URL (gs://bucket/runs/cnn); both go through
`etils.epath` (see `research.train.files`), so URLs are never turned into paths.
"""

import json
import os
import socket
import threading
import time
from typing import Any, Callable
import uuid

import jax

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


LOCK_NAME = 'run.lock'
# The live run rewrites its lock this often; a lock of another host that has not been
# rewritten for STALE_SECONDS is taken to belong to a run that is gone (killed with its
# machine). Liveness on the same host is its process id, checked at once.
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0


def _describe(owner: dict[str, Any]) -> str:
  return (
    f'host {owner.get("host")}, pid {owner.get("pid")}, process {owner.get("process_index")}, '
    f'started {owner.get("started")}'
  )


def _pid_alive(pid: int) -> bool:
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Another user's live process.
    return True
  return True


class WorkdirLock:
  """One live run per workdir: `<workdir>/run.lock` names its owner.

  The owner is the run's primary process (the other processes of a multi-process run
  belong to the same run and take no lock). A second run into a live workdir stops
  with a `UserInputError` naming the owner. A lock whose owner is gone (on this host:
  its process has ended; on another host: no heartbeat for `stale_seconds`) is taken
  over with a log line. The lock is removed when the run ends, however it ends. On a
  local disk the lock is created atomically; on object stores (gs://) a check then a
  write, which two launches in the same second can both pass.

  Args:
    workdir: the prepared workdir (see `prepare_workdir`).
    log: receives the take-over line.
    primary: whether this process takes the lock.
    heartbeat_seconds: how often the lock is rewritten while the run lives.
    stale_seconds: age of another host's last heartbeat after which its lock is
      taken over.
  """

  def __init__(
    self,
    workdir: str,
    log: Callable[[str], None] = print,
    *,
    primary: bool = True,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    stale_seconds: float = STALE_SECONDS,
  ):
    self.path = files.join(workdir, LOCK_NAME)
    self._workdir, self._log, self._primary = workdir, log, primary
    self._heartbeat_seconds, self._stale_seconds = heartbeat_seconds, stale_seconds
    self._owner: dict[str, Any] = {}
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def __enter__(self) -> 'WorkdirLock':
    if self._primary:
      self._acquire()
      self._thread = threading.Thread(target=self._beat, name='workdir-lock', daemon=True)
      self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    if not self._primary:
      return
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    if self._ours():  # Not taken over meanwhile.
      files.as_path(self.path).unlink(missing_ok=True)

  def _acquire(self) -> None:
    owner = self._read()
    if owner is not None or files.exists(self.path):
      if owner is not None and self._alive(owner):
        raise UserInputError(
          f'workdir {self._workdir!r} is in use by a live run ({_describe(owner)}): '
          f'wait for it to end or use another --workdir (if that run is gone, delete {self.path})'
        )
      gone = _describe(owner) if owner else 'unreadable'
      self._log(f'Taking over the lock of {self._workdir} from a run that is gone ({gone}).')
      files.as_path(self.path).unlink(missing_ok=True)
    self._owner = {
      'host': socket.gethostname(),
      'pid': os.getpid(),
      'process_index': jax.process_index(),
      'started': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
      'heartbeat': time.time(),
    }
    if not self._write(create=True):
      raise UserInputError(
        f'workdir {self._workdir!r} was locked by another run starting at the same time '
        f'({_describe(self._read() or {})})'
      )

  def _alive(self, owner: dict[str, Any]) -> bool:
    if owner.get('host') == socket.gethostname():
      return _pid_alive(int(owner.get('pid', 0)))
    return time.time() - float(owner.get('heartbeat', 0)) < self._stale_seconds

  def _ours(self) -> bool:
    owner = self._read() or {}
    return all(owner.get(k) == self._owner.get(k) for k in ('host', 'pid', 'started'))

  def _read(self) -> dict[str, Any] | None:
    try:
      owner = json.loads(files.read_text(self.path))
    except (OSError, ValueError):  # Absent, or not (yet) a whole record.
      return None
    return owner if isinstance(owner, dict) else None

  def _write(self, create: bool = False) -> bool:
    """Writes the owner record; with `create`, only if no lock exists (False if one does)."""
    text = json.dumps(self._owner)
    if files.is_url(self.path):
      if create and files.exists(self.path):
        return False
      files.write_text(self.path, text)
      return True
    tmp = f'{self.path}.{os.getpid()}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
    try:
      if not create:
        os.replace(tmp, self.path)
        return True
      try:
        os.link(tmp, self.path)  # Atomic, and fails if the lock exists.
      except FileExistsError:
        return False
      return True
    finally:
      if os.path.exists(tmp):
        os.unlink(tmp)

  def _beat(self) -> None:
    while not self._stop.wait(self._heartbeat_seconds):
      self._owner['heartbeat'] = time.time()
      try:
        if self._ours():
          self._write()
      except Exception:  # pylint: disable=broad-except
        pass  # A missed heartbeat only makes the lock look older.
