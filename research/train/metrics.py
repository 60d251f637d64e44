"""Host-side metric bookkeeping and writers (terminal, JSON lines, TensorBoard).

On device, metrics are (sum, count) pairs; the host adds them up and divides once.
"""

import json
import math
import sys
from typing import Any, Mapping

import numpy as np

from research.train import files


class MetricSums:
  """Accumulates {name: (sum, count)} pairs fetched from the device."""

  def __init__(self) -> None:
    self._sums: dict[str, list[float]] = {}

  def add(self, metrics: Mapping[str, tuple[Any, Any]]) -> None:
    """Adds pairs whose elements may be scalars or arrays (summed over all axes)."""
    for name, (s, c) in metrics.items():
      acc = self._sums.setdefault(name, [0.0, 0.0])
      acc[0] += float(np.sum(s))
      acc[1] += float(np.sum(c))

  def merge(self, other: 'MetricSums') -> None:
    """Adds every pair accumulated by `other`."""
    self.add({k: (s, c) for k, (s, c) in other._sums.items()})  # pylint: disable=protected-access

  def result(self) -> dict[str, float]:
    """{name: sum / count} (NaN where the count is 0)."""
    return {k: (s / c if c else math.nan) for k, (s, c) in self._sums.items()}


def format_metrics(values: dict[str, float]) -> str:
  """'loss = 0.1234 | accuracy = 97.10%': loss first, accuracies as percentages."""
  parts = []
  for k, v in sorted(values.items(), key=lambda kv: kv[0] != 'loss'):
    parts.append(f'{k} = {100 * v:.2f}%' if 'accuracy' in k else f'{k} = {v:.4f}')
  return ' | '.join(parts)


class _EventFile:
  """An epath file with only write/flush/close: tensorboardX fsyncs files that have
  `fileno`, which fsspec's remote files have but cannot honour."""

  def __init__(self, path: str):
    self._file = files.open_file(path, 'wb')

  def write(self, data: bytes) -> None:
    self._file.write(data)

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class _EpathEventFiles:
  """A tensorboardX writer factory that opens event files through etils.epath.

  tensorboardX writes gs:// itself only with google-cloud-storage installed (s3://
  with boto3), neither of which we depend on; epath reaches them through
  TensorFlow's gfile (or fsspec), like every other file of the run.
  """

  def open(self, path: str) -> _EventFile:
    return _EventFile(path)

  def directory_check(self, path: str) -> None:
    files.makedirs(path)


def _import_tensorboardx_without_torch():
  """Imports tensorboardX without letting it import PyTorch.

  tensorboardX imports torch whenever it is installed, only to accept torch tensors
  (we hand it Python floats and PNG bytes), which would add PyTorch's import time and
  memory to every run on a machine that has it. Where torch is not imported yet, it
  is hidden for the duration of the import.
  """
  hide = 'torch' not in sys.modules
  if hide:
    sys.modules['torch'] = None  # `import torch` then fails.
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  finally:
    if hide:
      del sys.modules['torch']


def _tensorboard_writer(logdir: str):
  """A tensorboardX SummaryWriter for a local directory or a URL (left unchanged)."""
  _import_tensorboardx_without_torch()
  # pylint: disable=g-import-not-at-top
  from tensorboardX import SummaryWriter
  from tensorboardX import record_writer

  # pylint: enable=g-import-not-at-top
  if files.is_url(logdir):
    # tensorboardX picks a writer by the text before ':'; ours replaces its own.
    record_writer.register_writer_factory(logdir.split(':', 1)[0], _EpathEventFiles())
  return SummaryWriter(logdir)


class MetricWriter:
  """Writes scalars to `<workdir>/metrics.jsonl` and TensorBoard event files.

  Args:
    workdir: run directory, a local path or a URL (gs://bucket/run).
    enabled: False on non-primary processes (then nothing is written).
  """

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._jsonl: Any = None  # Both stay None when disabled (every method checks).
    self._tb: Any = None
    if enabled:
      self._jsonl = files.open_file(files.join(workdir, 'metrics.jsonl'), 'a')
      self._tb = _tensorboard_writer(files.join(workdir, 'tensorboard'))

  def write(self, step: int, split: str, scalars: Mapping[str, float], **extra) -> None:
    """Records `scalars` for `split` ('train', 'test', ...) at `step`."""
    if not self.enabled:
      return
    record = {
      'step': int(step),
      'split': split,
      **extra,
      **{k: float(v) for k, v in scalars.items()},
    }
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tb.add_scalar(f'{split}/{k}', float(v), int(step))
    self._tb.flush()

  def hparams(self, values: Mapping[str, Any]) -> None:
    """The run's settings on TensorBoard's HParams tab (other types as text)."""
    if not self.enabled:
      return
    from tensorboardX.summary import hparams  # pylint: disable=g-import-not-at-top

    plain = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in values.items()}
    writer = self._tb._get_file_writer()  # pylint: disable=protected-access
    for summary in hparams(plain, {}):
      writer.add_summary(summary)
    self._tb.flush()

  def image(self, step: int, tag: str, png: bytes) -> None:
    """A PNG (e.g. a confusion matrix or sample grid) as a TensorBoard image."""
    if not self.enabled:
      return
    import io  # pylint: disable=g-import-not-at-top

    from PIL import Image  # pylint: disable=g-import-not-at-top

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))
    self._tb.add_image(tag, pixels, int(step), dataformats='HWC')
    self._tb.flush()

  def text(self, step: int, tag: str, text: str) -> None:
    """Text (samples, decoded examples) on TensorBoard's Text tab."""
    if self.enabled:
      self._tb.add_text(tag, text, int(step))
      self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
