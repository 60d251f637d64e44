"""Prompt-conditioned DDPM as a task: model, loss function and sampling.

Dimension key: B batch, H height, W width, C channels, L prompt length, D
conditioning width, K classes (one prompt per class).

Images enter as uint8 and are scaled to [-1, 1]. Each class has one prompt
("a handwritten seven"); in training a prompt is replaced by a learned null
embedding with probability `cond_drop_rate`, so the same network also predicts
the unconditional noise and classifier-free guidance works at sampling time.
"""

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from research import diffusion
from research.models.denoiser import Denoiser

DIGIT_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')


def class_prompts(dataset: str, class_names: Sequence[str]) -> list[str]:
  """One prompt per class: 'a handwritten seven' for MNIST digits, else 'a photo of a X'."""
  if dataset.startswith('mnist') and len(class_names) == 10:
    return [f'a handwritten {w}' for w in DIGIT_WORDS]
  return [f'a photo of a {n.replace("_", " ").lower()}' for n in class_names]


def to_model_range(images_u8: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images_u8.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(x: jax.Array) -> jax.Array:
  """float [-1, 1] -> uint8 [0, 255] (clipped, rounded)."""
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def make_loss_fn(
  model: Denoiser, sched: diffusion.Schedule, prompt_tokens_KxL: np.ndarray, cond_drop_rate: float
) -> Callable:
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
    drop_B = (
      jax.random.bernoulli(drop_rng, cond_drop_rate, (b,)) if train else jnp.zeros((b,), bool)
    )
    eps = model.apply(
      {'params': params},
      diffusion.q_sample(sched, x0, t_B, noise),
      t_B,
      tokens_table[batch['label']],
      drop_B,
      train=train,
      rngs={'dropout': dropout_rng},
    )
    losses_B = diffusion.noise_loss(eps, noise)
    mask_B = batch['mask']
    return {'loss': ((losses_B * mask_B).sum(), mask_B.sum())}, {'loss': losses_B}

  return loss_fn


def sample(
  model: Denoiser,
  params: Any,
  sched: diffusion.Schedule,
  tokens_BxL: jax.Array,
  rng: jax.Array,
  *,
  image_shape: tuple[int, int, int],
  sampler: str = 'ddim',
  num_steps: int = 50,
  guidance_scale: float = 1.0,
) -> jax.Array:
  """Generates one image per prompt with classifier-free guidance.

  The prompts are encoded once; every step runs the U-Net on the conditional
  and the unconditional (null) inputs as one batch of 2B.

  Args:
    model: the Denoiser.
    params: its parameters (e.g. the EMA).
    sched: the noise schedule it was trained with.
    tokens_BxL: int32 prompt token ids (`WordTokenizer.encode_batch`).
    rng: sampling key.
    image_shape: (H, W, C).
    sampler: 'ddim' (deterministic, `num_steps` steps) or 'ddpm' (ancestral, all T).
    num_steps: DDIM steps.
    guidance_scale: 0 unconditional, 1 conditional, > 1 guided.

  Returns:
    float32 images in [-1, 1], (B, H, W, C).
  """
  b = tokens_BxL.shape[0]
  apply: Callable[..., Any] = functools.partial(model.apply, {'params': params})
  cond = apply(tokens_BxL, jnp.zeros((b,), bool), method=Denoiser.encode)
  null = apply(tokens_BxL, jnp.ones((b,), bool), method=Denoiser.encode)
  cond_2BxD = jnp.concatenate([cond, null])

  def eps_fn(x, t_B):
    eps = apply(
      jnp.concatenate([x, x]), jnp.concatenate([t_B, t_B]), cond_2BxD, method=Denoiser.denoise
    )
    return diffusion.classifier_free_guidance(eps[:b], eps[b:], guidance_scale)

  shape = (b,) + tuple(image_shape)
  if sampler == 'ddim':
    return diffusion.ddim_sample(eps_fn, sched, shape, rng, num_steps=num_steps)
  if sampler == 'ddpm':
    return diffusion.ddpm_sample(eps_fn, sched, shape, rng)
  raise ValueError(f"unknown sampler {sampler!r}: use 'ddim' or 'ddpm'")


def grid_png(images_RxCxHxWxC: np.ndarray, scale: int = 2) -> bytes:
  """uint8 images as an R x C grid PNG (2-pixel white gaps, upscaled `scale`x)."""
  import io  # pylint: disable=g-import-not-at-top

  from PIL import Image  # pylint: disable=g-import-not-at-top

  r, c, h, w, ch = images_RxCxHxWxC.shape
  grid = np.full((r * (h + 2) + 2, c * (w + 2) + 2, ch), 255, np.uint8)
  for i in range(r):
    for j in range(c):
      grid[2 + i * (h + 2) : 2 + i * (h + 2) + h, 2 + j * (w + 2) : 2 + j * (w + 2) + w] = (
        images_RxCxHxWxC[i, j]
      )
  grid = np.repeat(np.repeat(grid, scale, 0), scale, 1)
  out = io.BytesIO()
  Image.fromarray(grid[..., 0] if ch == 1 else grid).save(out, format='PNG')
  return out.getvalue()


class PromptSampler:
  """Compiled prompt-conditioned sampling (one compile per batch size).

  Args:
    model: the Denoiser.
    sched: its noise schedule.
    tokens_KxL: int32 token ids of the K prompts.
    image_shape: (H, W, C).
    sampler, num_steps, guidance_scale: see `sample`.
  """

  def __init__(
    self,
    model: Denoiser,
    sched: diffusion.Schedule,
    tokens_KxL: np.ndarray,
    image_shape: tuple[int, int, int],
    *,
    sampler: str,
    num_steps: int,
    guidance_scale: float,
  ):
    self.tokens = np.asarray(tokens_KxL)
    self.sched = sched
    self._fn = jax.jit(
      functools.partial(
        sample,
        model,
        image_shape=image_shape,
        sampler=sampler,
        num_steps=num_steps,
        guidance_scale=guidance_scale,
      )
    )

  def __call__(self, params: Any, classes_B: np.ndarray, rng: jax.Array) -> np.ndarray:
    """uint8 samples (B, H, W, C) for the prompts of `classes_B`."""
    x = self._fn(params, self.sched, jnp.asarray(self.tokens[classes_B]), rng)
    return np.asarray(jax.device_get(to_uint8(x)))

  def many(self, params: Any, classes_N: np.ndarray, rng: jax.Array, batch: int) -> np.ndarray:
    """uint8 samples (N, H, W, C), `batch` at a time (the last batch padded)."""
    out = []
    for i in range(0, len(classes_N), batch):
      chunk = classes_N[i : i + batch]
      padded = np.concatenate([chunk, np.zeros(batch - len(chunk), int)])
      out.append(self(params, padded, jax.random.fold_in(rng, i))[: len(chunk)])
    return np.concatenate(out)

  def grid(self, params: Any, per_prompt: int, rng: jax.Array) -> bytes:
    """A PNG with one row per prompt, `per_prompt` samples each."""
    k = len(self.tokens)
    images = self(params, np.repeat(np.arange(k), per_prompt), rng)
    return grid_png(images.reshape((k, per_prompt) + images.shape[1:]))
