"""Batch plans: which examples each training step (and evaluation batch) reads."""

import numpy as np
import pytest

from research.train import batch_plans


def test_batch_plan_uses_every_example_once_and_masks_padding():
  idx, mask = batch_plans.batch_plan(10, 4, shuffle=True, seed=3, epoch=1)
  assert idx.shape == mask.shape == (3, 4)
  assert sorted(idx[mask > 0].tolist()) == list(range(10))
  assert mask.sum() == 10 and mask[-1].tolist() == [1, 1, 0, 0]
  again, _ = batch_plans.batch_plan(10, 4, shuffle=True, seed=3, epoch=1)
  other, _ = batch_plans.batch_plan(10, 4, shuffle=True, seed=3, epoch=2)
  np.testing.assert_array_equal(idx, again)
  assert not np.array_equal(idx, other)


def test_unshuffled_plan_is_in_order():
  idx, mask = batch_plans.batch_plan(5, 2, shuffle=False)
  assert idx.tolist() == [[0, 1], [2, 3], [4, 0]]
  assert mask.tolist() == [[1, 1], [1, 1], [1, 0]]


def test_processes_plan_their_shards_in_their_own_orders():
  a, _ = batch_plans.batch_plan(12, 4, shuffle=True, seed=0, process=0)
  b, _ = batch_plans.batch_plan(12, 4, shuffle=True, seed=0, process=1)
  assert not np.array_equal(a, b)


@pytest.mark.parametrize('sampling', batch_plans.SAMPLINGS)
def test_a_chunk_holds_the_steps_that_single_steps_would(sampling):
  """So a run resumed at any step, with any steps per dispatch, sees the same batches."""
  # 3 steps per epoch ('streams': 4 streams of 3 windows).
  source = batch_plans.IndexSource(12 if sampling == 'streams' else 10, 4, sampling, seed=5)
  for first, num in [(0, 3), (1, 2), (3, 3), (4, 1), (6, 2)]:  # Within one epoch each.
    idx, mask = source.chunk(first, num)
    assert idx.shape == mask.shape == (num, 4)
    for i in range(num):
      one_idx, one_mask = source.chunk(first + i, 1)
      np.testing.assert_array_equal(idx[i], one_idx[0])
      np.testing.assert_array_equal(mask[i], one_mask[0])


def test_streams_sampling_reads_each_streams_windows_in_order():
  """Row b of step s is window s mod K of stream b (example b K + k), every epoch."""
  source = batch_plans.IndexSource(12, 4, 'streams', seed=5)  # K = 3 windows a stream.
  assert source.steps_per_epoch == 3
  idx, mask = source.chunk(2, 3)  # Steps 2, 3, 4: windows 2, 0, 1.
  np.testing.assert_array_equal(idx, [[2, 5, 8, 11], [0, 3, 6, 9], [1, 4, 7, 10]])
  np.testing.assert_array_equal(mask, np.ones((3, 4)))
  with pytest.raises(ValueError, match='whole number of windows'):
    batch_plans.IndexSource(10, 4, 'streams')


def test_epochs_sampling_follows_each_epochs_plan():
  source = batch_plans.IndexSource(10, 4, 'epochs', seed=5)
  assert source.steps_per_epoch == 3
  for epoch in range(2):
    idx, mask = source.chunk(epoch * 3, 3)
    plan_idx, plan_mask = batch_plans.batch_plan(10, 4, shuffle=True, seed=5, epoch=epoch)
    np.testing.assert_array_equal(idx, plan_idx)
    np.testing.assert_array_equal(mask, plan_mask)


def test_windows_sampling_draws_full_batches_seeded_by_step():
  source = batch_plans.IndexSource(10, 4, 'windows', seed=5)
  idx, mask = source.chunk(7, 2)
  assert idx.shape == (2, 4) and idx.dtype == np.int32 and mask.all()
  assert ((0 <= idx) & (idx < 10)).all()
  np.testing.assert_array_equal(idx[1:], source.chunk(8, 1)[0])
  other = batch_plans.IndexSource(10, 4, 'windows', seed=6).chunk(7, 2)[0]
  assert not np.array_equal(idx, other)
