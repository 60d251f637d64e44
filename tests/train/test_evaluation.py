"""Evaluation: every example once, in order, whatever the batch and dispatch sizes."""

import numpy as np

from research.train import evaluation
from research.train import parallel
from tests import helpers


def test_evaluate_returns_unpadded_outputs_in_order():
  _, loss_fn, state = helpers.tiny_classifier(augmentation=False)
  driver = parallel.DataParallel(loss_fn)
  data = helpers.tiny_data(10)
  placed_state, placed_data = driver.put_replicated(state), driver.put_replicated(data)
  values, outputs = evaluation.evaluate(
    driver, placed_state, placed_data, 10, batch_size=4, steps_per_dispatch=2
  )
  assert outputs['prediction'].shape == (10,)
  np.testing.assert_allclose(values['accuracy'], np.mean(outputs['prediction'] == data['label']))
  # One padded batch of 16 sees the same examples in the same order.
  again, again_outputs = evaluation.evaluate(driver, placed_state, placed_data, 10, batch_size=16)
  np.testing.assert_array_equal(again_outputs['prediction'], outputs['prediction'])
  np.testing.assert_allclose(again['loss'], values['loss'], rtol=1e-6)
