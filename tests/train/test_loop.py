"""Batch plans, metric sums and the non-finite guard of the loop."""

import jax
import numpy as np
import pytest

from research.errors import NonFiniteLossError
from research.train import loop
from research.train import step_loop
from research.train import metrics as metrics_lib
from research.train import parallel
from tests import helpers


def test_batch_plan_uses_every_example_once_and_masks_padding():
  idx, mask = loop.batch_plan(10, 4, shuffle=True, seed=3, epoch=1)
  assert idx.shape == mask.shape == (3, 4)
  assert sorted(idx[mask > 0].tolist()) == list(range(10))
  assert mask.sum() == 10 and mask[-1].tolist() == [1, 1, 0, 0]
  again, _ = loop.batch_plan(10, 4, shuffle=True, seed=3, epoch=1)
  other, _ = loop.batch_plan(10, 4, shuffle=True, seed=3, epoch=2)
  np.testing.assert_array_equal(idx, again)
  assert not np.array_equal(idx, other)


def test_metric_sums_divide_once():
  sums = metrics_lib.MetricSums()
  sums.add({'loss': (np.array([3.0, 1.0]), np.array([2.0, 2.0]))})
  sums.add({'loss': (2.0, 1.0)})
  assert sums.result() == {'loss': 6.0 / 5.0}


def test_evaluate_returns_unpadded_outputs_in_order():
  _, loss_fn, state = helpers.tiny_classifier(augmentation=False)
  driver = parallel.DataParallel(loss_fn)
  data = helpers.tiny_data(10)
  values, outputs = loop.evaluate(driver, driver.put_replicated(state),
                                  driver.put_replicated(data), 10, batch_size=4,
                                  steps_per_dispatch=2)
  assert outputs['prediction'].shape == (10,)
  np.testing.assert_allclose(values['accuracy'],
                             np.mean(outputs['prediction'] == data['label']))


def test_non_finite_loss_names_the_step():
  _, loss_fn, state = helpers.tiny_classifier()
  nan_state = state.replace(params=jax.tree.map(lambda p: p * np.nan, state.params))
  driver = parallel.DataParallel(loss_fn)
  source = step_loop.IndexSource(16, 8)
  with pytest.raises(NonFiniteLossError, match='loss is nan at step 1$'):
    step_loop.run_steps(driver, driver.put_replicated(nan_state),
                        driver.put_replicated(helpers.tiny_data(16)), source,
                        jax.random.key(0), start_step=0,
                        boundaries=step_loop.Boundaries((2,), 2), steps_per_dispatch=1,
                        on_boundary=lambda *_: None, should_stop=lambda: None,
                        progress=False)
