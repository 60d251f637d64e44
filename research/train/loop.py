"""The epoch loop shared by every family: batching plans, training, evaluation.

The loop keeps the device busy: it dispatches chunk k+1 before it fetches the
metrics of chunk k, and checks them for non-finite losses on the host.
"""

import dataclasses
import math
import time
from typing import Any, Callable

import jax
from jax.experimental import multihost_utils
import numpy as np
from tqdm import auto as tqdm

from research.errors import NonFiniteLossError
from research.errors import Preempted
from research.train import metrics as metrics_lib


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
    skip_nonfinite: drop steps whose loss or gradient is not finite from the
      metrics instead of stopping (pair with an optimiser that skips their update).
  """
  num_epochs: int
  batch_size: int
  eval_batch_size: int
  seed: int = 0
  steps_per_dispatch: int = 1
  progress: bool = True
  skip_nonfinite: bool = False


def batch_plan(num_examples: int, batch_size: int, *, shuffle: bool, seed: int = 0,
               epoch: int = 0, process: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Indices and masks of one pass over `num_examples` in batches.

  The last batch is padded with index 0 and mask 0, so every example is used
  exactly once and every batch has the same shape. In a multi-process run each
  process plans over its own shard with its own order (`process` set).

  Returns:
    idx int32 (S, batch_size) and mask float32 (S, batch_size), S = ceil(N / B).
  """
  key = [seed, epoch] if process is None else [seed, epoch, process]
  order = (np.random.default_rng(key).permutation(num_examples)
           if shuffle else np.arange(num_examples))
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


def check_finite(chunk_metrics, first_step: int, *, epoch: int | None = None,
                 skip: bool = False):
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
    raise NonFiniteLossError(f'training {what} is {value} at step '
                             f'{first_step + i + 1}{where}')
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


def train_epoch(driver, state, data, num_examples: int, cfg: LoopConfig, epoch: int,
                rng: jax.Array, *, first_step: int = 0, start: int = 0,
                after_chunk: Callable[[int, Any], None] | None = None,
                stop_requested: Callable[[], bool] | None = None
                ) -> tuple[Any, dict[str, float], int]:
  """One pass over the training set, or its remainder from batch `start`.

  Args:
    driver: a `research.train.parallel` driver.
    state: the (device-placed) train state.
    data: the (device-placed) training arrays.
    num_examples: number of training examples N (this process's shard).
    cfg: loop settings.
    epoch: epoch index (selects the data order).
    rng: the run's base key for training randomness.
    first_step: optimiser step at the start of the epoch.
    start: index of the first batch to run (resuming mid-epoch).
    after_chunk: called as after_chunk(step, state) after each dispatched chunk.
    stop_requested: polled after each chunk; True ends the epoch early.

  Returns:
    the new state, the averaged metrics of the batches run (plus 'skipped_steps'
    when cfg.skip_nonfinite), and the index of the next batch to run (the number
    of batches unless stopped early).

  Raises:
    NonFiniteLossError: naming the first step whose loss or gradient was not finite.
  """
  idx, mask = batch_plan(num_examples, _local(cfg.batch_size), shuffle=True,
                         seed=cfg.seed, epoch=epoch, process=_process())
  sums = metrics_lib.MetricSums()
  skipped = 0
  bar = tqdm.tqdm(total=len(idx), initial=start, unit='step', leave=False,
                  desc=f'epoch {epoch + 1}/{cfg.num_epochs}',
                  disable=not cfg.progress or jax.process_index() != 0)

  def consume(pending):
    nonlocal skipped
    chunk_metrics, sl = pending
    chunk_metrics, bad = check_finite(jax.device_get(chunk_metrics),
                                      first_step + sl.start, epoch=epoch,
                                      skip=cfg.skip_nonfinite)
    skipped += bad
    sums.add(chunk_metrics)
    bar.update(sl.stop - sl.start)
    bar.set_postfix(loss=f'{sums.result().get("loss", float("nan")):.4f}')

  pending, next_batch = None, start
  try:
    for sl in _chunks(start, len(idx), cfg.steps_per_dispatch):
      state, chunk_metrics = driver.train(state, data, idx[sl], mask[sl], rng)
      if pending is not None:
        consume(pending)  # The device is already busy with this chunk.
      pending, next_batch = (chunk_metrics, sl), sl.stop
      if after_chunk is not None:
        after_chunk(first_step + sl.stop, state)
      if stop_requested is not None and stop_requested():
        break
    if pending is not None:
      consume(pending)
  finally:
    bar.close()
  values = sums.result()
  if cfg.skip_nonfinite:
    values['skipped_steps'] = skipped
  return state, values, next_batch


