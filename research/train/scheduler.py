"""What the cluster's scheduler allocated, and whether JAX sees all of it.

A SLURM job that starts one task per node while JAX keeps one GPU per task
(`jax.distributed.initialize` restricts each process to GPU number SLURM_LOCALID)
trains on a fraction of what it was given, and nothing fails. `check_allocation`
compares the scheduler's allocation with JAX's devices at start-up and stops such a
run with one line; `job_facts` gives the scheduler's job facts for the manifest.
"""

import dataclasses
import os
import re
from typing import Any, Mapping

import jax

from research.errors import UserInputError

# SLURM's job facts worth keeping in a run's manifest (present ones only).
_JOB_FACTS = {
  'job_id': 'SLURM_JOB_ID',
  'job_name': 'SLURM_JOB_NAME',
  'nodelist': 'SLURM_JOB_NODELIST',
  'num_nodes': 'SLURM_JOB_NUM_NODES',
  'ntasks': 'SLURM_NTASKS',
  'ntasks_per_node': 'SLURM_NTASKS_PER_NODE',
  'gpus_on_node': 'SLURM_GPUS_ON_NODE',
  'restart_count': 'SLURM_RESTART_COUNT',
}


@dataclasses.dataclass(frozen=True)
class Layout:
  """What JAX sees: its platform ('cpu', 'gpu', 'tpu'), processes and devices.

  `cuda_visible` is the GPU restriction JAX itself applied ('all' unless
  `jax.distributed.initialize` kept only some, e.g. '3').
  """

  platform: str
  process_count: int
  device_count: int
  local_device_count: int
  cuda_visible: str = 'all'


def current_layout() -> Layout:
  """The layout of this process's JAX runtime (initialises its backends)."""
  return Layout(
    platform=jax.default_backend(),
    process_count=jax.process_count(),
    device_count=jax.device_count(),
    local_device_count=jax.local_device_count(),
    cuda_visible=str(jax.config.read('jax_cuda_visible_devices')),
  )


def _count(text: str) -> int:
  """Entries of a comma-separated list ('0,1,3' -> 3; '' -> 0)."""
  return len([x for x in text.split(',') if x.strip()])


def _gpus_per_node(env: Mapping[str, str]) -> int | None:
  """GPUs SLURM allocated on each node, from the first variable that says."""
  if env.get('SLURM_GPUS_ON_NODE', '').isdigit():
    return int(env['SLURM_GPUS_ON_NODE'])
  if per_node := env.get('SLURM_GPUS_PER_NODE'):  # '8', 'a100:8' or 'a100:4,v100:4'.
    return sum(int(n) for n in re.findall(r'(?:^|[:,])(\d+)(?=,|$)', per_node))
  if env.get('SLURM_GPUS_PER_TASK', '').isdigit():
    tasks = env.get('SLURM_NTASKS_PER_NODE', '1').split('(')[0]
    return int(env['SLURM_GPUS_PER_TASK']) * (int(tasks) if tasks.isdigit() else 1)
  for name in ('SLURM_STEP_GPUS', 'SLURM_JOB_GPUS'):
    if env.get(name):
      return _count(env[name])
  return None


def slurm_gpus(env: Mapping[str, str]) -> tuple[int, int] | None:
  """(GPUs over all nodes, nodes) that SLURM allocated, or None outside a GPU job."""
  per_node = _gpus_per_node(env)
  if not per_node:
    return None
  nodes = next(
    (
      int(env[n])
      for n in ('SLURM_STEP_NUM_NODES', 'SLURM_JOB_NUM_NODES', 'SLURM_NNODES')
      if env.get(n, '').isdigit()
    ),
    1,
  )
  return per_node * nodes, nodes


def allocation_mismatch(layout: Layout, env: Mapping[str, str]) -> str | None:
  """Why what JAX sees differs from what the scheduler allocated, or None.

  Checked only on an accelerator or where SLURM allocated GPUs: SLURM's task count
  against JAX's process count, SLURM's GPUs against JAX's devices, and, on GPUs,
  CUDA_VISIBLE_DEVICES against this process's devices.
  """
  gpus = slurm_gpus(env)
  if layout.platform == 'cpu' and gpus is None:
    return None
  seen = (
    f'JAX sees {layout.device_count} {layout.platform} devices '
    f'({layout.local_device_count} in each of {layout.process_count} processes)'
  )
  tasks = env.get('SLURM_NTASKS', '')
  if tasks.isdigit() and int(tasks) != layout.process_count:
    return (
      f'SLURM started {tasks} tasks but {seen}: start every task with --distributed_auto '
      '(scripts/launch_slurm.sh does)'
    )
  if gpus is not None:
    total, nodes = gpus
    if layout.platform != 'gpu':
      return (
        f'SLURM allocated {total} GPUs but {seen}: install jax with CUDA '
        '(RESEARCH_JAX_EXTRA=cuda12 scripts/env.sh)'
      )
    if layout.device_count != total:
      return (
        f'SLURM allocated {total} GPUs over {nodes} nodes but {seen}: start one task per GPU '
        '(scripts/launch_slurm.sh does)'
      )
  visible = env.get('CUDA_VISIBLE_DEVICES', '')
  if layout.platform == 'gpu' and _count(visible):
    kept = visible if layout.cuda_visible == 'all' else layout.cuda_visible
    if _count(kept) != layout.local_device_count:
      return f'CUDA_VISIBLE_DEVICES={visible} leaves {_count(kept)} GPUs to this process but {seen}'
  return None


def check_allocation(env: Mapping[str, str] | None = None) -> None:
  """Stops a run whose JAX devices are not what the scheduler allocated.

  Call after joining the multi-process job. On CPU outside a GPU job it does nothing.

  Raises:
    UserInputError: one line naming both sides, e.g. 'SLURM allocated 16 GPUs over 2
      nodes but JAX sees 2 gpu devices (...)'.
  """
  message = allocation_mismatch(current_layout(), os.environ if env is None else env)
  if message:
    raise UserInputError(message)


def job_facts(env: Mapping[str, str] | None = None) -> dict[str, Any]:
  """The scheduler's facts about this job (SLURM's job id, nodes, tasks, GPUs) and
  CUDA_VISIBLE_DEVICES, those present; {} outside a scheduler."""
  env = os.environ if env is None else env
  facts: dict[str, Any] = {k: env[v] for k, v in _JOB_FACTS.items() if v in env}
  if facts:
    facts = {'scheduler': 'slurm', **facts}
  if 'CUDA_VISIBLE_DEVICES' in env:
    facts['cuda_visible_devices'] = env['CUDA_VISIBLE_DEVICES']
  return facts
