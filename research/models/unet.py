"""A small U-Net noise predictor for DDPM, conditioned on a time step and a vector.

Dimension key: B batch, H height, W width, C channels, E time/conditioning
embedding width (4 x the first level's width), D conditioning-vector width,
N attention heads, T pixels at one resolution (H W).

Layout (widths (32, 64, 64) shown): a 3x3 input convolution, then per level
`num_res_blocks` residual blocks (group norm, SiLU, 3x3 conv, + time embedding,
group norm, SiLU, dropout, 3x3 conv) whose outputs are kept as skips, and a
downsampling between levels; a middle of residual block, self-attention and
residual block; the mirror image upwards, each block taking the concatenated
skip, with nearest-neighbour upsampling; group norm, SiLU and a 3x3 output
convolution. Self-attention follows every block at the resolutions listed in
`attention_resolutions`.

Speed on XLA:CPU: the 3x3 convolutions are XLA's own on every platform
(`layers.Conv3x3`); im2col matmuls are slower in this network's train step
(`python -m benchmarks.conv_lowering_ab --model=unet`). Downsampling is a
space-to-depth reshape and a 1x1 projection (a matmul).
"""

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models import layers


@dataclasses.dataclass(frozen=True)
class UNetConfig:
  """Hyperparameters of the U-Net.

  Attributes:
    out_channels: channels of the predicted noise (the image's channels).
    widths: channels per resolution level; the image side halves between levels
      and must be divisible by 2 ** (len(widths) - 1).
    num_res_blocks: residual blocks per level on the way down (one more up).
    attention_resolutions: image sides (e.g. 7) at which blocks add self-attention;
      the middle always attends.
    num_heads: attention heads (must divide the widths it is used at).
    num_groups: group-norm groups (must divide every width).
    dropout_rate: dropout inside residual blocks (training only).
    dtype: compute dtype; parameters stay float32 and the output is float32.
  """

  out_channels: int = 1
  widths: tuple[int, ...] = (32, 64, 64)
  num_res_blocks: int = 1
  attention_resolutions: tuple[int, ...] = (7, 8)
  num_heads: int = 4
  num_groups: int = 8
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  def __post_init__(self):
    if not self.widths or min(self.widths) < 1:
      raise ValueError(f'widths must be positive, got {self.widths}')
    for w in self.widths:
      if w % self.num_groups or w % self.num_heads:
        raise ValueError(
          f'every width must be divisible by num_groups '
          f'({self.num_groups}) and num_heads ({self.num_heads}), got {w}'
        )
    if self.num_res_blocks < 1:
      raise ValueError(f'num_res_blocks must be >= 1, got {self.num_res_blocks}')


def check_image_size(cfg: UNetConfig, size: int) -> None:
  """Raises ValueError unless `size` halves cleanly at every level."""
  factor = 2 ** (len(cfg.widths) - 1)
  if size < factor or size % factor:
    raise ValueError(
      f'image size must be a positive multiple of {factor} for {len(cfg.widths)} levels, got {size}'
    )


