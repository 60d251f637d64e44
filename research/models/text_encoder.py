"""A small prompt encoder: words -> transformer encoder -> one vector.

Dimension key: B batch, L prompt length in tokens, D width, V vocabulary.

Prompts are tokenized by `research.data.tokenizers.WordTokenizer`: lower-case
words looked up in a vocabulary built from the prompts the model is trained on,
then EOS_ID, then PAD_ID (unknown words are UNK_ID). The encoder
layers are those of `research.models.transformer`; the output is the mean of
the words' final (layer-normed) vectors.

Why words and not characters: prompts of one template ("a handwritten seven",
"a handwritten three") share most of their characters, so a character encoder's
pooled vectors start almost parallel and a denoiser trained on them learns to
ignore the prompt. A word vocabulary gives each digit word its own embedding.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models import special_tokens
from research.models import transformer


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
  """Hyperparameters of the prompt encoder.

  Attributes:
    vocab_size: token ids, `WordTokenizer.size`.
    max_length: longest tokenised prompt L (words plus EOS).
    emb_dim: width D (also the output vector's width).
    num_heads: attention heads (must divide D).
    num_layers: transformer encoder layers.
    mlp_dim: feed-forward width.
    dropout_rate: dropout inside the encoder (training only).
    dtype: compute dtype; parameters float32; the output is float32.
  """

  vocab_size: int = 16
  max_length: int = 8
  emb_dim: int = 64
  num_heads: int = 4
  num_layers: int = 2
  mlp_dim: int = 128
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  def transformer_config(self) -> transformer.TransformerConfig:
    return transformer.TransformerConfig(
      input_vocab_size=self.vocab_size,
      output_vocab_size=self.vocab_size,
      emb_dim=self.emb_dim,
      num_heads=self.num_heads,
      num_encoder_layers=self.num_layers,
      num_decoder_layers=0,
      mlp_dim=self.mlp_dim,
      max_input_length=self.max_length,
      dropout_rate=self.dropout_rate,
      dtype=self.dtype,
    )


class TextEncoder(nn.Module):
  """Encodes int32 (B, L) token ids (from `WordTokenizer.encode_batch`) into (B, D)
  float32 vectors: PAD_ID positions are ignored, EOS_ID is attended to but left
  out of the pooled mean."""

  config: TextEncoderConfig

  @nn.compact
  def __call__(self, tokens_BxL: jax.Array, *, train: bool) -> jax.Array:
    cfg = self.config
    tcfg = cfg.transformer_config()
    attend_BxL = tokens_BxL != special_tokens.PAD_ID
    # Unit-variance word vectors, as large as the sinusoidal positions.
    words = nn.Embed(
      cfg.vocab_size, cfg.emb_dim, embedding_init=nn.initializers.normal(1.0), name='embed'
    )(tokens_BxL)
    x = transformer.AddPositions(cfg.max_length, name='positions')(words.astype(cfg.dtype))
    x = nn.Dropout(cfg.dropout_rate, deterministic=not train)(x)
    mask = attend_BxL[:, None, None, :]
    for i in range(cfg.num_layers):
      x = transformer.EncoderLayer(tcfg, name=f'layer{i}')(x, mask, train=train)
    x = nn.LayerNorm(dtype=cfg.dtype, name='norm')(x).astype(jnp.float32)
    w_BxL = (attend_BxL & (tokens_BxL != special_tokens.EOS_ID)).astype(jnp.float32)
    mean = lambda v: (v * w_BxL[..., None]).sum(1) / jnp.maximum(w_BxL.sum(1, keepdims=True), 1.0)
    # The bag of word vectors bypasses the layers, so prompts stay distinct while
    # the layers learn (without it their pooled outputs drifted to cosine 0.98).
    return mean(x) + mean(words.astype(jnp.float32))
