"""The scheduler check: a run whose JAX devices are not what SLURM allocated stops
with one line; two srun-style tasks on localhost form one 2-process job through
--distributed_auto, and the manifest records the layout and SLURM's job facts."""

import json
import os
import socket
import subprocess
import sys

import pytest

from research.errors import UserInputError
from research.train import scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A 2 nodes x 8 GPUs job as SLURM describes it to every task.
JOB = {'SLURM_NTASKS': '16', 'SLURM_JOB_NUM_NODES': '2', 'SLURM_GPUS_ON_NODE': '8'}


def _layout(platform='gpu', processes=16, devices=16, local=1, cuda_visible='all'):
  return scheduler.Layout(platform, processes, devices, local, cuda_visible)


def test_one_process_per_gpu_matches_the_allocation():
  # Each task keeps GPU number SLURM_LOCALID of the node's eight.
  env = dict(JOB, CUDA_VISIBLE_DEVICES='0,1,2,3,4,5,6,7')
  assert scheduler.allocation_mismatch(_layout(cuda_visible='3'), env) is None
  # One task per node seeing all its GPUs is a full allocation too.
  one_per_node = dict(JOB, SLURM_NTASKS='2')
  assert scheduler.allocation_mismatch(_layout(processes=2, local=8), one_per_node) is None


def test_one_gpu_per_node_is_one_line_naming_both_sides():
  one_per_node = dict(JOB, SLURM_NTASKS='2')
  message = scheduler.allocation_mismatch(_layout(processes=2, devices=2), one_per_node)
  assert message.startswith('SLURM allocated 16 GPUs over 2 nodes but JAX sees 2 gpu devices')
  assert '\n' not in message


@pytest.mark.parametrize(
  'layout,env,expected',
  [
    # Tasks started without --distributed_auto: 16 lone processes.
    (_layout(processes=1, devices=1), JOB, 'SLURM started 16 tasks but JAX sees 1 gpu devices'),
    # jax without CUDA inside a GPU job.
    (_layout('cpu', 16, 16), JOB, 'SLURM allocated 16 GPUs but JAX sees 16 cpu devices'),
    # Counts from --gpus-per-node='type:count' and --gpus-per-task.
    (
      _layout(processes=2, devices=2),
      {'SLURM_GPUS_PER_NODE': 'a100:4', 'SLURM_NNODES': '2'},
      'SLURM allocated 8 GPUs over 2 nodes',
    ),
    (
      _layout(processes=1, devices=2, local=2),
      {'SLURM_GPUS_PER_TASK': '2', 'SLURM_NTASKS_PER_NODE': '2'},
      'SLURM allocated 4 GPUs over 1 nodes',
    ),
    (
      _layout(processes=1, devices=1, local=1),
      {'CUDA_VISIBLE_DEVICES': '0,1'},
      'CUDA_VISIBLE_DEVICES=0,1 leaves 2 GPUs to this process but JAX sees 1',
    ),
  ],
)
def test_mismatches_are_one_line(layout, env, expected):
  message = scheduler.allocation_mismatch(layout, env)
  assert message is not None and message.startswith(expected), message
  assert '\n' not in message


def test_on_cpu_outside_a_gpu_job_nothing_is_checked():
  env = {'SLURM_NTASKS': '4', 'SLURM_JOB_ID': '7', 'CUDA_VISIBLE_DEVICES': '0,1'}
  assert scheduler.allocation_mismatch(_layout('cpu', 1, 1), env) is None
  scheduler.check_allocation({})  # This process: CPU, no scheduler.


def test_check_allocation_raises_user_input_error():
  with pytest.raises(UserInputError, match='SLURM allocated 2 GPUs but JAX sees 1 cpu'):
    scheduler.check_allocation({'SLURM_GPUS_ON_NODE': '2'})


def test_job_facts_name_the_slurm_job():
  env = dict(JOB, SLURM_JOB_ID='42', SLURM_JOB_NODELIST='gpu[01-02]', HOME='/h')
  assert scheduler.job_facts(env) == {
    'scheduler': 'slurm',
    'job_id': '42',
    'nodelist': 'gpu[01-02]',
    'num_nodes': '2',
    'ntasks': '16',
    'gpus_on_node': '8',
  }
  assert scheduler.job_facts({'HOME': '/h'}) == {}


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _srun_env(procid, port):
  """The environment srun gives task `procid` of a 2-task step on one node."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'CUDA_'))}
  env.update(
    JAX_PLATFORMS='cpu',
    JAX_COORDINATOR_PORT=str(port),  # SLURM's own port is derived from the job id.
    SLURM_JOB_ID='4242',
    SLURM_JOB_NODELIST='localhost',
    SLURM_STEP_NODELIST='localhost',
    SLURM_JOB_NUM_NODES='1',
    SLURM_STEP_NUM_NODES='1',
    SLURM_NNODES='1',
    SLURM_NTASKS='2',
    SLURM_NTASKS_PER_NODE='2',
    SLURM_NODEID='0',
    SLURM_PROCID=str(procid),
    SLURM_LOCALID=str(procid),
  )
  return env


def _entry_point(env, *args):
  return subprocess.Popen(
    [sys.executable, '-m', 'tests.workers.slurm_worker', *args],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def test_two_srun_tasks_form_one_two_process_job(tmp_path):
  port = _free_port()
  procs = [
    _entry_point(_srun_env(i, port), '--distributed_auto', f'--workdir={tmp_path}')
    for i in range(2)
  ]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs, strict=True):
    assert p.returncode == 0, err[-3000:]
  seen = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
  assert [s['process_index'] for s in seen] == [0, 1]
  assert all(s['process_count'] == 2 and s['device_count'] == 2 for s in seen)
  written = json.loads((tmp_path / 'manifest.json').read_text())
  assert written['devices']['process_count'] == 2
  assert written['devices']['local_device_count'] == 1
  assert written['scheduler']['job_id'] == '4242' and written['scheduler']['ntasks'] == '2'


def test_an_entry_point_in_a_gpu_job_without_gpus_stops_with_one_line(tmp_path):
  env = dict(_srun_env(0, _free_port()), SLURM_NTASKS='1', SLURM_GPUS_ON_NODE='8')
  proc = _entry_point(env, f'--workdir={tmp_path}')
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 1 and out == ''
  assert err.startswith('error: SLURM allocated 8 GPUs but JAX sees 1 cpu devices'), err
  assert err.count('\n') == 1, err