def timestep_embedding(t_B: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
  """Sinusoidal embedding of (possibly fractional) time steps: (B,) -> (B, dim) f32.

  Cosines in the first half, sines in the second, frequencies from 1 down to
  1 / max_period (as in the DDPM and Transformer papers).
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  angles_BxH = t_B.astype(jnp.float32)[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.cos(angles_BxH), jnp.sin(angles_BxH)], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim - 2 * half)))


class ResBlock(nn.Module):
  """GN-SiLU-conv, + projected embedding, GN-SiLU-dropout-conv, + (projected) input."""

  features: int
  config: UNetConfig

  @nn.compact
  def __call__(self, x_BxHxWxC, emb_BxE, *, train: bool):
    cfg = self.config
    gn = lambda name: nn.GroupNorm(cfg.num_groups, dtype=cfg.dtype, name=name)
    h = layers.Conv3x3(self.features, cfg.dtype, name='conv1')(nn.silu(gn('norm1')(x_BxHxWxC)))
    h = h + nn.Dense(self.features, dtype=cfg.dtype, name='emb')(nn.silu(emb_BxE))[:, None, None, :]
    h = nn.silu(gn('norm2')(h))
    h = nn.Dropout(cfg.dropout_rate, deterministic=not train)(h)
    # A zero-initialised last conv makes every block start as the identity.
    h = layers.Conv3x3(self.features, cfg.dtype, nn.initializers.zeros_init(), name='conv2')(h)
    skip = x_BxHxWxC
    if skip.shape[-1] != self.features:
      skip = nn.Dense(self.features, dtype=cfg.dtype, name='skip')(skip)
    return skip + h


class SelfAttention(nn.Module):
  """Pre-norm multi-head self-attention over the pixels, with a residual."""

  config: UNetConfig

  @nn.compact
  def __call__(self, x_BxHxWxC):
    cfg = self.config
    b, hh, ww, c = x_BxHxWxC.shape
    h_BxTxC = nn.GroupNorm(cfg.num_groups, dtype=cfg.dtype, name='norm')(x_BxHxWxC).reshape(
      b, hh * ww, c
    )
    proj = lambda name: nn.DenseGeneral(
      (cfg.num_heads, c // cfg.num_heads), dtype=cfg.dtype, name=name
    )
    q, k, v = proj('query')(h_BxTxC), proj('key')(h_BxTxC), proj('value')(h_BxTxC)
    y_BxTxNxH = jax.nn.dot_product_attention(q, k, v)
    y_BxTxC = nn.DenseGeneral(
      c, axis=(-2, -1), dtype=cfg.dtype, kernel_init=nn.initializers.zeros_init(), name='out'
    )(y_BxTxNxH)
    return x_BxHxWxC + y_BxTxC.reshape(b, hh, ww, c)


def space_to_depth(x_BxHxWxC: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, H/2, W/2, 4C): each 2x2 block becomes one pixel."""
  b, h, w, c = x_BxHxWxC.shape
  x = x_BxHxWxC.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def upsample_nearest(x_BxHxWxC: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, 2H, 2W, C) by repeating every pixel 2x2."""
  return jnp.repeat(jnp.repeat(x_BxHxWxC, 2, axis=1), 2, axis=2)


class UNet(nn.Module):
  """Predicts the noise in `x_t` given the time step and a conditioning vector."""

  config: UNetConfig

  def _block(self, features, h, emb, train, name):
    cfg = self.config
    h = ResBlock(features, cfg, name=name)(h, emb, train=train)
    if h.shape[1] in cfg.attention_resolutions:
      h = SelfAttention(cfg, name=name + '_attention')(h)
    return h

  @nn.compact
  def __call__(
    self, x_BxHxWxC: jax.Array, t_B: jax.Array, cond_BxD: jax.Array | None, *, train: bool
  ) -> jax.Array:
    """Predicts the noise.

    Args:
      x_BxHxWxC: noisy images x_t (any float dtype).
      t_B: time steps in [0, T) (int or float).
      cond_BxD: conditioning vectors (e.g. an encoded prompt), or None.
      train: enables dropout (needs a 'dropout' PRNG stream).

    Returns:
      float32 predicted noise of shape (B, H, W, out_channels).
    """
    cfg = self.config
    e = 4 * cfg.widths[0]
    emb = timestep_embedding(t_B, cfg.widths[0])
    emb = nn.Dense(e, dtype=cfg.dtype, name='time_dense1')(emb)
    emb_BxE = nn.Dense(e, dtype=cfg.dtype, name='time_dense2')(nn.silu(emb))
    if cond_BxD is not None:
      emb_BxE = emb_BxE + nn.Dense(e, dtype=cfg.dtype, name='cond_dense')(cond_BxD)

    h = layers.Conv3x3(cfg.widths[0], cfg.dtype, name='conv_in')(x_BxHxWxC.astype(cfg.dtype))
    skips = []
    for level, width in enumerate(cfg.widths):
      for i in range(cfg.num_res_blocks):
        h = self._block(width, h, emb_BxE, train, f'down{level}_{i}')
      skips.append(h)
      if level < len(cfg.widths) - 1:
        h = nn.Dense(cfg.widths[level + 1], dtype=cfg.dtype, name=f'downsample{level}')(
          space_to_depth(h)
        )

    h = ResBlock(cfg.widths[-1], cfg, name='mid1')(h, emb_BxE, train=train)
    h = SelfAttention(cfg, name='mid_attention')(h)
    h = ResBlock(cfg.widths[-1], cfg, name='mid2')(h, emb_BxE, train=train)

    for level in reversed(range(len(cfg.widths))):
      if level < len(cfg.widths) - 1:
        # Project at the low resolution, then repeat: a 1x1 conv at a quarter the cost.
        h = upsample_nearest(
          nn.Dense(cfg.widths[level], dtype=cfg.dtype, name=f'upsample{level}')(h)
        )
      h = jnp.concatenate([h, skips.pop()], axis=-1)
      for i in range(cfg.num_res_blocks):
        h = self._block(cfg.widths[level], h, emb_BxE, train, f'up{level}_{i}')
    assert not skips  # Every level's skip is consumed exactly once.

    h = nn.silu(nn.GroupNorm(cfg.num_groups, dtype=cfg.dtype, name='norm_out')(h))
    out = layers.Conv3x3(
      cfg.out_channels, cfg.dtype, nn.initializers.zeros_init(), name='conv_out'
    )(h)
    return out.astype(jnp.float32)
