"""Denoising diffusion (DDPM, Ho et al. 2020; DDIM, Song et al. 2021): schedules and samplers.

Dimension key: B batch, H height, W width, C channels, T number of diffusion
steps (time steps are 0-based: t = 0 .. T - 1 stands for the paper's 1 .. T).

Everything is pure: a `Schedule` is a pytree of (T,) float32 tables; the
samplers take `eps_fn(x_BxHxWxC, t_B) -> eps_BxHxWxC` (a noise predictor with
its parameters and conditioning already bound) and run as one `lax.scan`. The
forward process q(x_t | x_0) is here too, since the training loss of
`research.tasks.ddpm` draws its x_t with the same tables the samplers invert.

Each sampler is one compiled loop: the denoiser's forward pass keeps its fast
convolution kernels inside a scan (it is a training step's convolution
*gradients* that lose theirs inside an XLA:CPU while loop), so nothing is gained
by stepping from Python.
"""

import math
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

SCHEDULES = ('linear', 'cosine')
EpsFn = Callable[[jax.Array, jax.Array], jax.Array]


def linear_betas(num_steps: int, start: float = 1e-4, end: float = 0.02) -> np.ndarray:
  """The DDPM paper's betas, linear from `start` to `end` (its T is 1000).

  Returns:
    float64 (T,).
  """
  return np.linspace(start, end, num_steps, dtype=np.float64)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
  """Nichol & Dhariwal's cosine schedule: alpha_bar(t) = cos^2((t/T + s)/(1 + s) pi/2).

  Returns:
    float64 (T,), clipped to at most `max_beta`.
  """
  f = lambda t: np.cos((t / num_steps + s) / (1 + s) * math.pi / 2) ** 2
  t = np.arange(num_steps + 1, dtype=np.float64)
  return np.clip(1.0 - f(t[1:]) / f(t[:-1]), 0.0, max_beta)


@flax.struct.dataclass
class Schedule:
  """Noise-schedule tables, each float32 (T,); index t is the paper's step t + 1.

  Attributes:
    betas: beta_t, the variance added at step t.
    alphas_cumprod: alpha_bar_t = prod_{s <= t} (1 - beta_s).
    alphas_cumprod_prev: alpha_bar_{t-1} (1 at t = 0).
    posterior_variance: beta-tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t).
    posterior_log_variance: its log, with the t = 0 value (0) replaced by t = 1's.
    posterior_mean_coef_x0: coefficient of x_0 in the posterior mean.
    posterior_mean_coef_xt: coefficient of x_t in the posterior mean.
  """

  betas: jax.Array
  alphas_cumprod: jax.Array
  alphas_cumprod_prev: jax.Array
  posterior_variance: jax.Array
  posterior_log_variance: jax.Array
  posterior_mean_coef_x0: jax.Array
  posterior_mean_coef_xt: jax.Array

  @property
  def num_steps(self) -> int:
    return self.betas.shape[0]


def make_schedule(name: str, num_steps: int) -> Schedule:
  """Builds the 'linear' or 'cosine' schedule with T = `num_steps` (in float64 first).

  Raises:
    ValueError: for an unknown name or num_steps < 2.
  """
  if num_steps < 2:
    raise ValueError(f'the number of diffusion steps must be >= 2, got {num_steps}')
  if name == 'linear':
    betas = linear_betas(num_steps)
  elif name == 'cosine':
    betas = cosine_betas(num_steps)
  else:
    raise ValueError(f'unknown noise schedule {name!r}: use one of {SCHEDULES}')
  ac = np.cumprod(1.0 - betas)
  ac_prev = np.append(1.0, ac[:-1])
  post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  return Schedule(
    betas=f32(betas),
    alphas_cumprod=f32(ac),
    alphas_cumprod_prev=f32(ac_prev),
    posterior_variance=f32(post_var),
    posterior_log_variance=f32(np.log(np.append(post_var[1], post_var[1:]))),
    posterior_mean_coef_x0=f32(betas * np.sqrt(ac_prev) / (1.0 - ac)),
    posterior_mean_coef_xt=f32((1.0 - ac_prev) * np.sqrt(1.0 - betas) / (1.0 - ac)),
  )


