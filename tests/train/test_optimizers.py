"""Optimisers: update rules written out in NumPy, schedules and bad settings."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.errors import UserInputError
from research.train import optimizers

P = np.array([0.5, -1.0, 2.0], np.float32)
G = np.array([0.1, 0.3, -0.2], np.float32)


def _one_step(cfg, params=P, grads=G):
  tx = optimizers.make_optimizer(cfg)
  p = {'w': jnp.asarray(params)}
  updates, _ = tx.update({'w': jnp.asarray(grads)}, tx.init(p), p)
  return np.asarray(optax.apply_updates(p, updates)['w'])


def test_adam_adds_l2_to_the_gradient_like_pytorch():
  lr, wd, b1, b2, eps = 1e-3, 1e-2, 0.9, 0.999, 1e-8
  g = G + wd * P  # PyTorch Adam(weight_decay): decay enters the moments.
  m, v = (1 - b1) * g, (1 - b2) * g**2
  m_hat, v_hat = m / (1 - b1), v / (1 - b2)
  expected = P - lr * m_hat / (np.sqrt(v_hat) + eps)
  actual = _one_step(optimizers.OptimizerConfig(learning_rate=lr, weight_decay=wd))
  np.testing.assert_allclose(actual, expected, rtol=1e-6)


def test_adamw_decouples_decay():
  lr, wd = 1e-2, 0.1
  expected = P - lr * (np.sign(G) + wd * P)  # First Adam step is lr * sign(g).
  actual = _one_step(optimizers.OptimizerConfig(name='adamw', learning_rate=lr,
                                                weight_decay=wd))
  np.testing.assert_allclose(actual, expected, rtol=1e-5)


def test_sgd_and_rmsprop_first_steps():
  lr, wd = 0.1, 0.01
  g = G + wd * P
  sgd = _one_step(optimizers.OptimizerConfig(name='sgd', learning_rate=lr,
                                             weight_decay=wd))
  np.testing.assert_allclose(sgd, P - lr * g, rtol=1e-6)
  rms = _one_step(optimizers.OptimizerConfig(name='rmsprop', learning_rate=lr,
                                             weight_decay=wd))
  v = 0.01 * g**2  # alpha = 0.99, as PyTorch.
  np.testing.assert_allclose(rms, P - lr * g / (np.sqrt(v) + 1e-8), rtol=1e-5)


def test_clipping_bounds_the_global_norm():
  big = G * 1e3
  cfg = optimizers.OptimizerConfig(name='sgd', learning_rate=1.0, weight_decay=0.0,
                                   momentum=0.0, clip_grad_norm=1.0)
  step = P - _one_step(cfg, grads=big)
  np.testing.assert_allclose(np.linalg.norm(step), 1.0, rtol=1e-5)


def test_warmup_cosine_schedule_shape():
  sched = optimizers.make_schedule(optimizers.OptimizerConfig(
      schedule='warmup_cosine', learning_rate=1.0, warmup_steps=10, total_steps=100))
  values = np.array([sched(i) for i in range(101)])
  assert values[0] == 0.0 and np.isclose(values[10], 1.0) and np.isclose(values[100], 0.0)
  assert np.all(np.diff(values[:11]) > 0) and np.all(np.diff(values[10:]) <= 1e-7)


@pytest.mark.parametrize('cfg', [
    optimizers.OptimizerConfig(name='adagrad'),
    optimizers.OptimizerConfig(schedule='step'),
    optimizers.OptimizerConfig(learning_rate=0.0),
    optimizers.OptimizerConfig(weight_decay=-1.0),
    optimizers.OptimizerConfig(schedule='warmup_cosine', warmup_steps=5, total_steps=5),
])
def test_bad_settings_are_user_errors(cfg):
  with pytest.raises(UserInputError):
    optimizers.make_optimizer(cfg)
