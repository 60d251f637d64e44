"""Resized image splits kept on disk, so a later run reads them without TensorFlow.

Reading a tfds split and resizing it goes through TensorFlow, whose import alone
costs a run seconds of start-up; a second run of the same experiment reads the same
arrays. An entry is keyed by the tfds data set's prepared directory (which names its
version), the split, the image size and the process share, and it is valid only
while that directory's `dataset_info.json` keeps the size and modification time it
had when the entry was written (tfds rewrites it when it prepares the data again).
"""

import hashlib
import json
import logging
import os
import tempfile
from typing import Any
import zipfile
import zlib

import numpy as np

_INFO = 'dataset_info.json'
ENV_VARIABLE = 'RESEARCH_DATA_CACHE'


def default_directory() -> str:
  """$RESEARCH_DATA_CACHE ('' switches the cache off), else
  $XDG_CACHE_HOME/research/prepared_images (~/.cache/research/prepared_images)."""
  if ENV_VARIABLE in os.environ:
    return os.environ[ENV_VARIABLE]
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'research', 'prepared_images')


def _stamp(tfds_data_dir: str) -> list[int] | None:
  """(size, mtime_ns) of the prepared data's dataset_info.json, None if absent."""
  try:
    info = os.stat(os.path.join(tfds_data_dir, _INFO))
  except OSError:
    return None
  return [info.st_size, info.st_mtime_ns]


class PreparedSplits:
  """Entries (arrays and their description) under `cache_dir` for one tfds data set.

  Args:
    cache_dir: local directory of the entries (created on the first save).
    tfds_data_dir: the data set's prepared directory (`builder.data_dir`); a path
      that is not local (gs://...) is never cached.
  """

  def __init__(self, cache_dir: str, tfds_data_dir: str):
    self.cache_dir = cache_dir
    self.tfds_data_dir = str(tfds_data_dir)
    self.enabled = '://' not in self.tfds_data_dir

  def _path(self, **key) -> str:
    text = json.dumps([self.tfds_data_dir, key], sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    return os.path.join(self.cache_dir, f'{digest}.npz')

  def load(self, **key) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(arrays, description) saved under `key`, or None if absent, stale or
    unreadable (truncated, corrupt: logged as a warning, to be rebuilt)."""
    path = self._path(**key)
    stamp = _stamp(self.tfds_data_dir)
    if not self.enabled or stamp is None or not os.path.exists(path):
      return None
    try:
      with np.load(path, allow_pickle=False) as entry:
        arrays = {k: entry[k] for k in entry.files if k != 'description'}
        description = json.loads(str(entry['description']))
    # A truncated or corrupt zip raises BadZipFile, EOFError or zlib.error; the caller
    # reads the split again and writes a whole entry in its place.
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
      logging.getLogger(__name__).warning(
        'prepared data cache entry %s is unreadable (%s: %s): rebuilding it',
        path,
        type(e).__name__,
        e,
      )
      return None
    if description.pop('stamp', None) != stamp:
      return None
    return arrays, description

  def save(self, arrays: dict[str, np.ndarray], description: dict[str, Any], **key) -> None:
    """Writes an entry atomically (a temporary file renamed into place)."""
    stamp = _stamp(self.tfds_data_dir)
    if not self.enabled or stamp is None:
      return
    os.makedirs(self.cache_dir, exist_ok=True)
    text = json.dumps(dict(description, stamp=stamp))
    fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix='.npz.tmp')
    try:
      with os.fdopen(fd, 'wb') as f:
        entry: dict[str, Any] = dict(arrays, description=np.array(text))
        np.savez(f, **entry)
      os.chmod(tmp, 0o644)  # As a plain file: others sharing the cache may read it.
      os.replace(tmp, self._path(**key))
    except BaseException:
      os.unlink(tmp)
      raise
