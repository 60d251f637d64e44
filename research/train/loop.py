"""The epoch loop shared by every family: batching plans, training, evaluation.

The loop keeps the device busy: it dispatches chunk k+1 before it fetches the
metrics of chunk k, and checks them for non-finite losses on the host.
"""

import dataclasses
import math
import time
from typing import Any, Callable

import jax
import numpy as np
from tqdm import auto as tqdm

from research.train import metrics as metrics_lib


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """How long and in what batches to train.

  Attributes:
    num_epochs: passes over the training set.
    batch_size: global batch size (all devices together).
    eval_batch_size: global batch size for evaluation.
    seed: data order of epoch e is a permutation seeded by (seed, e).
    steps_per_dispatch: train steps run per compiled call (a `lax.scan`).
    progress: show tqdm progress bars.
  """
  num_epochs: int
  batch_size: int
  eval_batch_size: int
  seed: int = 0
  steps_per_dispatch: int = 1
  progress: bool = True


def batch_plan(num_examples: int, batch_size: int, *, shuffle: bool, seed: int = 0,
               epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Indices and masks of one pass over `num_examples` in batches.

  The last batch is padded with index 0 and mask 0, so every example is used
  exactly once and every batch has the same shape.

  Returns:
    idx int32 (S, batch_size) and mask float32 (S, batch_size), S = ceil(N / B).
  """
  order = (np.random.default_rng([seed, epoch]).permutation(num_examples)
           if shuffle else np.arange(num_examples))
  num_steps = math.ceil(num_examples / batch_size)
  idx = np.zeros(num_steps * batch_size, np.int32)
  mask = np.zeros(num_steps * batch_size, np.float32)
  idx[:num_examples] = order
  mask[:num_examples] = 1.0
  return idx.reshape(num_steps, batch_size), mask.reshape(num_steps, batch_size)


def _chunks(num_steps: int, size: int):
  for start in range(0, num_steps, size):
    yield slice(start, min(start + size, num_steps))


def format_metrics(values: dict[str, float]) -> str:
  """'loss = 0.1234 | accuracy = 97.10%': loss first, accuracies as percentages."""
  parts = []
  for k, v in sorted(values.items(), key=lambda kv: kv[0] != 'loss'):
    parts.append(f'{k} = {100 * v:.2f}%' if 'accuracy' in k else f'{k} = {v:.4f}')
  return ' | '.join(parts)


def train_epoch(driver, state, data, num_examples: int, cfg: LoopConfig, epoch: int,
                rng: jax.Array, *, first_step: int = 0) -> tuple[Any, dict[str, float]]:
  """One pass over the training set.

  Args:
    driver: a `research.train.parallel` driver.
    state: the (device-placed) train state.
    data: the (device-placed) training arrays.
    num_examples: number of training examples N.
    cfg: loop settings.
    epoch: epoch index (selects the data order).
    rng: the run's base key for training randomness.
    first_step: optimiser step at the start of the epoch (for messages).

  Returns:
    the new state and the epoch's averaged metrics.

  Raises:
    NonFiniteLossError: naming the first step whose loss was not finite.
  """
  idx, mask = batch_plan(num_examples, cfg.batch_size, shuffle=True, seed=cfg.seed,
                         epoch=epoch)
  sums = metrics_lib.MetricSums()
  bar = tqdm.tqdm(total=len(idx), desc=f'epoch {epoch + 1}/{cfg.num_epochs}',
                  unit='step', disable=not cfg.progress, leave=False)

  def consume(pending):
    chunk_metrics, sl = pending
    chunk_metrics = jax.device_get(chunk_metrics)
    losses = chunk_metrics['loss'][0]
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
      raise NonFiniteLossError(f'training loss is {losses[bad[0]]} at step '
                               f'{first_step + sl.start + bad[0] + 1} (epoch {epoch + 1})')
    sums.add(chunk_metrics)
    bar.update(sl.stop - sl.start)
    bar.set_postfix(loss=f'{sums.result()["loss"]:.4f}')

  pending = None
  try:
    for sl in _chunks(len(idx), cfg.steps_per_dispatch):
      state, chunk_metrics = driver.train(state, data, idx[sl], mask[sl], rng)
      if pending is not None:
        consume(pending)  # The device is already busy with this chunk.
      pending = (chunk_metrics, sl)
    consume(pending)
  finally:
    bar.close()
  return state, sums.result()


def evaluate(driver, state, data, num_examples: int, batch_size: int,
             steps_per_dispatch: int = 8) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Evaluates every example once, in order.

  Returns:
    averaged metrics, and the loss function's per-example outputs as host arrays
    with the padding removed (N, ...).
  """
  idx, mask = batch_plan(num_examples, batch_size, shuffle=False)
  sums = metrics_lib.MetricSums()
  outputs = []
  for sl in _chunks(len(idx), steps_per_dispatch):
    m, out = driver.evaluate(state, data, idx[sl], mask[sl])
    sums.add(jax.device_get(m))
    outputs.append(jax.device_get(out))
  flat = {k: np.concatenate([o[k].reshape((-1,) + o[k].shape[2:]) for o in outputs])
          [:num_examples] for k in outputs[0]}
  return sums.result(), flat


def fit(driver, state, data, num_examples: int, cfg: LoopConfig, rng: jax.Array, *,
        start_epoch: int = 0,
        on_epoch_end: Callable[[int, Any, dict[str, float]], None] | None = None,
        log: Callable[[str], None] = print) -> Any:
  """Trains from `start_epoch` to `cfg.num_epochs`.

  After each epoch it prints `[Epoch N] loss = ... | accuracy = ...%` with the time
  and throughput, then calls `on_epoch_end(epoch, state, metrics)` (checkpointing,
  metric writing).

  Returns:
    the final state.
  """
  steps_per_epoch = math.ceil(num_examples / cfg.batch_size)
  for epoch in range(start_epoch, cfg.num_epochs):
    t0 = time.perf_counter()
    state, values = train_epoch(driver, state, data, num_examples, cfg, epoch, rng,
                                first_step=epoch * steps_per_epoch)
    seconds = time.perf_counter() - t0
    values = dict(values, epoch_seconds=seconds,
                  examples_per_second=num_examples / seconds)
    shown = {k: v for k, v in values.items()
             if k not in ('epoch_seconds', 'examples_per_second')}
    log(f'[Epoch {epoch + 1}] {format_metrics(shown)} '
        f'({seconds:.1f} s, {num_examples / seconds:.0f} examples/s)')
    if on_epoch_end is not None:
      on_epoch_end(epoch, state, values)
  return state
