"""A small prompt encoder: characters -> transformer encoder -> one vector.

Dimension key: B batch, L prompt length in characters, D width, V vocabulary.

Prompts are tokenised per byte of printable ASCII (id = code - 31, so ' ' is 1
and '~' is 95; 0 is padding); the encoder layers are those of
`research.models.transformer`, and the output is the mean over real characters
after a final layer norm.
"""

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from research.models import transformer

VOCAB_SIZE = 96  # Padding plus the 95 printable ASCII characters.


def tokenize(prompts: Sequence[str], max_length: int) -> np.ndarray:
  """Character ids of each prompt, zero padded: int32 (len(prompts), max_length).

  Raises:
    ValueError: for a prompt longer than max_length or with a non-printable character.
  """
  out = np.zeros((len(prompts), max_length), np.int32)
  for i, p in enumerate(prompts):
    if len(p) > max_length:
      raise ValueError(f'prompt {p!r} is longer than {max_length} characters')
    codes = [ord(ch) - 31 for ch in p]
    if any(not 1 <= c < VOCAB_SIZE for c in codes):
      raise ValueError(f'prompt {p!r} has characters outside printable ASCII')
    out[i, :len(codes)] = codes
  return out


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
  """Hyperparameters of the prompt encoder.

  Attributes:
    max_length: longest prompt L in characters.
    emb_dim: width D (also the output vector's width).
    num_heads: attention heads (must divide D).
    num_layers: transformer encoder layers.
    mlp_dim: feed-forward width.
    dropout_rate: dropout inside the encoder (training only).
    dtype: compute dtype; parameters float32; the output is float32.
  """
  max_length: int = 32
  emb_dim: int = 64
  num_heads: int = 4
  num_layers: int = 2
  mlp_dim: int = 128
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  def transformer_config(self) -> transformer.TransformerConfig:
    return transformer.TransformerConfig(
        input_vocab_size=VOCAB_SIZE, output_vocab_size=VOCAB_SIZE,
        emb_dim=self.emb_dim, num_heads=self.num_heads, num_encoder_layers=self.num_layers,
        num_decoder_layers=0, mlp_dim=self.mlp_dim, max_input_length=self.max_length,
        dropout_rate=self.dropout_rate, dtype=self.dtype)


class TextEncoder(nn.Module):
  """Encodes (B, L) character ids into (B, D) float32 vectors."""
  config: TextEncoderConfig

  @nn.compact
  def __call__(self, tokens_BxL: jax.Array, *, train: bool) -> jax.Array:
    cfg = self.config
    tcfg = cfg.transformer_config()
    valid_BxL = tokens_BxL != 0
    x = nn.Embed(VOCAB_SIZE, cfg.emb_dim, name='embed')(tokens_BxL).astype(cfg.dtype)
    x = transformer.AddPositions(cfg.max_length, name='positions')(x)
    x = nn.Dropout(cfg.dropout_rate, deterministic=not train)(x)
    mask = valid_BxL[:, None, None, :]
    for i in range(cfg.num_layers):
      x = transformer.EncoderLayer(tcfg, name=f'layer{i}')(x, mask, train=train)
    x = nn.LayerNorm(dtype=cfg.dtype, name='norm')(x).astype(jnp.float32)
    w_BxL = valid_BxL.astype(jnp.float32)
    return (x * w_BxL[..., None]).sum(1) / jnp.maximum(w_BxL.sum(1, keepdims=True), 1.0)
