"""Diffusion maths: schedules, q(x_t | x_0), posterior, samplers, guidance."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.generation import diffusion


@pytest.mark.parametrize('name', diffusion.SCHEDULES)
@pytest.mark.parametrize('num_steps', [10, 1000])
def test_schedule_invariants(name, num_steps):
  s = diffusion.make_schedule(name, num_steps)
  ac = np.asarray(s.alphas_cumprod)
  assert ac.shape == (num_steps,)
  assert np.all((ac > 0) & (ac < 1)), 'cumulative alphas must lie in (0, 1)'
  assert np.all(np.diff(ac) < 0), 'cumulative alphas must decrease'
  assert np.all((np.asarray(s.betas) > 0) & (np.asarray(s.betas) < 1))
  np.testing.assert_allclose(s.alphas_cumprod_prev[1:], ac[:-1])
  assert s.alphas_cumprod_prev[0] == 1.0


def test_linear_schedule_is_the_ddpm_papers():
  s = diffusion.make_schedule('linear', 1000)
  np.testing.assert_allclose([s.betas[0], s.betas[-1]], [1e-4, 0.02], rtol=1e-6)
  assert s.alphas_cumprod[-1] < 1e-4  # x_T is almost pure noise.


def test_bad_schedule_is_rejected():
  with pytest.raises(ValueError, match='unknown noise schedule'):
    diffusion.make_schedule('quadratic', 10)


def test_q_sample_matches_closed_form_mean_and_variance():
  s = diffusion.make_schedule('linear', 1000)
  x0 = jnp.array([[0.5, -1.0, 0.0]])  # (1, 3)
  t = jnp.array([300])
  noise = jax.random.normal(jax.random.key(0), (200_000, 3))
  xt = diffusion.q_sample(
    s, jnp.broadcast_to(x0, noise.shape), jnp.broadcast_to(t, (noise.shape[0],)), noise
  )
  mean, var = diffusion.q_mean_variance(s, x0, t)
  np.testing.assert_allclose(xt.mean(0), mean[0], atol=0.01)
  np.testing.assert_allclose(xt.var(0), var[0], rtol=0.02)
  np.testing.assert_allclose(var[0], 1 - s.alphas_cumprod[300], rtol=1e-6)


def test_posterior_is_the_product_of_the_two_gaussians():
  """q(x_{t-1}|x_t,x_0) ∝ N(x_{t-1}; sqrt(ab') x0, 1-ab') N(x_t; sqrt(a) x_{t-1}, beta)."""
  s = diffusion.make_schedule('cosine', 100)
  t = np.array([1, 40, 99])
  x0, xt = jnp.array([0.3, -0.7, 0.9]), jnp.array([1.2, 0.1, -0.4])
  mean, var, logvar = diffusion.q_posterior(s, x0, xt, jnp.asarray(t))
  ab_prev = np.asarray(s.alphas_cumprod_prev)[t]
  beta = np.asarray(s.betas)[t]
  precision = 1 / (1 - ab_prev) + (1 - beta) / beta
  want_var = 1 / precision
  want_mean = want_var * (np.sqrt(ab_prev) * x0 / (1 - ab_prev) + np.sqrt(1 - beta) * xt / beta)
  np.testing.assert_allclose(var, want_var, rtol=1e-4)
  np.testing.assert_allclose(mean, want_mean, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(logvar, np.log(want_var), rtol=1e-4)


def test_predict_x0_inverts_q_sample():
  s = diffusion.make_schedule('linear', 50)
  k1, k2 = jax.random.split(jax.random.key(1))
  x0 = jax.random.uniform(k1, (4, 3, 3, 1), minval=-1, maxval=1)
  noise = jax.random.normal(k2, x0.shape)
  t = jnp.array([0, 10, 30, 49])
  xt = diffusion.q_sample(s, x0, t, noise)
  chex.assert_trees_all_close(diffusion.predict_x0(s, xt, t, noise), x0, atol=1e-4)


def _oracle(sched, c):
  """The exact noise predictor when all data is the constant image c."""

  def eps_fn(x, t_B):
    ac = sched.alphas_cumprod[t_B][:, None, None, None]
    return (x - jnp.sqrt(ac) * c) / jnp.sqrt(1 - ac)

  return eps_fn


@pytest.mark.parametrize('sampler', ['ddim', 'ddpm'])
def test_samplers_shapes_determinism_and_exactness_with_an_oracle(sampler):
  s = diffusion.make_schedule('linear', 50)
  c = 0.25
  run = jax.jit(
    functools.partial(
      diffusion.ddim_sample if sampler == 'ddim' else diffusion.ddpm_sample,
      _oracle(s, c),
      s,
      (3, 4, 4, 1),
      **({'num_steps': 10} if sampler == 'ddim' else {}),
    )
  )
  a, b = run(jax.random.key(0)), run(jax.random.key(0))
  chex.assert_shape(a, (3, 4, 4, 1))
  chex.assert_trees_all_equal(a, b)
  chex.assert_trees_all_close(a, jnp.full_like(a, c), atol=1e-3)


def test_samplers_depend_on_the_key():
  s = diffusion.make_schedule('linear', 20)
  eps_fn = lambda x, t: 0.1 * x
  for sample in (functools.partial(diffusion.ddim_sample, num_steps=5), diffusion.ddpm_sample):
    a = sample(eps_fn, s, (2, 4, 4, 1), jax.random.key(0))
    b = sample(eps_fn, s, (2, 4, 4, 1), jax.random.key(1))
    assert not np.allclose(a, b)
    chex.assert_tree_all_finite(a)


def test_ddim_timesteps():
  np.testing.assert_array_equal(diffusion.ddim_timesteps(10, 4), [0, 3, 6, 9])
  assert len(diffusion.ddim_timesteps(1000, 50)) == 50
  with pytest.raises(ValueError, match='sampling steps'):
    diffusion.ddim_timesteps(10, 11)


def test_guidance_scale_0_is_unconditional_and_1_conditional():
  c, u = jnp.array([1.0, 2.0]), jnp.array([-1.0, 0.5])
  chex.assert_trees_all_close(diffusion.classifier_free_guidance(c, u, 0.0), u)
  chex.assert_trees_all_close(diffusion.classifier_free_guidance(c, u, 1.0), c)
  chex.assert_trees_all_close(diffusion.classifier_free_guidance(c, u, 3.0), u + 3 * (c - u))
