"""The step loop: chunks, boundaries, stops and the non-finite guard naming the step."""

import jax
import numpy as np
import pytest

from research.errors import NonFiniteLossError
from research.train import batch_plans
from research.train import parallel
from research.train import step_loop
from tests import helpers


class _CountingDriver:
  """Trains nothing: the state counts steps, step s's loss is `losses.get(s, 1.0)`."""

  def __init__(self, losses=None):
    self.chunks: list[tuple[int, int]] = []  # (first step, steps) of every dispatch.
    self.losses = losses or {}

  def train(self, state, data, idx, mask, rng):
    del data, mask, rng
    num = len(idx)
    self.chunks.append((state, num))
    loss = np.array([self.losses.get(state + i + 1, 1.0) for i in range(num)], np.float32)
    return state + num, {'loss': (loss, np.ones(num, np.float32))}


def _run(driver, total, every, steps_per_dispatch, start=0, should_stop=None, skip=False):
  calls = []
  result = step_loop.run_steps(
    driver,
    start,
    None,
    batch_plans.IndexSource(8, 2),
    jax.random.key(0),
    start_step=start,
    boundaries=step_loop.Boundaries(every, total),
    steps_per_dispatch=steps_per_dispatch,
    on_boundary=lambda step, state, sums: calls.append((step, state, sums.result())),
    should_stop=should_stop or (lambda: None),
    skip_nonfinite=skip,
    progress=False,
  )
  return result, calls


def test_boundaries_are_the_next_multiple_of_any_interval_or_the_end():
  b = step_loop.Boundaries((0, 4, 6), 20)
  assert [b.next_after(s) for s in (0, 3, 4, 6, 11, 18, 19)] == [4, 4, 6, 8, 12, 20, 20]


def test_chunks_stop_at_every_boundary():
  driver = _CountingDriver()
  result, calls = _run(driver, total=10, every=(4,), steps_per_dispatch=3)
  assert driver.chunks == [(0, 3), (3, 1), (4, 3), (7, 1), (8, 2)]
  assert [(step, state) for step, state, _ in calls] == [(4, 4), (8, 8), (10, 10)]
  assert all(values == {'loss': 1.0} for _, _, values in calls)
  assert (result.step, result.state, result.stopped) == (10, 10, 'done')


def test_a_resumed_run_dispatches_from_its_step():
  driver = _CountingDriver()
  result, calls = _run(driver, total=10, every=(4,), steps_per_dispatch=8, start=5)
  assert driver.chunks == [(5, 3), (8, 2)]
  assert [step for step, _, _ in calls] == [8, 10] and result.step == 10


def test_a_stop_request_ends_the_loop_at_a_boundary_it_reports():
  driver = _CountingDriver()
  requests = iter([None, 'preempted'])
  result, calls = _run(driver, 100, (50,), 3, should_stop=lambda: next(requests))
  assert (result.step, result.stopped) == (6, 'preempted')
  assert [step for step, _, _ in calls] == [6]


def test_a_stop_agreed_on_the_devices_is_read_with_the_next_chunk_in_flight():
  driver = _CountingDriver()
  reads = []  # (chunk whose agreed answer is read, chunks dispatched by then)

  def should_stop():
    chunk = len(driver.chunks)

    def agreed():
      reads.append((chunk, len(driver.chunks)))
      return 'preempted' if chunk == 2 else None

    return agreed

  result, calls = _run(driver, 100, (50,), 3, should_stop=should_stop)
  # Each answer is read once the next chunk is dispatched: the loop never waits for
  # the chunk it has just dispatched.
  assert reads == [(1, 2), (2, 3), (3, 3)]
  # Chunk 2's answer stops the loop after chunk 3, already dispatched, at a boundary.
  assert (result.step, result.stopped) == (9, 'preempted')
  assert [step for step, _, _ in calls] == [9]


def test_non_finite_loss_names_its_step_inside_a_chunk():
  with pytest.raises(NonFiniteLossError, match='loss is nan at step 6$'):
    _run(_CountingDriver({6: np.nan}), total=12, every=(12,), steps_per_dispatch=4)


def test_skipped_non_finite_steps_are_counted_and_left_out_of_the_metrics():
  result, calls = _run(
    _CountingDriver({2: np.inf, 3: np.nan, 7: 5.0}),
    total=8,
    every=(4,),
    steps_per_dispatch=4,
    skip=True,
  )
  assert result.step == 8
  assert calls[0][2] == {'loss': 1.0, 'skipped_steps': 2.0}
  assert calls[1][2] == {'loss': 2.0, 'skipped_steps': 0.0}


def test_check_finite_names_the_first_bad_step_and_what_was_bad():
  finite = np.ones(3, np.float32)
  metrics = {'loss': (finite, finite), 'grad_norm': (np.array([1.0, np.inf, 1.0]), finite)}
  with pytest.raises(NonFiniteLossError, match=r'gradient norm is inf at step 12 \(epoch 2\)$'):
    step_loop.check_finite(metrics, 10, epoch=1)
  kept, bad = step_loop.check_finite(metrics, 10, skip=True)
  assert bad == 1 and kept['loss'][0].tolist() == [1.0, 1.0]


def test_non_finite_parameters_stop_a_real_run_at_step_1():
  _, loss_fn, state = helpers.tiny_classifier()
  nan_state = state.replace(params=jax.tree.map(lambda p: p * np.nan, state.params))
  driver = parallel.DataParallel(loss_fn)
  source = batch_plans.IndexSource(16, 8)
  with pytest.raises(NonFiniteLossError, match='loss is nan at step 1$'):
    step_loop.run_steps(
      driver,
      driver.put_replicated(nan_state),
      driver.put_replicated(helpers.tiny_data(16)),
      source,
      jax.random.key(0),
      start_step=0,
      boundaries=step_loop.Boundaries((2,), 2),
      steps_per_dispatch=1,
      on_boundary=lambda *_: None,
      should_stop=lambda: None,
      progress=False,
    )
