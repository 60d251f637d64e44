"""The pure train and eval steps."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from research.train import steps
from tests import helpers


def _batch(n=16):
  data = helpers.tiny_data(n)
  return {k: jnp.asarray(v) for k, v in data.items()} | {'mask': jnp.ones(n)}


def test_steps_lower_the_loss_on_a_fixed_batch():
  _, loss_fn, state = helpers.tiny_classifier(dropout_rate=0.0, augmentation=False)
  batch = _batch()
  step = jax.jit(functools.partial(steps.train_step, loss_fn=loss_fn))
  first = None
  for _ in range(30):
    state, metrics = step(state, batch, jax.random.key(1))
    first = metrics['loss'][0] / metrics['loss'][1] if first is None else first
  final, _ = jax.jit(functools.partial(steps.eval_step, loss_fn=loss_fn))(state, batch)
  assert final['loss'][0] / final['loss'][1] < 0.5 * first
  assert int(state.step) == 30


def test_train_step_compiles_once():
  _, loss_fn, state = helpers.tiny_classifier()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, batch, rng):
    return steps.train_step(state, batch, rng, loss_fn=loss_fn)

  for _ in range(3):
    state, _ = step(state, _batch(), jax.random.key(1))


def test_padding_leaves_metrics_and_update_unchanged():
  """A batch padded with masked junk gives the same metrics and the same step."""
  _, loss_fn, state = helpers.tiny_classifier(dropout_rate=0.0, augmentation=False)
  real = _batch(6)
  junk = {k: jnp.concatenate([v, v[:2][::-1]]) for k, v in real.items()}
  junk['mask'] = jnp.concatenate([jnp.ones(6), jnp.zeros(2)])
  key = jax.random.key(3)
  step = jax.jit(functools.partial(steps.train_step, loss_fn=loss_fn))
  s1, m1 = step(state, real, key)
  s2, m2 = step(state, junk, key)
  chex.assert_trees_all_close(m1, m2, rtol=1e-6)
  chex.assert_trees_all_close(s1.params, s2.params, rtol=1e-5, atol=1e-7)
  assert float(m2['accuracy'][1]) == 6.0


def test_randomness_comes_from_the_step_counter():
  """Same base key, same step -> same update; the next step draws new masks."""
  _, loss_fn, state = helpers.tiny_classifier()
  batch, key = _batch(), jax.random.key(7)
  step = jax.jit(functools.partial(steps.train_step, loss_fn=loss_fn))
  a, _ = step(state, batch, key)
  b, _ = step(state, batch, key)
  chex.assert_trees_all_equal(a.params, b.params)
  c, _ = step(state.replace(step=state.step + 1), batch, key)
  assert not np.allclose(a.params['fc1']['kernel'], c.params['fc1']['kernel'])


def test_split_batch_interleaves_examples():
  batch = {'x': jnp.arange(12).reshape(6, 2), 'mask': jnp.ones(6)}
  parts = steps.split_batch(batch, 3)
  assert [p['x'][:, 0].tolist() for p in parts] == [[0, 6], [2, 8], [4, 10]]
  assert all(p['mask'].shape == (2,) for p in parts)


def test_microbatches_give_the_same_step_as_the_whole_batch():
  """Without dropout, k independent parts sum to the whole batch's gradient."""
  _, loss_fn, state = helpers.tiny_classifier(dropout_rate=0.0, augmentation=False)
  batch = _batch(16)
  batch['mask'] = batch['mask'].at[-3:].set(0.0)  # Padding lands in some parts only.
  results = {
    k: jax.jit(functools.partial(steps.train_step, loss_fn=loss_fn, microbatches=k))(
      state, batch, jax.random.key(2)
    )
    for k in (1, 2, 4)
  }
  for k in (2, 4):
    # Metrics include the gradient norm, which Adam's update would hide.
    chex.assert_trees_all_close(results[k][1], results[1][1], rtol=1e-5)
    chex.assert_trees_all_close(
      results[k][0].params, results[1][0].params, atol=3e-5
    )  # Adam steps are ~1e-3.
  assert float(results[4][1]['loss'][1]) == 13.0
