"""Prompt-conditioned DDPM as a task: loss function, guided sampling and sample grids.

Dimension key: B batch, H height, W width, C channels, L prompt length, D
conditioning width, K classes (one prompt per class).

Images enter as uint8 and are scaled to [-1, 1]. Each training example gets its
prompt's tokens from a prompt function: one fixed prompt per class
(`class_prompt_fn`) or a fresh draw from a grammar of templates, names and
measured attributes (`research.data.prompt_grammar`). In training a prompt is
replaced by a learned null embedding with probability `cond_drop_rate`, so the
same network also predicts the unconditional noise and classifier-free guidance
works at sampling time. The schedules and samplers are `research.generation.diffusion`.

The exponential moving average of the parameters that sampling uses is not kept
here: it lives in the optimiser state (`research.train.optimizers.with_parameter_ema`,
read back with `ema_params`), attached by the trainer family `research.families.ddpm`.
"""

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from research.data import prompt_grammar
from research.generation import diffusion
from research.models.denoiser import Denoiser

PromptFn = Callable[[jax.Array, dict, bool], jax.Array]


def class_prompts(dataset: str, class_names: Sequence[str]) -> list[str]:
  """One prompt per class: 'a handwritten seven' for MNIST digits, else 'a photo of a X'."""
  digits = dataset.startswith('mnist') and len(class_names) == 10
  template = 'a handwritten {attributes} {name}' if digits else 'a photo of a {attributes} {name}'
  names = prompt_grammar.class_names(dataset, class_names, numerals=False)
  return [prompt_grammar.fill(template, forms[0], ()) for forms in names]


def to_model_range(images_u8: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images_u8.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(x: jax.Array) -> jax.Array:
  """float [-1, 1] -> uint8 [0, 255] (clipped, rounded)."""
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def noise_loss(eps_pred: jax.Array, noise: jax.Array) -> jax.Array:
  """The simple DDPM loss per example: mean squared error of the noise.

  Args:
    eps_pred: predicted noise (B, H, W, C), any float dtype.
    noise: the noise that was added, same shape.

  Returns:
    float32 (B,) losses.
  """
  err = jnp.square(eps_pred.astype(jnp.float32) - noise.astype(jnp.float32))
  return err.reshape(err.shape[0], -1).mean(axis=1)


def class_prompt_fn(prompt_tokens_KxL: np.ndarray) -> PromptFn:
  """The prompt function of one fixed prompt per class: row `label` of the table."""
  table = jnp.asarray(prompt_tokens_KxL)
  return lambda rng, batch, train: table[batch['label']]


def make_loss_fn(
  model: Denoiser, sched: diffusion.Schedule, prompt_fn: PromptFn, cond_drop_rate: float
) -> Callable:
  """The noise-prediction loss (see `research.train.steps` for the contract).

  Batches hold 'image' uint8 (B, H, W, C), 'label' int32 (B,), 'mask', and what
  `prompt_fn` reads. Each example draws its time step uniformly from [0, T) and
  its noise; evaluation (rng None) uses a fixed key, so its loss is comparable
  between calls, and never drops prompts.

  Args:
    model: the Denoiser.
    sched: the noise schedule.
    prompt_fn: (rng, batch, train) -> int32 (B, L) prompt tokens of the batch.
    cond_drop_rate: share of training prompts replaced by the null embedding.

  Returns:
    loss_fn(params, batch, rng, train) -> ({'loss': (sum, count)}, {'loss': (B,)}).
  """

  def loss_fn(params, batch, rng, train):
    rng = jax.random.key(0) if rng is None else rng
    t_rng, noise_rng, drop_rng, dropout_rng, prompt_rng = jax.random.split(rng, 5)
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
      prompt_fn(prompt_rng, batch, train),
      drop_B,
      train=train,
      rngs={'dropout': dropout_rng},
    )
    losses_B = noise_loss(eps, noise)
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
    image_shape: (H, W, C).
    sampler, num_steps, guidance_scale: see `sample`.
  """

  def __init__(
    self,
    model: Denoiser,
    sched: diffusion.Schedule,
    image_shape: tuple[int, int, int],
    *,
    sampler: str,
    num_steps: int,
    guidance_scale: float,
  ):
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

  def __call__(self, params: Any, tokens_BxL: np.ndarray, rng: jax.Array) -> np.ndarray:
    """uint8 samples (B, H, W, C), one per tokenised prompt."""
    x = self._fn(params, self.sched, jnp.asarray(tokens_BxL), rng)
    return np.asarray(jax.device_get(to_uint8(x)))

  def many(self, params: Any, tokens_NxL: np.ndarray, rng: jax.Array, batch: int) -> np.ndarray:
    """uint8 samples (N, H, W, C), `batch` at a time (the last batch padded)."""
    tokens_NxL = np.asarray(tokens_NxL)
    out = []
    for i in range(0, len(tokens_NxL), batch):
      chunk = tokens_NxL[i : i + batch]
      padded = np.concatenate([chunk, np.repeat(chunk[:1], batch - len(chunk), 0)])
      out.append(self(params, padded, jax.random.fold_in(rng, i))[: len(chunk)])
    return np.concatenate(out)

  def grid(self, params: Any, tokens_RxL: np.ndarray, per_row: int, rng: jax.Array) -> bytes:
    """A PNG with one row per prompt, `per_row` samples each."""
    r = len(tokens_RxL)
    images = self(params, np.repeat(np.asarray(tokens_RxL), per_row, 0), rng)
    return grid_png(images.reshape((r, per_row) + images.shape[1:]))
