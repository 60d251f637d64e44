"""On-device image preprocessing and augmentation, vectorised over the batch.

Dimension key: B batch, H height, W width, C channels.

Everything here is pure and jit-friendly; each example draws its own random
parameters from the key it is given.
"""

import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy import ndimage


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
  """How uint8 images become model inputs.

  Attributes:
    mean: per-channel mean subtracted after scaling to [0, 1].
    std: per-channel standard deviation divided by.
    channels: channels the model expects; 1-channel images are repeated to it.
    max_rotation_deg: training rotations are uniform in +-this many degrees.
    brightness: training brightness factor is uniform in [1 - b, 1 + b].
    contrast: training contrast factor is uniform in [1 - c, 1 + c].
  """

  mean: tuple[float, ...] = (0.1307,)
  std: tuple[float, ...] = (0.3081,)
  channels: int = 3
  max_rotation_deg: float = 0.0
  brightness: float = 0.0
  contrast: float = 0.0


def rotate(images_BxHxWxC: jnp.ndarray, angles_B: jnp.ndarray) -> jnp.ndarray:
  """Rotates each image about its centre by its angle (radians), bilinear, zero fill.

  An angle of zero returns the image unchanged.

  Returns:
    float array of the input's shape.
  """
  _, h, w, _ = images_BxHxWxC.shape
  yy, xx = jnp.meshgrid(
    jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing='ij'
  )
  cy, cx = (h - 1) / 2, (w - 1) / 2

  def one(image_HxWxC, angle):
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    # Output pixel p samples the input at R(-angle) (p - centre) + centre.
    src_y = cos * (yy - cy) - sin * (xx - cx) + cy
    src_x = sin * (yy - cy) + cos * (xx - cx) + cx
    sample = lambda ch: ndimage.map_coordinates(
      ch, [src_y, src_x], order=1, mode='constant', cval=0.0
    )
    return jax.vmap(sample, in_axes=-1, out_axes=-1)(image_HxWxC)

  return jax.vmap(one)(images_BxHxWxC.astype(jnp.float32), angles_B)


def jitter_brightness_contrast(
  images_BxHxWxC: jnp.ndarray, brightness_B: jnp.ndarray, contrast_B: jnp.ndarray
) -> jnp.ndarray:
  """Scales brightness, then blends with each image's mean gray level; clips to [0, 1].

  Args:
    images_BxHxWxC: float images in [0, 1].
    brightness_B: multiplicative brightness factors.
    contrast_B: contrast factors (1 keeps the image).

  Returns:
    float images in [0, 1], same shape.
  """
  x = jnp.clip(images_BxHxWxC * brightness_B[:, None, None, None], 0.0, 1.0)
  if x.shape[-1] == 3:
    gray = x @ jnp.array([0.299, 0.587, 0.114], x.dtype)
  else:
    gray = x[..., 0]
  mean_B = gray.mean(axis=(1, 2))
  c = contrast_B[:, None, None, None]
  return jnp.clip(c * x + (1.0 - c) * mean_B[:, None, None, None], 0.0, 1.0)


def augment(images_BxHxWxC: jnp.ndarray, rng: jax.Array, cfg: ImagePreprocessing) -> jnp.ndarray:
  """Random rotation and brightness/contrast jitter of float images in [0, 1].

  Returns:
    float32 images in [0, 1], same shape.
  """
  b = images_BxHxWxC.shape[0]
  k_rot, k_bri, k_con = jax.random.split(rng, 3)
  x = images_BxHxWxC
  if cfg.max_rotation_deg:
    limit = jnp.deg2rad(cfg.max_rotation_deg)
    x = rotate(x, jax.random.uniform(k_rot, (b,), minval=-limit, maxval=limit))
  if cfg.brightness or cfg.contrast:
    factor = lambda k, r: jax.random.uniform(k, (b,), minval=1 - r, maxval=1 + r)
    x = jitter_brightness_contrast(x, factor(k_bri, cfg.brightness), factor(k_con, cfg.contrast))
  return x


def preprocess(
  images_BxHxWxC: jnp.ndarray, cfg: ImagePreprocessing, rng: jax.Array | None = None
) -> jnp.ndarray:
  """uint8 images -> normalised float32 model inputs, augmented when `rng` is given.

  Args:
    images_BxHxWxC: uint8 images, C = 1 or `cfg.channels`.
    cfg: normalisation and augmentation settings.
    rng: PRNG key for augmentation; None for evaluation (no augmentation).

  Returns:
    float32 (B, H, W, cfg.channels).
  """
  x = images_BxHxWxC.astype(jnp.float32) / 255.0
  if rng is not None:
    x = augment(x, rng, cfg)
  x = (x - jnp.asarray(cfg.mean)) / jnp.asarray(cfg.std)
  if x.shape[-1] != cfg.channels:
    x = jnp.broadcast_to(x, x.shape[:-1] + (cfg.channels,))
  return x
