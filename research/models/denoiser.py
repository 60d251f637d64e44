"""A prompt-conditioned denoiser: text encoder + U-Net, for diffusion models.

Dimension key: B batch, H height, W width, C channels, L prompt length, D
conditioning width.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models import text_encoder
from research.models import unet


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
    self.null = self.param(
      'null_embedding', nn.initializers.normal(1.0), (self.text_config.emb_dim,), jnp.float32
    )
    self.unet = unet.UNet(self.unet_config)

  def encode(self, tokens_BxL: jax.Array, drop_B: jax.Array, *, train: bool = False) -> jax.Array:
    """(B, D) float32: the encoded prompt, or the null embedding where `drop_B`."""
    cond = self.text(tokens_BxL, train=train)
    return jnp.where(drop_B[:, None], self.null[None].astype(cond.dtype), cond)

  def denoise(
    self, x_BxHxWxC: jax.Array, t_B: jax.Array, cond_BxD: jax.Array, *, train: bool = False
  ) -> jax.Array:
    """Predicted noise, float32 (B, H, W, C)."""
    return self.unet(x_BxHxWxC, t_B, cond_BxD, train=train)

  def __call__(self, x_BxHxWxC, t_B, tokens_BxL, drop_B, *, train: bool):
    return self.denoise(x_BxHxWxC, t_B, self.encode(tokens_BxL, drop_B, train=train), train=train)
