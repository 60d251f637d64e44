"""Run files through `etils.epath`: a workdir may be a local directory or a URL.

Every file a run writes or reads in its workdir (manifest, metrics, reports,
samples, PNGs) goes through these helpers, so `--workdir=gs://bucket/runs/cnn`
works like a local directory: epath hands URLs to TensorFlow's gfile (or fsspec)
and local paths to the operating system. Paths are passed around as `str`.
"""

import json
import os
from typing import IO, Any, Callable

from etils import epath

PathLike = str | os.PathLike


def is_url(path: PathLike) -> bool:
  """True for 'scheme://...' paths (gs://, s3://, ...), False for local ones."""
  return '://' in os.fspath(path)


def absolute(path: PathLike) -> str:
  """A URL unchanged (bar a trailing '/'); a local path with '~' expanded, absolute."""
  path = os.fspath(path)
  if is_url(path):
    return str(epath.Path(path))
  return os.path.abspath(os.path.expanduser(path))


def as_path(path: PathLike) -> epath.Path:
  """`path` as an `epath.Path` (what orbax and other epath users take)."""
  return epath.Path(path)


def join(workdir: PathLike, *names: str) -> str:
  """`workdir/name/...` for a local directory or a URL (never `os.path.join`ed)."""
  return str(epath.Path(workdir).joinpath(*names))


def exists(path: PathLike) -> bool:
  """True if the file or directory exists."""
  return epath.Path(path).exists()


def makedirs(path: PathLike) -> None:
  """Creates the directory `path` and its parents if missing."""
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def open_file(path: PathLike, mode: str = 'r') -> IO[Any]:
  """Opens a file for streaming ('r', 'w', 'a', with 'b' for bytes; text is UTF-8).

  A file opened for writing gets its parent directories first. On object stores
  (gs://) appending rewrites the object: keep appends to a few per minute.
  """
  p = epath.Path(path)
  if mode[0] in 'wa':
    p.parent.mkdir(parents=True, exist_ok=True)
  return p.open(mode, encoding=None if 'b' in mode else 'utf-8')


def read_text(path: PathLike) -> str:
  """The UTF-8 text of the file."""
  with open_file(path, 'r') as f:
    return f.read()


def read_json(path: PathLike) -> Any:
  """The parsed JSON content of the file."""
  return json.loads(read_text(path))


def write_text(path: PathLike, text: str) -> str:
  """Writes `text` (UTF-8) to `path`, replacing it; returns `path` as a str."""
  with open_file(path, 'w') as f:
    f.write(text)
  return os.fspath(path)


def write_bytes(path: PathLike, data: bytes) -> str:
  """Writes `data` to `path` (e.g. an encoded PNG), replacing it; returns `path`."""
  with open_file(path, 'wb') as f:
    f.write(data)
  return os.fspath(path)


def write_json(
  path: PathLike, obj: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> str:
  """Writes `obj` as indented JSON (a trailing newline) to `path`; returns `path`.

  Args:
    path: destination file.
    obj: JSON-serialisable data.
    sort_keys: sort the keys of every mapping.
    default: called for objects json cannot serialise (e.g. `str`); without it
      they raise TypeError.
  """
  text = json.dumps(obj, indent=2, sort_keys=sort_keys, default=default)
  return write_text(path, text + '\n')
