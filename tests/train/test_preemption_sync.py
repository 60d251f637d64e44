"""Stop requests agreed across processes: SIGTERM to one process stops both at the
same iteration; a time budget counts as a request; one process needs no collective."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from research.train import preemption
from tests import helpers

# Its session-scoped runs happen once: all its tests on one pytest-xdist worker
# (scripts/test.sh uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('test_preemption_sync')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start_pair(*extra_per_process):
  """Two workers on one coordinator; extra_per_process[i]: process i's extra args."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env['XLA_FLAGS'] = helpers.xla_flags()  # One CPU device per process.
  port = str(_free_port())
  return [
    subprocess.Popen(
      [sys.executable, '-m', 'tests.workers.preemption_sync_worker', port, str(i), *extra],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i, extra in enumerate(extra_per_process)
  ]


def _wait_until_looping(proc, timeout=120.0):
  """Reads the worker's stdout until its first 'iteration' line."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    line = proc.stdout.readline()
    if line.startswith('iteration'):
      return
    if not line and proc.poll() is not None:
      pytest.fail(f'worker exited early: {proc.stderr.read()[-3000:]}')
  pytest.fail('worker did not start looping')


def _results(procs):
  outs = [p.communicate(timeout=120) for p in procs]
  for p, (_, err) in zip(procs, outs, strict=True):
    assert p.returncode == 0, err[-3000:]
  return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


@pytest.fixture(scope='session')
def runs():
  """Both scenarios at once: SIGTERM to process 1; a time budget on process 0."""
  signalled = _start_pair((), ())
  budget = _start_pair(('1.5',), ())
  try:
    for p in signalled:
      _wait_until_looping(p)
    time.sleep(0.3)  # A few agreed iterations first.
    signalled[1].send_signal(signal.SIGTERM)
    return {'signalled': _results(signalled), 'budget': _results(budget)}
  finally:
    for p in signalled + budget:
      if p.poll() is None:
        p.kill()


def test_sigterm_to_one_process_stops_both_at_the_same_iteration(runs):
  r0, r1 = runs['signalled']
  assert r0['stopped_at'] is not None and r0['stopped_at'] > 0
  assert r0['stopped_at'] == r1['stopped_at']
  assert (r0['signalled'], r1['signalled']) == (False, True)


def test_time_budget_of_one_process_stops_both(runs):
  r0, r1 = runs['budget']
  assert r0['stopped_at'] is not None and r0['stopped_at'] > 0
  assert r0['stopped_at'] == r1['stopped_at']
  assert (r0['over_time_budget'], r1['over_time_budget']) == (True, False)
  assert not r0['signalled'] and not r1['signalled']


def test_one_process_needs_no_collective(monkeypatch):
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  def fail(*args, **kwargs):
    raise AssertionError('process_allgather called in a one-process run')

  monkeypatch.setattr(multihost_utils, 'process_allgather', fail)
  assert preemption.agreed_stop(True) is True
  assert preemption.agreed_stop(False) is False
  assert preemption.agreed_flags([True, False]) == (True, False)


def test_time_budget_requests_a_stop():
  with preemption.StopOnSignal(max_seconds=0.2) as stop:
    assert not stop.stop_requested()
    time.sleep(0.25)
    assert stop.stop_requested() and stop.over_time_budget()
    assert not stop.signalled()
    assert stop.agreed_stop_requested()


def test_signal_requests_a_stop_and_handlers_are_restored():
  before = signal.getsignal(signal.SIGTERM)
  with preemption.StopOnSignal() as stop:
    assert not stop.stop_requested()
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.stop_requested() and stop.signalled()
    assert not stop.over_time_budget()
  assert signal.getsignal(signal.SIGTERM) is before
