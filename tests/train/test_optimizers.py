"""Optimisers: several steps against PyTorch's update rules written out in NumPy,
schedules and bad settings.

One Adam step moves every weight by about lr * sign(g), whatever the decay, so only
several steps with changing gradients and a large decay tell the rules apart. The
references follow the algorithms in PyTorch's documentation of `torch.optim.Adam`,
`AdamW`, `SGD` (dampening 0, no Nesterov) and `RMSprop` (alpha 0.99, not centred).
"""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.errors import UserInputError
from research.train import optimizers

P = np.array([0.5, -1.0, 2.0, -3.0, 0.25], np.float32)
STEPS = 8
WD = 0.1  # Large enough that the decay term rivals the gradients.
# Changing gradients, some changing sign, of the size of the decay term.
GRADS = (np.random.default_rng(0).normal(size=(STEPS, P.size)) * 0.3).astype(np.float32)


def _run(cfg, grads=GRADS, params=P):
  """Applies `cfg`'s optimiser to the gradient sequence; returns the final params."""
  tx = optimizers.make_optimizer(cfg)
  p = {'w': jnp.asarray(params)}
  opt_state = tx.init(p)
  for g in grads:
    updates, opt_state = tx.update({'w': jnp.asarray(g)}, opt_state, p)
    p = optax.apply_updates(p, updates)
  return np.asarray(p['w'])


# PyTorch's algorithms in float64, one function per optimiser; `lrs` is the learning
# rate of each step.


def _torch_adam(lrs, wd, b1=0.9, b2=0.999, eps=1e-8, decoupled=False):
  p, m, v = P.astype(np.float64), 0.0, 0.0
  for t, (g, lr) in enumerate(zip(GRADS.astype(np.float64), lrs, strict=True), start=1):
    if decoupled:
      p = p * (1 - lr * wd)  # AdamW: decay the weights, not the gradient.
    else:
      g = g + wd * p  # Adam(weight_decay): L2 enters both moments.
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
  return p


def _torch_sgd(lrs, wd, momentum):
  p, buf = P.astype(np.float64), None
  for g, lr in zip(GRADS.astype(np.float64), lrs, strict=True):
    g = g + wd * p
    if momentum:
      buf = g if buf is None else momentum * buf + g  # dampening 0.
      g = buf
    p = p - lr * g
  return p


def _torch_rmsprop(lrs, wd, alpha=0.99, eps=1e-8):
  p, v = P.astype(np.float64), 0.0
  for g, lr in zip(GRADS.astype(np.float64), lrs, strict=True):
    g = g + wd * p
    v = alpha * v + (1 - alpha) * g**2
    p = p - lr * g / (np.sqrt(v) + eps)  # eps outside the square root.
  return p


LR = {'adam': 0.05, 'adamw': 0.05, 'sgd': 0.1, 'rmsprop': 0.01}


def _reference(name, wd, lrs=None):
  lrs = [LR[name]] * STEPS if lrs is None else lrs
  if name in ('adam', 'adamw'):
    return _torch_adam(lrs, wd, decoupled=name == 'adamw')
  if name == 'sgd':
    return _torch_sgd(lrs, wd, momentum=0.9)
  return _torch_rmsprop(lrs, wd)


def _cfg(name, wd, **kw):
  return optimizers.OptimizerConfig(name=name, learning_rate=LR[name], weight_decay=wd, **kw)