def evaluate(driver, state, data, num_examples: int, batch_size: int,
             steps_per_dispatch: int = 8) -> tuple[dict[str, float], dict[str, np.ndarray]]:
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
  flat = {k: np.concatenate([o[k].reshape((-1,) + o[k].shape[2:]) for o in outputs])
          [:num_examples] for k in outputs[0]}
  if jax.process_count() > 1:
    flat = multihost_utils.process_allgather(flat, tiled=True)
  return sums.result(), flat


def _epoch_line(epoch: int, values: dict[str, float], seconds: float,
                examples: int) -> str:
  shown = {k: v for k, v in values.items()
           if k in ('loss', 'skipped_steps') or 'accuracy' in k}
  return (f'[Epoch {epoch + 1}] {format_metrics(shown)} '
          f'({seconds:.1f} s, {examples / seconds:.0f} examples/s)')


def fit(driver, state, data, num_examples: int, cfg: LoopConfig, rng: jax.Array, *,
        start_epoch: int = 0, start_step: int | None = None,
        on_epoch_end: Callable[[int, Any, dict[str, float]], None] | None = None,
        checkpointer=None, checkpoint_every_steps: int = 0,
        stop_requested: Callable[[], bool] | None = None,
        log: Callable[[str], None] = print) -> Any:
  """Trains from `start_step` (or the start of `start_epoch`) to `cfg.num_epochs`.

  After each epoch it prints `[Epoch N] loss = ... | accuracy = ...%` with the time
  and throughput, saves a checkpoint (with a `checkpointer`) and calls
  `on_epoch_end(epoch, state, metrics)`. With `checkpoint_every_steps` it also
  saves every that many steps. When `stop_requested()` turns True it finishes the
  current chunk of steps, saves a checkpoint and raises `Preempted`.

  Returns:
    the final state.
  """
  steps_per_epoch = num_steps_per_epoch(num_examples, cfg.batch_size)
  step = start_epoch * steps_per_epoch if start_step is None else start_step
  save = lambda step, state: checkpointer and checkpointer.save(
      step, driver.host_state(state))

  def after_chunk(step_now, state):
    if checkpoint_every_steps and (step_now // checkpoint_every_steps >
                                   (step_now - cfg.steps_per_dispatch) //
                                   checkpoint_every_steps):
      save(step_now, state)

  for epoch in range(step // steps_per_epoch, cfg.num_epochs):
    t0, start = time.perf_counter(), step - epoch * steps_per_epoch
    state, values, end = train_epoch(
        driver, state, data, num_examples, cfg, epoch, rng,
        first_step=epoch * steps_per_epoch, start=start, after_chunk=after_chunk,
        stop_requested=stop_requested)
    step = epoch * steps_per_epoch + end
    if end < steps_per_epoch:
      if checkpointer is not None and checkpointer.latest_step() != step:
        save(step, state)
        checkpointer.wait()
      raise Preempted(step)
    seconds = time.perf_counter() - t0
    examples = min(num_examples * jax.process_count(), (end - start) * cfg.batch_size)
    values = dict(values, epoch_seconds=seconds, examples_per_second=examples / seconds)
    log(_epoch_line(epoch, values, seconds, examples))
    if checkpointer is not None and checkpointer.latest_step() != step:
      save(step, state)
    if on_epoch_end is not None:
      on_epoch_end(epoch, state, values)
  return state
