"""Multi-process (multi-host) start-up with JAX's own distributed runtime."""

import jax

from research.errors import UserInputError


def initialize(
  coordinator_address: str = '', num_processes: int = 1, process_id: int = 0, auto: bool = False
) -> None:
  """Joins this process to a multi-process JAX job, if it is one.

  Call before any other JAX work. With `auto`, JAX reads the cluster's environment
  (SLURM, Cloud TPU, ...); otherwise `num_processes > 1` needs the coordinator's
  address and this process's id. On CPU the collectives go through gloo.

  Raises:
    UserInputError: for an inconsistent process id or a missing address.
  """
  if not auto and num_processes <= 1:
    return
  if not auto:
    if not coordinator_address:
      raise UserInputError('--num_processes > 1 needs --coordinator_address=HOST:PORT')
    if not 0 <= process_id < num_processes:
      raise UserInputError(f'--process_id must be in [0, {num_processes}), got {process_id}')
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if auto:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_primary() -> bool:
  """True on the process that logs, writes summaries and the manifest (process 0)."""
  return jax.process_index() == 0


def allgather_rows(tree):
  """Concatenates every process's per-example arrays (leading axis) in process order.

  Returns `tree` itself in a one-process run; otherwise numpy arrays with
  process_count x the local rows (every process must call it, with equal shapes).
  """
  if jax.process_count() == 1:
    return tree
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return multihost_utils.process_allgather(tree, tiled=True)