def _at(table_T: jax.Array, t_B: jax.Array, ndim: int) -> jax.Array:
  """table[t] shaped (B, 1, 1, ...) to broadcast against an ndim-dimensional batch."""
  return table_T[t_B].reshape((-1,) + (1,) * (ndim - 1))


def q_mean_variance(sched: Schedule, x0: jax.Array, t_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean sqrt(alpha_bar_t) x_0 and variance (1 - alpha_bar_t) of q(x_t | x_0)."""
  ac = _at(sched.alphas_cumprod, t_B, x0.ndim)
  return jnp.sqrt(ac) * x0, jnp.broadcast_to(1.0 - ac, x0.shape)


def q_sample(sched: Schedule, x0: jax.Array, t_B: jax.Array, noise: jax.Array) -> jax.Array:
  """Draws x_t ~ q(x_t | x_0) in closed form: sqrt(ab) x_0 + sqrt(1 - ab) noise.

  Args:
    sched: the noise schedule.
    x0: float clean images (B, H, W, C) (any batch of rank >= 1).
    t_B: int32 time steps (B,).
    noise: standard normal noise like `x0`.

  Returns:
    float32 x_t like `x0`.
  """
  ac = _at(sched.alphas_cumprod, t_B, x0.ndim)
  return jnp.sqrt(ac) * x0 + jnp.sqrt(1.0 - ac) * noise


def q_posterior(
  sched: Schedule, x0: jax.Array, xt: jax.Array, t_B: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Mean, variance and log variance of q(x_{t-1} | x_t, x_0) (each like x0)."""
  mean = (
    _at(sched.posterior_mean_coef_x0, t_B, x0.ndim) * x0
    + _at(sched.posterior_mean_coef_xt, t_B, x0.ndim) * xt
  )
  var = jnp.broadcast_to(_at(sched.posterior_variance, t_B, x0.ndim), x0.shape)
  logvar = jnp.broadcast_to(_at(sched.posterior_log_variance, t_B, x0.ndim), x0.shape)
  return mean, var, logvar


def predict_x0(sched: Schedule, xt: jax.Array, t_B: jax.Array, eps: jax.Array) -> jax.Array:
  """x_0 implied by x_t and its noise: (x_t - sqrt(1 - ab) eps) / sqrt(ab)."""
  ac = _at(sched.alphas_cumprod, t_B, xt.ndim)
  return (xt - jnp.sqrt(1.0 - ac) * eps) / jnp.sqrt(ac)


def classifier_free_guidance(
  eps_cond: jax.Array, eps_uncond: jax.Array, scale: float | jax.Array
) -> jax.Array:
  """eps_u + scale (eps_c - eps_u): 0 is unconditional, 1 conditional, > 1 guided.

  Args:
    eps_cond: float32 noise predicted with the prompt (B, H, W, C).
    eps_uncond: float32 noise predicted without it, same shape.
    scale: the guidance scale, a float or a float32 scalar.

  Returns:
    float32 guided noise (B, H, W, C).
  """
  return eps_uncond + scale * (eps_cond - eps_uncond)


def ddpm_sample(
  eps_fn: EpsFn, sched: Schedule, shape: tuple[int, ...], rng: jax.Array, clip: bool = True
) -> jax.Array:
  """Ancestral sampling through all T steps (Ho et al., Algorithm 2), one `lax.scan`.

  Each step predicts x_0 from the noise (clipped to [-1, 1] if `clip`) and draws
  x_{t-1} from the posterior q(x_{t-1} | x_t, x_0) with variance beta-tilde_t
  (no noise at the last step).

  Args:
    eps_fn: (x_t (B, H, W, C), t (B,) int32) -> predicted noise.
    sched: the noise schedule.
    shape: (B, H, W, C) of the samples.
    rng: key for the initial noise and every step's noise.
    clip: clip the predicted x_0 to [-1, 1].

  Returns:
    float32 samples x_0 of `shape`.
  """
  init_rng, step_rng = jax.random.split(rng)
  x_T = jax.random.normal(init_rng, shape, jnp.float32)

  def step(x, t):
    t_B = jnp.full((shape[0],), t, jnp.int32)
    x0 = predict_x0(sched, x, t_B, eps_fn(x, t_B))
    x0 = jnp.clip(x0, -1.0, 1.0) if clip else x0
    mean, _, logvar = q_posterior(sched, x0, x, t_B)
    z = jax.random.normal(jax.random.fold_in(step_rng, t), shape, jnp.float32)
    return mean + (t > 0) * jnp.exp(0.5 * logvar) * z, None

  x0, _ = jax.lax.scan(step, x_T, jnp.arange(sched.num_steps - 1, -1, -1))
  return x0


def ddim_timesteps(num_train_steps: int, num_steps: int) -> np.ndarray:
  """`num_steps` evenly spaced time steps from 0 to T - 1, ascending, int32."""
  if not 1 <= num_steps <= num_train_steps:
    raise ValueError(f'sampling steps must be in [1, {num_train_steps}], got {num_steps}')
  return np.unique(np.linspace(0, num_train_steps - 1, num_steps).round()).astype(np.int32)


def ddim_sample(
  eps_fn: EpsFn,
  sched: Schedule,
  shape: tuple[int, ...],
  rng: jax.Array,
  num_steps: int = 50,
  eta: float = 0.0,
  clip: bool = True,
) -> jax.Array:
  """DDIM sampling over `num_steps` of the T steps, one `lax.scan`.

  With eta = 0 the update is deterministic given the initial noise; eta = 1
  matches DDPM's variance on the sub-sequence.

  Args:
    eps_fn: (x_t (B, H, W, C), t (B,) int32) -> predicted noise.
    sched: the noise schedule (T steps).
    shape: (B, H, W, C) of the samples.
    rng: key for the initial noise (and the step noise when eta > 0).
    num_steps: number of denoising steps S <= T.
    eta: stochasticity, in [0, 1].
    clip: clip the predicted x_0 to [-1, 1].

  Returns:
    float32 samples x_0 of `shape`.
  """
  ts = ddim_timesteps(sched.num_steps, num_steps)
  prev = np.append(-1, ts[:-1])
  init_rng, step_rng = jax.random.split(rng)
  x_T = jax.random.normal(init_rng, shape, jnp.float32)

  def step(x, t_pair):
    t, t_prev = t_pair
    t_B = jnp.full((shape[0],), t, jnp.int32)
    eps = eps_fn(x, t_B)
    x0 = predict_x0(sched, x, t_B, eps)
    if clip:
      x0 = jnp.clip(x0, -1.0, 1.0)
    ac = sched.alphas_cumprod[t]
    ac_prev = jnp.where(t_prev >= 0, sched.alphas_cumprod[jnp.maximum(t_prev, 0)], 1.0)
    # The noise direction consistent with the (clipped) x_0.
    eps = (x - jnp.sqrt(ac) * x0) / jnp.sqrt(1.0 - ac)
    sigma = eta * jnp.sqrt((1.0 - ac_prev) / (1.0 - ac) * (1.0 - ac / ac_prev))
    x = jnp.sqrt(ac_prev) * x0 + jnp.sqrt(jnp.maximum(1.0 - ac_prev - sigma**2, 0.0)) * eps
    if eta > 0:
      x = x + sigma * jax.random.normal(jax.random.fold_in(step_rng, t), shape)
    return x, None

  x0, _ = jax.lax.scan(step, x_T, (jnp.asarray(ts[::-1]), jnp.asarray(prev[::-1])))
  return x0
