"""Prompt-conditioned DDPM as a task: model, loss function, EMA and sampling.

Dimension key: B batch, H height, W width, C channels, L prompt length, D
conditioning width, K classes (one prompt per class).

Images enter as uint8 and are scaled to [-1, 1]. Each class has one prompt
("a handwritten seven"); in training a prompt is replaced by a learned null
embedding with probability `cond_drop_rate`, so the same network also predicts
the unconditional noise and classifier-free guidance works at sampling time.
"""

import functools
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from research import diffusion
from research.models import text_encoder
from research.models import unet

DIGIT_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight',
               'nine')


def class_prompts(dataset: str, class_names: Sequence[str]) -> list[str]:
  """One prompt per class: 'a handwritten seven' for MNIST digits, else 'a photo of a X'."""
  if dataset.startswith('mnist') and len(class_names) == 10:
    return [f'a handwritten {w}' for w in DIGIT_WORDS]
  return [f'a photo of a {n.replace("_", " ").lower()}' for n in class_names]


class Denoiser(nn.Module):
  """Text encoder + U-Net: predicts the noise of x_t given t and a prompt.

  `encode` turns prompts into conditioning vectors (or the null vector where
  dropped), `denoise` predicts noise from a conditioning vector; `__call__` is
  both, and is what training uses.
  """
  unet_config: unet.UNetConfig
  text_config: text_encoder.TextEncoderConfig

  def setup(self):
    self.text = text_encoder.TextEncoder(self.text_config)
    self.null = self.param('null_embedding', nn.initializers.normal(1.0),
                           (self.text_config.emb_dim,), jnp.float32)
    self.unet = unet.UNet(self.unet_config)

  def encode(self, tokens_BxL: jax.Array, drop_B: jax.Array, *, train: bool = False
             ) -> jax.Array:
    """(B, D) float32: the encoded prompt, or the null embedding where `drop_B`."""
    cond = self.text(tokens_BxL, train=train)
    return jnp.where(drop_B[:, None], self.null[None].astype(cond.dtype), cond)

  def denoise(self, x_BxHxWxC: jax.Array, t_B: jax.Array, cond_BxD: jax.Array, *,
              train: bool = False) -> jax.Array:
    """Predicted noise, float32 (B, H, W, C)."""
    return self.unet(x_BxHxWxC, t_B, cond_BxD, train=train)

  def __call__(self, x_BxHxWxC, t_B, tokens_BxL, drop_B, *, train: bool):
    return self.denoise(x_BxHxWxC, t_B, self.encode(tokens_BxL, drop_B, train=train),
                        train=train)


