"""A small prompt encoder: words -> transformer encoder -> one vector.

Dimension key: B batch, L prompt length in tokens, D width, V vocabulary.

Prompts are split into lower-case words and each word is looked up in a
vocabulary built from the prompts the model is trained on (ids from 3; 0 pads,
1 ends every prompt, 2 stands for a word outside the vocabulary). The encoder
layers are those of `research.models.transformer`; the output is the mean of
the words' final (layer-normed) vectors.

Why words and not characters: prompts of one template ("a handwritten seven",
"a handwritten three") share most of their characters, so a character encoder's
pooled vectors start almost parallel (cosine 0.98-0.999 between the ten digit
prompts at initialisation, for mean, max or end-token pooling) and a denoiser
trained on them ignores the prompt: after 300 steps the loss with true prompts
was 0.0001 below the loss with shuffled prompts, against 0.0015 for distinct
word vectors. A word vocabulary gives each digit word its own embedding.
"""

import dataclasses
import re
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from research.models import transformer

PAD, END, UNKNOWN = 0, 1, 2
NUM_SPECIAL_TOKENS = 3


def split_words(prompt: str) -> list[str]:
  """Lower-case words (runs of letters, digits or apostrophes) of a prompt."""
  return re.findall(r"[a-z0-9']+", prompt.lower())


def build_vocabulary(prompts: Sequence[str]) -> tuple[str, ...]:
  """The sorted distinct words of `prompts`; word i gets token id i + 3."""
  return tuple(sorted({w for p in prompts for w in split_words(p)}))


def vocab_size(vocabulary: Sequence[str]) -> int:
  """Number of token ids: the words plus padding, end and unknown."""
  return len(vocabulary) + NUM_SPECIAL_TOKENS


def tokenize(prompts: Sequence[str], vocabulary: Sequence[str], max_length: int
             ) -> np.ndarray:
  """Word ids of each prompt followed by the end token, zero padded.

  Words missing from `vocabulary` become UNKNOWN.

  Returns:
    int32 (len(prompts), max_length).

  Raises:
    ValueError: for a prompt of more than max_length - 1 words (one place is the
      end token's) or with no word at all.
  """
  index = {w: i + NUM_SPECIAL_TOKENS for i, w in enumerate(vocabulary)}
  out = np.zeros((len(prompts), max_length), np.int32)
  for i, p in enumerate(prompts):
    words = split_words(p)
    if not words:
      raise ValueError(f'prompt {p!r} has no words')
    if len(words) + 1 > max_length:
      raise ValueError(f'prompt {p!r} has {len(words)} words; at most {max_length - 1} '
                       f'fit in max_length {max_length} (which includes the end token)')
    out[i, :len(words) + 1] = [index.get(w, UNKNOWN) for w in words] + [END]
  return out


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
  """Hyperparameters of the prompt encoder.

  Attributes:
    vocab_size: token ids, `vocab_size(vocabulary)`.
    max_length: longest tokenised prompt L (words plus the end token).
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
        input_vocab_size=self.vocab_size, output_vocab_size=self.vocab_size,
        emb_dim=self.emb_dim, num_heads=self.num_heads, num_encoder_layers=self.num_layers,
        num_decoder_layers=0, mlp_dim=self.mlp_dim, max_input_length=self.max_length,
        dropout_rate=self.dropout_rate, dtype=self.dtype)


class TextEncoder(nn.Module):
  """Encodes (B, L) token ids (from `tokenize`) into (B, D) float32 vectors."""
  config: TextEncoderConfig

  @nn.compact
  def __call__(self, tokens_BxL: jax.Array, *, train: bool) -> jax.Array:
    cfg = self.config
    tcfg = cfg.transformer_config()
    attend_BxL = tokens_BxL != PAD
    # Unit-variance word vectors, as large as the sinusoidal positions.
    words = nn.Embed(cfg.vocab_size, cfg.emb_dim, embedding_init=nn.initializers.normal(1.0),
                     name='embed')(tokens_BxL)
    x = transformer.AddPositions(cfg.max_length, name='positions')(words.astype(cfg.dtype))
    x = nn.Dropout(cfg.dropout_rate, deterministic=not train)(x)
    mask = attend_BxL[:, None, None, :]
    for i in range(cfg.num_layers):
      x = transformer.EncoderLayer(tcfg, name=f'layer{i}')(x, mask, train=train)
    x = nn.LayerNorm(dtype=cfg.dtype, name='norm')(x).astype(jnp.float32)
    w_BxL = (attend_BxL & (tokens_BxL != END)).astype(jnp.float32)
    mean = lambda v: (v * w_BxL[..., None]).sum(1) / jnp.maximum(w_BxL.sum(1, keepdims=True), 1.0)
    # The bag of word vectors bypasses the layers, so prompts stay distinct while
    # the layers learn (without it their pooled outputs drifted to cosine 0.98).
    return mean(x) + mean(words.astype(jnp.float32))
