"""The two input pipelines of training: the split on the devices, or streamed from the host.

'device': this process's training split is placed on its devices once and each step
gathers its batch by index inside the compiled program (`research.train.parallel`).
'stream': the split stays in host memory; a tf.data pipeline gathers every chunk's
batches on the host, following the same `batch_plans.IndexSource` plan (the same
examples in the same order for the same seed), and `IN_FLIGHT` chunks beyond the one
the devices run are already placed on them as global arrays, so the host never stalls
a step. 'auto' is 'device' when each device's share of the split (the jit driver cuts
it over a process's devices; pmap copies it whole) takes under `DEVICE_SHARE` of the
smallest local device's memory (always on CPU, where it is host memory), else 'stream'.
"""

import collections
from typing import Any, Callable, Iterable, Iterator

import jax
import numpy as np

from research.data import tfds_io
from research.train import batch_plans
from research.train import parallel

PIPELINES = ('device', 'stream', 'auto')
DEVICE_SHARE = 0.25  # 'auto': the largest share of a device's memory the split may take.
IN_FLIGHT = 2  # Chunks placed on the devices ahead of the one they run.

Chunk = tuple[int, int]  # (first step, number of steps).
HostBatch = dict[str, np.ndarray]


def _device_limit(devices: list[Any]) -> int | None:
  """The smallest `bytes_limit` of `devices`, or None where none reports one (CPU)."""
  limits = []
  for d in devices:
    try:
      stats = d.memory_stats()
    except Exception:  # pylint: disable=broad-except  # Backends without the query raise.
      stats = None
    if stats and stats.get('bytes_limit'):
      limits.append(int(stats['bytes_limit']))
  return min(limits) if limits else None


def resolve(requested: str, arrays: dict[str, np.ndarray], driver: Any) -> tuple[str, str]:
  """The pipeline to run ('device' or 'stream') for `requested`, and why.

  Args:
    requested: 'device', 'stream' or 'auto' (validated by `settings.TrainSettings`).
    arrays: this process's training arrays.
    driver: the run's driver; 'auto' measures the memory of its local devices.

  Returns:
    (mode, reason), the reason a few words for the log.
  """
  if requested != 'auto':
    return requested, 'as configured'
  if not isinstance(driver, parallel.DataParallel):
    return 'device', 'auto: the pmap driver keeps the split on the devices'
  local = [d for d in driver.devices if d.process_index == jax.process_index()]
  limit = _device_limit(local)
  if limit is None:
    return 'device', 'auto: the devices share host memory'
  split = sum(np.asarray(v).nbytes for v in arrays.values())
  share = split / len(local) / limit
  mode = 'device' if share < DEVICE_SHARE else 'stream'
  return mode, f'auto: its share of the split takes {share:.1%} of a device'


def host_gather(gather_fn: parallel.GatherFn, arrays: dict[str, np.ndarray]):
  """`gather_fn` run on the host: idx int32 (B,) -> the batch as NumPy arrays (B, ...).

  The default gather is NumPy's own take, which reads the arrays in place; any other
  (e.g. the LM's windows) is compiled for the host CPU, its arrays copied there once.
  """
  if gather_fn is parallel.take_examples:
    return lambda idx_B: {k: np.take(v, idx_B, axis=0) for k, v in arrays.items()}
  cpu = jax.local_devices(backend='cpu')[0]
  data, gather = jax.device_put(arrays, cpu), jax.jit(gather_fn)
  return lambda idx_B: jax.tree.map(np.asarray, gather(data, jax.device_put(idx_B, cpu)))


def host_batches(
  arrays: dict[str, np.ndarray],
  gather_fn: parallel.GatherFn,
  source: batch_plans.IndexSource,
  chunks: Iterable[Chunk],
) -> Iterator[tuple[Chunk, HostBatch]]:
  """This process's training chunks, gathered on the host in a tf.data pipeline.

  Args:
    arrays: this process's training arrays (its share; leading axis N), as
      `gather_fn` reads them.
    gather_fn: the family's batch gather (see `research.train.parallel`).
    source: which examples each step trains on: the plan the 'device' pipeline follows.
    chunks: (first step, number of steps S) of every chunk, in order.

  Yields:
    ((step, S), batch): the gathered arrays (S, local_batch, ...) and 'mask' float32
    (S, local_batch), 0 on padding.
  """
  tf = tfds_io.import_tensorflow()
  take = host_gather(gather_fn, arrays)
  shapes = jax.eval_shape(
    gather_fn,
    jax.tree.map(lambda v: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype), arrays),
    jax.ShapeDtypeStruct((source.local_batch,), np.int32),
  )
  keys = sorted(shapes)
  dtypes = [tf.as_dtype(shapes[k].dtype) for k in keys] + [tf.float32]

  def load(step, num):
    idx_SxB, mask_SxB = source.chunk(int(step), int(num))
    parts = [take(idx_B) for idx_B in idx_SxB]
    return [np.stack([p[k] for p in parts]) for k in keys] + [mask_SxB]

  scalar = tf.TensorSpec((), tf.int64)
  ds = tf.data.Dataset.from_generator(lambda: iter(chunks), output_signature=(scalar, scalar))
  ds = ds.map(
    lambda s, n: (s, n, tuple(tf.numpy_function(load, [s, n], dtypes, stateful=False))),
    num_parallel_calls=IN_FLIGHT,
    deterministic=True,
  ).prefetch(IN_FLIGHT)
  for step, num, values in ds.as_numpy_iterator():
    yield (int(step), int(num)), dict(zip(keys + ['mask'], values, strict=True))


class Stream:
  """Training chunks streamed from the host onto the devices, `IN_FLIGHT` ahead.

  Args:
    batches: (chunk, host batch) pairs in the order the loop runs them
      (`host_batches`).
    put: a host batch (S, local_batch, ...) -> global arrays with the driver's batch
      sharding (`parallel.DataParallel.put_batch`).
  """

  def __init__(self, batches: Iterator[tuple[Chunk, HostBatch]], put: Callable):
    self._batches, self._put = batches, put
    self._ahead: collections.deque = collections.deque()

  def _fill(self, count: int) -> None:
    while len(self._ahead) < count:
      chunk, batch = next(self._batches, (None, None))
      if chunk is None:
        return
      self._ahead.append((chunk, self._put(batch)))  # Transfers start here, async.

  def chunk(self, step: int, num: int) -> dict[str, jax.Array]:
    """The placed batch of steps step .. step + num - 1 (the loop's next chunk)."""
    self._fill(1)
    chunk, batch = self._ahead.popleft()
    assert chunk == (step, num), f'the stream holds chunk {chunk}, the loop asks {(step, num)}'
    self._fill(IN_FLIGHT)
    return batch

  def close(self) -> None:
    """Stops the host pipeline (a stopped run leaves chunks unread)."""
    self._ahead.clear()
    close = getattr(self._batches, 'close', None)
    if close is not None:
      close()
