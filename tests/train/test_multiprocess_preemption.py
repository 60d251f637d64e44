"""A real two-process run (the seq2seq entry point, gloo on localhost) preempted on
one process only: both processes stop at the same step with one checkpoint, and
`--resume` on both ends bit-identical to an uninterrupted two-process run."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests import helpers

# Its session-scoped runs happen once: all its tests on one pytest-xdist worker
# (scripts/test.sh uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('test_multiprocess_preemption')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_EPOCHS, STEPS_PER_EPOCH = 4, 32  # 512 examples, a global batch of 16.
NUM_TEST = 32
TOTAL_STEPS = NUM_EPOCHS * STEPS_PER_EPOCH
# A seconds-long reversal run: tiny model, no dropout, a checkpoint every 4 steps.
FLAGS = (
  '--config=experiments/seq2seq/configs/default.py',
  f'--config.num_epochs={NUM_EPOCHS}',
  '--config.batch_size=16',
  '--config.eval_batch_size=32',
  '--config.eval_every_epochs=0',
  '--config.steps_per_dispatch=1',
  '--config.checkpoint_every_steps=4',
  '--config.beam_size=2',
  '--config.num_examples_to_print=0',
  '--config.generated.num_train=512',
  f'--config.generated.num_test={NUM_TEST}',
  '--config.generated.max_length=6',
  '--config.generated.num_letters=6',
  '--config.model.emb_dim=16',
  '--config.model.num_heads=2',
  '--config.model.num_encoder_layers=1',
  '--config.model.num_decoder_layers=1',
  '--config.model.mlp_dim=32',
  '--config.optimizer.warmup_steps=4',
)
STOP_LINE = re.compile(r'stopped at step (\d+) on request')


def _free_port() -> str:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return str(s.getsockname()[1])


def _start(workdir: str, *extra: str) -> list[subprocess.Popen]:
  """Both processes of one run, on a fresh coordinator port."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  env['XLA_FLAGS'] = helpers.xla_flags()  # One CPU device per process.
  port = _free_port()
  return [
    subprocess.Popen(
      [
        sys.executable,
        '-m',
        'experiments.seq2seq.main',
        *FLAGS,
        f'--workdir={workdir}',
        '--num_processes=2',
        f'--process_id={pid}',
        f'--coordinator_address=localhost:{port}',
        *extra,
      ],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for pid in range(2)
  ]


def _finish(procs: list[subprocess.Popen]) -> list[str]:
  """Waits for both processes; returns their stderr (each must exit 0)."""
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs, strict=True):
    assert p.returncode == 0, err[-3000:]
  return [err for _, err in outs]


def _checkpoint_steps(workdir: str) -> list[int]:
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def _signal_after_first_checkpoint(
  procs: list[subprocess.Popen], workdir: str, timeout: float = 300.0
) -> None:
  """SIGTERM to process 1 only, once training has written its first checkpoint."""
  deadline = time.monotonic() + timeout
  while not _checkpoint_steps(workdir):
    if any(p.poll() is not None for p in procs):
      pytest.fail(
        'a process ended before its first checkpoint: '
        + ''.join(p.stderr.read()[-2000:] for p in procs)
      )
    if time.monotonic() > deadline:
      pytest.fail('no checkpoint was written in time')
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)


def _read_state(workdir: str, step: int) -> dict:
  """The saved train state at `step` as NumPy arrays, whatever topology wrote it."""
  path = os.path.join(workdir, 'checkpoints', str(step), 'default')
  checkpointer = ocp.PyTreeCheckpointer()
  tree = checkpointer.metadata(path).item_metadata.tree
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))


@pytest.fixture(scope='session')
def runs(tmp_path_factory):
  """An uninterrupted run and, at the same time, one signalled and then resumed."""
  whole = str(tmp_path_factory.mktemp('uninterrupted'))
  split = str(tmp_path_factory.mktemp('preempted'))
  uninterrupted = _start(whole)
  preempted = _start(split)
  try:
    _signal_after_first_checkpoint(preempted, split)
    stop_messages = _finish(preempted)
    stopped_checkpoints = _checkpoint_steps(split)
    stopped_state = _read_state(split, stopped_checkpoints[-1])
    _finish(_start(split, '--resume'))
    _finish(uninterrupted)
  finally:
    for p in uninterrupted + preempted:
      if p.poll() is None:
        p.kill()
  return {
    'whole': whole,
    'split': split,
    'stop_messages': stop_messages,
    'stopped_checkpoints': stopped_checkpoints,
    'stopped_state': stopped_state,
  }


def test_sigterm_to_one_process_stops_both_at_the_same_step(runs):
  steps = []
  for err in runs['stop_messages']:
    found = STOP_LINE.findall(err)
    assert len(found) == 1, err[-2000:]
    steps.append(int(found[0]))
  assert steps[0] == steps[1]
  assert 0 < steps[0] < TOTAL_STEPS
  # The stop step was checkpointed (together, by both processes).
  assert runs['stopped_checkpoints'][-1] == steps[0]


def test_report_covers_each_held_out_example_once(runs):
  for workdir in (runs['whole'], runs['split']):
    with open(os.path.join(workdir, 'final_metrics.json'), encoding='utf-8') as f:
      final = json.load(f)
    assert final['test_examples'] == NUM_TEST
    assert final['steps'] == TOTAL_STEPS


def test_resume_on_both_processes_equals_the_uninterrupted_run(runs):
  assert _checkpoint_steps(runs['whole'])[-1] == TOTAL_STEPS
  assert _checkpoint_steps(runs['split'])[-1] == TOTAL_STEPS
  whole = _read_state(runs['whole'], TOTAL_STEPS)
  resumed = _read_state(runs['split'], TOTAL_STEPS)
  leaves_whole, tree_whole = jax.tree.flatten(whole)
  leaves_resumed, tree_resumed = jax.tree.flatten(resumed)
  assert tree_whole == tree_resumed
  for a, b in zip(leaves_whole, leaves_resumed, strict=True):  # Params and optimizer state.
    np.testing.assert_array_equal(a, b)
  # Training changed the parameters: not the initial state read back twice.
  first = runs['stopped_state']
  assert any(
    not np.array_equal(a, b)
    for a, b in zip(jax.tree.leaves(first['params']), jax.tree.leaves(whole['params']), strict=True)
  )
