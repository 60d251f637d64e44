"""Which examples each step trains on (or evaluates), as fixed-shape index and mask arrays.

Which examples step s trains on is a pure function of (seed, s) (`IndexSource`), so
a run resumed at any step, with any steps-per-dispatch, sees exactly the batches an
uninterrupted run sees.
"""

import dataclasses
import functools
import math

import numpy as np

SAMPLINGS = ('epochs', 'windows', 'streams')


def batch_plan(
  num_examples: int,
  batch_size: int,
  *,
  shuffle: bool,
  seed: int = 0,
  epoch: int = 0,
  process: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Indices and masks of one pass over `num_examples` in batches.

  The last batch is padded with index 0 and mask 0, so every example is used
  exactly once and every batch has the same shape. In a multi-process run each
  process plans over its own shard with its own order (`process` set).

  Returns:
    idx int32 (S, batch_size) and mask float32 (S, batch_size), S = ceil(N / B).
  """
  key = [seed, epoch] if process is None else [seed, epoch, process]
  order = (
    np.random.default_rng(key).permutation(num_examples) if shuffle else np.arange(num_examples)
  )
  num_steps = math.ceil(num_examples / batch_size)
  idx = np.zeros(num_steps * batch_size, np.int32)
  mask = np.zeros(num_steps * batch_size, np.float32)
  idx[:num_examples] = order
  mask[:num_examples] = 1.0
  return idx.reshape(num_steps, batch_size), mask.reshape(num_steps, batch_size)


@dataclasses.dataclass(frozen=True)
class IndexSource:
  """Example indices of every training step.

  'epochs': passes over the N examples in a fresh order per epoch (seeded by seed,
  epoch and process), the last batch of a pass padded with mask 0. 'windows': every
  step draws its batch uniformly with replacement, seeded by (seed, step, process).
  'streams': the N examples are local_batch streams of K = N / local_batch
  consecutive windows (example b K + k is window k of stream b); step s reads
  window s mod K of every stream, row b of the batch always stream b, so a carried
  state continues across steps (`research.train.steps.CarriedTrainState`).

  Attributes:
    num_examples: N, this process's examples.
    local_batch: this process's share of the global batch.
    sampling: 'epochs' or 'windows'.
    seed: the run's seed.
    process: this process's index in a multi-process run, else None.
  """

  num_examples: int
  local_batch: int
  sampling: str = 'epochs'
  seed: int = 0
  process: int | None = None

  def __post_init__(self):
    if self.sampling == 'streams' and self.num_examples % self.local_batch:
      raise ValueError(
        f"'streams' needs a whole number of windows per stream: {self.num_examples} "
        f'examples in {self.local_batch} streams'
      )

  @property
  def steps_per_epoch(self) -> int:
    """Steps in one pass over the examples ('windows': as many as fill one pass)."""
    return math.ceil(self.num_examples / self.local_batch)

  def chunk(self, step: int, num: int) -> tuple[np.ndarray, np.ndarray]:
    """idx int32 (num, local_batch) and mask float32 (num, local_batch) of steps
    step .. step + num - 1 ('epochs': all within one epoch)."""
    if self.sampling == 'windows':
      key = lambda s: [self.seed, s] + ([] if self.process is None else [self.process])
      idx = np.stack(
        [
          np.random.default_rng(key(s)).integers(0, self.num_examples, self.local_batch)
          for s in range(step, step + num)
        ]
      )
      return idx.astype(np.int32), np.ones(idx.shape, np.float32)
    if self.sampling == 'streams':
      k = self.steps_per_epoch
      window_S = np.arange(step, step + num) % k
      idx = np.arange(self.local_batch)[None, :] * k + window_S[:, None]
      return idx.astype(np.int32), np.ones(idx.shape, np.float32)
    epoch, first = divmod(step, self.steps_per_epoch)
    idx, mask = self._epoch_plan(epoch)
    return idx[first : first + num], mask[first : first + num]

  # Chunks of one epoch share its plan. One entry, and the plan lives as long as the
  # run that owns it, so the cache holding `self` leaks nothing (B019).
  @functools.lru_cache(maxsize=1)  # noqa: B019
  def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    return batch_plan(
      self.num_examples,
      self.local_batch,
      shuffle=True,
      seed=self.seed,
      epoch=epoch,
      process=self.process,
    )
