"""Host-side metric bookkeeping and writers (terminal, JSON lines, TensorBoard).

On device, metrics are (sum, count) pairs; the host adds them up and divides once.
"""

import json
import math
import os
from typing import Any, Mapping

import numpy as np


class MetricSums:
  """Accumulates {name: (sum, count)} pairs fetched from the device."""

  def __init__(self):
    self._sums: dict[str, list[float]] = {}

  def add(self, metrics: Mapping[str, tuple[Any, Any]]) -> None:
    """Adds pairs whose elements may be scalars or arrays (summed over all axes)."""
    for name, (s, c) in metrics.items():
      acc = self._sums.setdefault(name, [0.0, 0.0])
      acc[0] += float(np.sum(s))
      acc[1] += float(np.sum(c))

  def result(self) -> dict[str, float]:
    """{name: sum / count} (NaN where the count is 0)."""
    return {k: (s / c if c else math.nan) for k, (s, c) in self._sums.items()}


class MetricWriter:
  """Writes scalars to `<workdir>/metrics.jsonl` and TensorBoard event files.

  Args:
    workdir: run directory.
    enabled: False on non-primary processes (then nothing is written).
  """

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a', encoding='utf-8')
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, split: str, scalars: Mapping[str, float], **extra) -> None:
    """Records `scalars` for `split` ('train', 'test', ...) at `step`."""
    if not self.enabled:
      return
    record = {'step': int(step), 'split': split, **extra,
              **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tb.add_scalar(f'{split}/{k}', float(v), int(step))
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
