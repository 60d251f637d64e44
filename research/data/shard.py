"""The one place that decides which examples are this process's share."""

import jax


def process_slice(
  num_examples: int, process_index: int | None = None, process_count: int | None = None
) -> slice:
  """This process's contiguous, equally sized share of `num_examples` (the
  remainder is dropped so every process runs the same number of steps).

  Args:
    num_examples: examples in the whole split.
    process_index: the process (default: this one, `jax.process_index()`).
    process_count: processes in the run (default: `jax.process_count()`).
  """
  count = jax.process_count() if process_count is None else process_count
  index = jax.process_index() if process_index is None else process_index
  per = num_examples // count
  return slice(index * per, index * per + per)