@pytest.mark.parametrize('name', optimizers.OPTIMIZERS)
@pytest.mark.parametrize('wd', [0.0, WD])
def test_several_steps_follow_pytorchs_rule(name, wd):
  np.testing.assert_allclose(_run(_cfg(name, wd)), _reference(name, wd), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', optimizers.OPTIMIZERS)
def test_weight_decay_changes_the_trajectory(name):
  # Guards the test above: were decay too small to matter, a rule that drops it
  # would still pass there.
  gap = np.abs(_reference(name, WD) - _reference(name, 0.0)).max()
  assert gap > 1e3 * 1e-5 * np.abs(P).max(), gap
  assert np.abs(_run(_cfg(name, WD)) - _run(_cfg(name, 0.0))).max() > 0.5 * gap


def test_adam_decay_is_coupled_and_adamw_decay_is_not():
  adam, adamw = _run(_cfg('adam', WD)), _run(_cfg('adamw', WD))
  assert np.abs(adam - adamw).max() > 1e-2
  np.testing.assert_allclose(adam, _torch_adam([LR['adam']] * STEPS, WD), rtol=1e-5)


def test_sgd_without_momentum_is_plain_gradient_descent():
  cfg = _cfg('sgd', WD, momentum=0.0)
  p = P.astype(np.float64)
  for g in GRADS:
    p = p - LR['sgd'] * (g + WD * p)
  np.testing.assert_allclose(_run(cfg), p, rtol=1e-5, atol=1e-6)


def test_the_schedule_sets_each_steps_learning_rate():
  cfg = optimizers.OptimizerConfig(
    name='adam',
    learning_rate=0.05,
    weight_decay=WD,
    schedule='warmup_cosine',
    warmup_steps=3,
    total_steps=STEPS,
  )
  lrs = [float(optimizers.make_schedule(cfg)(t)) for t in range(STEPS)]
  assert lrs[0] == 0.0 and max(lrs) == pytest.approx(0.05)
  np.testing.assert_allclose(_run(cfg), _torch_adam(lrs, WD), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', optimizers.OPTIMIZERS)
def test_agrees_with_torch_itself(name):
  torch = pytest.importorskip('torch')
  w = torch.nn.Parameter(torch.tensor(P, dtype=torch.float64))
  lr = LR[name]
  opt = {
    'adam': lambda: torch.optim.Adam([w], lr=lr, weight_decay=WD),
    'adamw': lambda: torch.optim.AdamW([w], lr=lr, weight_decay=WD),
    'sgd': lambda: torch.optim.SGD([w], lr=lr, momentum=0.9, weight_decay=WD),
    'rmsprop': lambda: torch.optim.RMSprop([w], lr=lr, weight_decay=WD),
  }[name]()
  for g in GRADS:
    w.grad = torch.tensor(g, dtype=torch.float64)
    opt.step()
  np.testing.assert_allclose(_run(_cfg(name, WD)), w.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_clipping_bounds_the_global_norm():
  cfg = optimizers.OptimizerConfig(
    name='sgd', learning_rate=1.0, weight_decay=0.0, momentum=0.0, clip_grad_norm=1.0
  )
  step = P - _run(cfg, grads=GRADS[:1] * 1e3)
  np.testing.assert_allclose(np.linalg.norm(step), 1.0, rtol=1e-5)


def test_warmup_cosine_schedule_shape():
  sched = optimizers.make_schedule(
    optimizers.OptimizerConfig(
      schedule='warmup_cosine', learning_rate=1.0, warmup_steps=10, total_steps=100
    )
  )
  values = np.array([sched(i) for i in range(101)])
  assert values[0] == 0.0 and np.isclose(values[10], 1.0) and np.isclose(values[100], 0.0)
  assert np.all(np.diff(values[:11]) > 0) and np.all(np.diff(values[10:]) <= 1e-7)


@pytest.mark.parametrize(
  'cfg',
  [
    optimizers.OptimizerConfig(name='adagrad'),
    optimizers.OptimizerConfig(schedule='step'),
    optimizers.OptimizerConfig(learning_rate=0.0),
    optimizers.OptimizerConfig(weight_decay=-1.0),
    optimizers.OptimizerConfig(schedule='warmup_cosine', warmup_steps=5, total_steps=5),
  ],
)
def test_bad_settings_are_user_errors(cfg):
  with pytest.raises(UserInputError):
    optimizers.make_optimizer(cfg)


def test_parameter_ema_is_decay_times_average_plus_rest_times_params_each_step():
  # SGD with lr 1 and constant gradients: the parameters go 4 -> 3 -> 2 -> ...
  tx = optimizers.with_parameter_ema(
    optimizers.make_optimizer(
      optimizers.OptimizerConfig(name='sgd', learning_rate=1.0, weight_decay=0.0, momentum=0.0)
    ),
    decay=0.5,
  )
  params = {'w': jnp.array(4.0)}
  opt = tx.init(params)
  np.testing.assert_allclose(optimizers.ema_params(opt)['w'], 4.0)
  expected = 4.0
  for n in range(1, 11):
    updates, opt = tx.update({'w': jnp.array(1.0)}, opt, params)
    params = optax.apply_updates(params, updates)
    # The decay warms up as (1 + n) / (10 + n), capped at 0.5 from n = 8 on.
    d = min(0.5, (1 + n) / (10 + n))
    expected = d * expected + (1 - d) * (4.0 - n)
    np.testing.assert_allclose(optimizers.ema_params(opt)['w'], expected, rtol=1e-6)
    np.testing.assert_allclose(updates['w'], -1.0)  # The inner optimiser's step.
  assert int(opt.count) == 10
