"""The one place that decides which examples are this process's share."""

import jax


def process_slice(num_examples: int) -> slice:
  """This process's contiguous, equally sized share of `num_examples` (the
  remainder is dropped so every process runs the same number of steps)."""
  per = num_examples // jax.process_count()
  start = jax.process_index() * per
  return slice(start, start + per)