def to_model_range(images_u8: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images_u8.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(x: jax.Array) -> jax.Array:
  """float [-1, 1] -> uint8 [0, 255] (clipped, rounded)."""
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def make_loss_fn(model: Denoiser, sched: diffusion.Schedule, prompt_tokens_KxL: np.ndarray,
                 cond_drop_rate: float) -> Callable:
  """The noise-prediction loss (see `research.train.steps` for the contract).

  Batches hold 'image' uint8 (B, H, W, C), 'label' int32 (B,) and 'mask'. Each
  example draws its time step uniformly from [0, T) and its noise; evaluation
  (rng None) uses a fixed key, so its loss is comparable between calls, and
  never drops prompts.

  Returns:
    loss_fn(params, batch, rng, train) -> ({'loss': (sum, count)}, {'loss': (B,)}).
  """
  tokens_table = jnp.asarray(prompt_tokens_KxL)

  def loss_fn(params, batch, rng, train):
    rng = jax.random.key(0) if rng is None else rng
    t_rng, noise_rng, drop_rng, dropout_rng = jax.random.split(rng, 4)
    x0 = to_model_range(batch['image'])
    b = x0.shape[0]
    t_B = jax.random.randint(t_rng, (b,), 0, sched.num_steps)
    noise = jax.random.normal(noise_rng, x0.shape, jnp.float32)
    drop_B = (jax.random.bernoulli(drop_rng, cond_drop_rate, (b,)) if train
              else jnp.zeros((b,), bool))
    eps = model.apply({'params': params}, diffusion.q_sample(sched, x0, t_B, noise), t_B,
                      tokens_table[batch['label']], drop_B, train=train,
                      rngs={'dropout': dropout_rng})
    losses_B = diffusion.noise_loss(eps, noise)
    mask_B = batch['mask']
    return {'loss': ((losses_B * mask_B).sum(), mask_B.sum())}, {'loss': losses_B}
  return loss_fn


class EmaState(NamedTuple):
  """State of `with_parameter_ema`: the wrapped optimiser's state and the average."""
  inner: Any
  ema: Any
  count: jax.Array


def with_parameter_ema(tx: optax.GradientTransformation, decay: float
                       ) -> optax.GradientTransformation:
  """Wraps `tx` to keep an exponential moving average of the updated parameters.

  The average lives in the optimiser state, so it is checkpointed and restored
  with it. Its decay warms up as min(decay, (1 + n) / (10 + n)) after n updates,
  so early averages are not dominated by the random initialisation.
  """
  def init(params):
    return EmaState(tx.init(params), jax.tree.map(jnp.asarray, params),
                    jnp.zeros((), jnp.int32))

  def update(updates, state, params=None):
    updates, inner = tx.update(updates, state.inner, params)
    new_params = optax.apply_updates(params, updates)
    count = state.count + 1
    d = jnp.minimum(decay, (1.0 + count) / (10.0 + count))
    ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state.ema, new_params)
    return updates, EmaState(inner, ema, count)
  return optax.GradientTransformation(init, update)


def ema_params(opt_state: EmaState) -> Any:
  """The averaged parameters held by a `with_parameter_ema` optimiser state."""
  return opt_state.ema


def sample(model: Denoiser, params: Any, sched: diffusion.Schedule, tokens_BxL: jax.Array,
           rng: jax.Array, *, image_shape: tuple[int, int, int], sampler: str = 'ddim',
           num_steps: int = 50, guidance_scale: float = 1.0) -> jax.Array:
  """Generates one image per prompt with classifier-free guidance.

  The prompts are encoded once; every step runs the U-Net on the conditional
  and the unconditional (null) inputs as one batch of 2B.

  Args:
    model: the Denoiser.
    params: its parameters (e.g. the EMA).
    sched: the noise schedule it was trained with.
    tokens_BxL: prompt character ids.
    rng: sampling key.
    image_shape: (H, W, C).
    sampler: 'ddim' (deterministic, `num_steps` steps) or 'ddpm' (ancestral, all T).
    num_steps: DDIM steps.
    guidance_scale: 0 unconditional, 1 conditional, > 1 guided.

  Returns:
    float32 images in [-1, 1], (B, H, W, C).
  """
  b = tokens_BxL.shape[0]
  apply = functools.partial(model.apply, {'params': params})
  cond = apply(tokens_BxL, jnp.zeros((b,), bool), method=Denoiser.encode)
  null = apply(tokens_BxL, jnp.ones((b,), bool), method=Denoiser.encode)
  cond_2BxD = jnp.concatenate([cond, null])

  def eps_fn(x, t_B):
    eps = apply(jnp.concatenate([x, x]), jnp.concatenate([t_B, t_B]), cond_2BxD,
                method=Denoiser.denoise)
    return diffusion.classifier_free_guidance(eps[:b], eps[b:], guidance_scale)

  shape = (b,) + tuple(image_shape)
  if sampler == 'ddim':
    return diffusion.ddim_sample(eps_fn, sched, shape, rng, num_steps=num_steps)
  if sampler == 'ddpm':
    return diffusion.ddpm_sample(eps_fn, sched, shape, rng)
  raise ValueError(f"unknown sampler {sampler!r}: use 'ddim' or 'ddpm'")
