"""Batch plans, the non-finite guard and evaluation, shared by every family.

The training loop itself is `research.train.step_loop`.
"""

import math

import jax
from jax.experimental import multihost_utils
import numpy as np

from research.errors import NonFiniteLossError
from research.train import metrics as metrics_lib


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


def _chunks(start: int, num_steps: int, size: int):
  for first in range(start, num_steps, size):
    yield slice(first, min(first + size, num_steps))


def format_metrics(values: dict[str, float]) -> str:
  """'loss = 0.1234 | accuracy = 97.10%': loss first, accuracies as percentages."""
  parts = []
  for k, v in sorted(values.items(), key=lambda kv: kv[0] != 'loss'):
    parts.append(f'{k} = {100 * v:.2f}%' if 'accuracy' in k else f'{k} = {v:.4f}')
  return ' | '.join(parts)


def check_finite(chunk_metrics, first_step: int, *, epoch: int | None = None, skip: bool = False):
  """Raises NonFiniteLossError naming the first bad step, or, when `skip`, drops it.

  Args:
    chunk_metrics: host metrics of consecutive steps, stacked on axis 0, with
      'loss' and optionally 'grad_norm' pairs.
    first_step: optimiser step before the first of them.
    epoch: named in the message when given.
    skip: drop the bad steps instead of raising.

  Returns:
    the metrics with non-finite steps removed, and how many were removed.
  """
  loss = np.asarray(chunk_metrics['loss'][0])
  norm = np.asarray(chunk_metrics.get('grad_norm', (loss,))[0])
  bad = ~(np.isfinite(loss) & np.isfinite(norm))
  if bad.any() and not skip:
    i = int(np.flatnonzero(bad)[0])
    what = 'loss' if not np.isfinite(loss[i]) else 'gradient norm'
    value = loss[i] if what == 'loss' else norm[i]
    where = '' if epoch is None else f' (epoch {epoch + 1})'
    raise NonFiniteLossError(f'training {what} is {value} at step {first_step + i + 1}{where}')
  keep = jax.tree.map(lambda x: np.asarray(x)[~bad], chunk_metrics)
  return keep, int(bad.sum())


def _process() -> int | None:
  return jax.process_index() if jax.process_count() > 1 else None


def _local(global_batch: int) -> int:
  """This process's share of a global batch."""
  return global_batch // jax.process_count()


def num_steps_per_epoch(num_examples: int, global_batch: int) -> int:
  """Steps in one pass over this process's `num_examples` at a global batch size."""
  return math.ceil(num_examples / _local(global_batch))


def evaluate(
  driver, state, data, num_examples: int, batch_size: int, steps_per_dispatch: int = 8
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Evaluates every example once, in order (each process its own shard).

  Returns:
    averaged global metrics, and the loss function's per-example outputs as host
    arrays with the padding removed (N, ...): in a multi-process run, every
    process's outputs in process order.
  """
  idx, mask = batch_plan(num_examples, _local(batch_size), shuffle=False)
  sums = metrics_lib.MetricSums()
  outputs = []
  for sl in _chunks(0, len(idx), steps_per_dispatch):
    m, out = driver.evaluate(state, data, idx[sl], mask[sl])
    sums.add(jax.device_get(m))
    outputs.append(jax.device_get(out))
  flat = {
    k: np.concatenate([o[k].reshape((-1,) + o[k].shape[2:]) for o in outputs])[:num_examples]
    for k in outputs[0]
  }
  if jax.process_count() > 1:
    flat = multihost_utils.process_allgather(flat, tiled=True)
  return sums.result(), flat
