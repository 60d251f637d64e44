"""Evaluation shared by every family: each example once, in order, in fixed-shape batches.

The training loop is `research.train.step_loop`; the batch plans both read are
`research.train.batch_plans`.
"""

import jax
from jax.experimental import multihost_utils
import numpy as np

from research.train import batch_plans
from research.train import metrics as metrics_lib


def _chunks(start: int, num_steps: int, size: int):
  for first in range(start, num_steps, size):
    yield slice(first, min(first + size, num_steps))


def _local(global_batch: int) -> int:
  """This process's share of a global batch."""
  return global_batch // jax.process_count()


def evaluate(
  driver, state, data, num_examples: int, batch_size: int, steps_per_dispatch: int = 8
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Evaluates every example once, in order (each process its own shard).

  Args:
    driver: a `research.train.parallel` driver.
    state: the device-placed train state.
    data: the device-placed evaluation arrays (leading axis N).
    num_examples: N, this process's examples.
    batch_size: the global evaluation batch.
    steps_per_dispatch: evaluation batches per compiled call.

  Returns:
    averaged global metrics, and the loss function's per-example outputs as host
    arrays with the padding removed (N, ...): in a multi-process run, every
    process's outputs in process order.
  """
  idx, mask = batch_plans.batch_plan(num_examples, _local(batch_size), shuffle=False)
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
