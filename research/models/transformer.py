"""Transformer encoder-decoder ("Attention is all you need") for seq2seq learning.

Dimension key: B batch, S source length, T target length, L cache length (the
maximal target length), D model width, F feed-forward width, N heads, H head
width, V vocabulary size.

Token id `pad_id` (0) is padding: source padding is masked out of every
attention, and target padding only ever follows the real tokens, so the causal
mask already hides it. Dropout acts on embeddings and on every residual branch.

Parameter arithmetic (biases everywhere except the tied output layer):
  attention   4 (D^2 + D)
  feed-forward  2 D F + F + D
  layer norm  2 D
  encoder layer = attention + feed-forward + 2 layer norms
  decoder layer = 2 attentions + feed-forward + 3 layer norms
  plus embeddings V_in D + V_out D (one V D if shared), output layer D V_out + V_out
  (none if tied), final layer norms 2 D per stack (pre-norm only) and learned
  positions (S_max + T_max) D if chosen.
"""

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from research.models import attention
from research.models import positions
from research.models import special_tokens

POSITIONAL = positions.POSITIONAL
# Rematerialisation of each encoder/decoder layer: what its backward pass may keep
# from the forward instead of recomputing ('none': everything, no remat).
REMAT_POLICIES = {
  'none': None,
  'full': jax.checkpoint_policies.nothing_saveable,  # Only the layer's inputs.
  'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # Matmul outputs.
}
Cache = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Hyperparameters of the encoder-decoder.

  Attributes:
    input_vocab_size: source vocabulary size.
    output_vocab_size: target vocabulary size.
    share_embeddings: one embedding table for source and target, tied to the output
      layer (needs equal vocabulary sizes).
    emb_dim: model width D.
    num_heads: attention heads N (must divide D).
    num_encoder_layers: encoder depth.
    num_decoder_layers: decoder depth.
    mlp_dim: feed-forward width F.
    max_input_length: longest source (learned positions, cache of cross-attention).
    max_target_length: longest target, EOS included (positions, decoding cache).
    dropout_rate: dropout on embeddings and residual branches (training only).
    pre_norm: layer norm before each sub-layer (True) or after the residual (False).
    positional: 'sinusoidal' (fixed) or 'learned' encodings added to the
      embeddings; 'rotary' rotates the queries and keys of self-attention instead;
      'randomized_sinusoidal' and 'randomized_rotary' use random ordered positions
      in training (see `research.models.positions`; a 'positions' PRNG stream).
    max_random_position: L, the positions of the randomized encodings lie in [0, L).
    pad_id: padding token id.
    dtype: compute dtype; parameters stay float32, logits are float32.
    attention: attention kernel, one of `attention.IMPLEMENTATIONS` ('auto': cuDNN's
      fused attention on cuda where it applies, XLA's elsewhere).
    remat: rematerialisation of each layer in training, a key of `REMAT_POLICIES`.
  """

  input_vocab_size: int
  output_vocab_size: int
  share_embeddings: bool = False
  emb_dim: int = 128
  num_heads: int = 4
  num_encoder_layers: int = 2
  num_decoder_layers: int = 2
  mlp_dim: int = 512
  max_input_length: int = 64
  max_target_length: int = 64
  dropout_rate: float = 0.1
  pre_norm: bool = True
  positional: str = 'sinusoidal'
  max_random_position: int = 2048
  pad_id: int = special_tokens.PAD_ID
  dtype: Any = jnp.float32
  attention: str = 'auto'
  remat: str = 'none'

  def __post_init__(self):
    if self.attention not in attention.IMPLEMENTATIONS:
      raise ValueError(
        f'unknown attention {self.attention!r}: use one of {attention.IMPLEMENTATIONS}'
      )
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f'unknown remat {self.remat!r}: use one of {tuple(REMAT_POLICIES)}')
    if self.emb_dim % self.num_heads:
      raise ValueError(
        f'emb_dim ({self.emb_dim}) must be divisible by num_heads ({self.num_heads})'
      )
    if self.positional not in POSITIONAL:
      raise ValueError(f'unknown positional {self.positional!r}: use one of {POSITIONAL}')
    if self.positional in positions.ROTARY and (self.emb_dim // self.num_heads) % 2:
      raise ValueError(
        f'positional {self.positional!r} needs an even head width, got '
        f'emb_dim / num_heads = {self.emb_dim // self.num_heads}'
      )
    longest = max(self.max_input_length, self.max_target_length)
    if self.positional in positions.RANDOMIZED and self.max_random_position < longest:
      raise ValueError(
        f'max_random_position ({self.max_random_position}) must be at least the longest '
        f'sequence ({longest}) for positional {self.positional!r}'
      )
    if self.share_embeddings and self.input_vocab_size != self.output_vocab_size:
      raise ValueError(
        'share_embeddings needs equal input and output vocabulary sizes, '
        f'got {self.input_vocab_size} and {self.output_vocab_size}'
      )
    if not 0 <= self.dropout_rate < 1:
      raise ValueError(f'dropout_rate must be in [0, 1), got {self.dropout_rate}')


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
  """(length, dim) float32: sines in the first half of the features, cosines in the
  second, wavelengths from 2 pi to 10^4 2 pi."""
  half = dim // 2
  inv_freq = np.exp(-math.log(10_000.0) * np.arange(half) / max(half - 1, 1))
  angles = np.arange(length)[:, None] * inv_freq[None, :]
  table = np.zeros((length, dim), np.float32)
  table[:, :half] = np.sin(angles)
  table[:, half : 2 * half] = np.cos(angles)
  return table


def num_params(cfg: TransformerConfig) -> int:
  """The parameter count from the layer arithmetic (see the module docstring)."""
  d, f = cfg.emb_dim, cfg.mlp_dim
  attn, mlp, norm = 4 * (d * d + d), 2 * d * f + f + d, 2 * d
  total = cfg.num_encoder_layers * (attn + mlp + 2 * norm)
  total += cfg.num_decoder_layers * (2 * attn + mlp + 3 * norm)
  if cfg.share_embeddings:
    total += cfg.input_vocab_size * d
  else:
    total += (cfg.input_vocab_size + cfg.output_vocab_size) * d
    total += d * cfg.output_vocab_size + cfg.output_vocab_size
  if cfg.pre_norm:
    total += 2 * norm
  if cfg.positional == 'learned':
    total += (cfg.max_input_length + cfg.max_target_length) * d
  return total


class AddPositions(nn.Module):
  """Adds position encodings for positions start, start + 1, ... to (B, T, D)."""

  max_length: int
  kind: str = 'sinusoidal'

  @nn.compact
  def __call__(self, x_BxTxD: jax.Array, start: jax.Array | int = 0) -> jax.Array:
    t, d = x_BxTxD.shape[1:]
    if self.kind == 'learned':
      table = self.param(
        'embedding', nn.initializers.normal(0.02), (self.max_length, d), jnp.float32
      )
    else:
      table = jnp.asarray(sinusoidal_positions(self.max_length, d))
    pos_TxD = jax.lax.dynamic_slice_in_dim(table, start, t)
    return x_BxTxD + pos_TxD[None].astype(x_BxTxD.dtype)


class FeedForward(nn.Module):
  """Position-wise D -> F -> ReLU -> D."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    cfg = self.config
    h = nn.relu(nn.Dense(cfg.mlp_dim, dtype=cfg.dtype, name='wi')(x_BxTxD))
    return nn.Dense(cfg.emb_dim, dtype=cfg.dtype, name='wo')(h)


def _call_layer(cfg, layer, *args, train, **kwargs):
  """`layer(*args, train=train, **kwargs)`, rematerialised under `cfg.remat`'s policy.

  `train` is closed over, not passed: it is a Python bool that `nn.remat` would trace.
  """
  call = lambda module, *a, **kw: module(*a, train=train, **kw)
  if cfg.remat != 'none':
    call = nn.remat(call, policy=REMAT_POLICIES[cfg.remat])
  return call(layer, *args, **kwargs)


def _sublayer(cfg, norm, dropout, fn, x, train):
  """Residual around `fn`, normalised before (pre-norm) or after (post-norm)."""
  if cfg.pre_norm:
    return x + dropout(fn(norm(x)), deterministic=not train)
  return norm(x + dropout(fn(x), deterministic=not train))


class EncoderLayer(nn.Module):
  """Self-attention and feed-forward sub-layers."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x_BxSxD, mask, *, train: bool, rotary_positions=None):
    cfg = self.config
    attn = attention.MultiHeadAttention(
      cfg.emb_dim, cfg.num_heads, cfg.dtype, cfg.attention, name='self_attention'
    )
    dropout = nn.Dropout(cfg.dropout_rate)
    ln = lambda name: nn.LayerNorm(dtype=cfg.dtype, name=name)
    self_attend = lambda h: attn(h, h, mask, rotary_positions)
    x = _sublayer(cfg, ln('norm_attention'), dropout, self_attend, x_BxSxD, train)
    return _sublayer(cfg, ln('norm_mlp'), dropout, FeedForward(cfg, name='mlp'), x, train)


class DecoderLayer(nn.Module):
  """Causal self-attention, cross-attention and feed-forward sub-layers.

  `__call__` runs whole target sequences (training, scoring); `step` runs one
  position against a key/value cache (decoding). Both use the same parameters.
  """

  config: TransformerConfig

  def setup(self):
    cfg = self.config
    mha = lambda: attention.MultiHeadAttention(cfg.emb_dim, cfg.num_heads, cfg.dtype, cfg.attention)
    self.self_attention = mha()
    self.cross_attention = mha()
    self.mlp = FeedForward(cfg)
    self.norm_self = nn.LayerNorm(dtype=cfg.dtype)
    self.norm_cross = nn.LayerNorm(dtype=cfg.dtype)
    self.norm_mlp = nn.LayerNorm(dtype=cfg.dtype)
    self.dropout = nn.Dropout(cfg.dropout_rate)

  def _layer(self, y, self_attend, cross_k, cross_v, src_mask, train):
    cfg = self.config
    y = _sublayer(cfg, self.norm_self, self.dropout, self_attend, y, train)
    y = _sublayer(
      cfg,
      self.norm_cross,
      self.dropout,
      lambda h: self.cross_attention.attend(h, cross_k, cross_v, src_mask),
      y,
      train,
    )
    return _sublayer(cfg, self.norm_mlp, self.dropout, self.mlp, y, train)

  def __call__(self, y_BxTxD, encoded_BxSxD, src_mask, *, train: bool, rotary_positions=None):
    mask = attention.causal_mask(y_BxTxD.shape[1])
    cross_k, cross_v = self.cross_attention.kv(encoded_BxSxD)
    self_attend = lambda h: self.self_attention(h, h, mask, rotary_positions)
    return self._layer(y_BxTxD, self_attend, cross_k, cross_v, src_mask, train)

  def cross_kv(self, encoded_BxSxD):
    return self.cross_attention.kv(encoded_BxSxD)

  def step(self, y_Bx1xD, cache: dict[str, jax.Array], src_mask, index, rotary_positions=None):
    """One decoding position `index`; returns (y_Bx1xD, updated cache). Cached
    keys are stored already rotated to their (B or 1, 1) `rotary_positions`."""
    new_cache = dict(cache)

    def self_attend(h_Bx1xD):
      k, v = self.self_attention.kv(h_Bx1xD, rotary_positions)
      for name, x in (('k', k), ('v', v)):
        new_cache[name] = jax.lax.dynamic_update_slice_in_dim(
          cache[name], x.astype(cache[name].dtype), index, axis=1
        )
      visible = jnp.arange(cache['k'].shape[1]) <= index
      return self.self_attention.attend(
        h_Bx1xD, new_cache['k'], new_cache['v'], visible[None, None, None, :], rotary_positions
      )

    y = self._layer(y_Bx1xD, self_attend, cache['cross_k'], cache['cross_v'], src_mask, train=False)
    return y, new_cache


class Transformer(nn.Module):
  """Encoder-decoder transformer.

  Methods (all share the parameters made by `__call__`):
    encode(src_BxS, train) -> encoded_BxSxD
    decode(encoded_BxSxD, src_BxS, tgt_in_BxT, train) -> logits_BxTxV (teacher forcing)
    init_cache(encoded_BxSxD, src_BxS) -> cache for `decode_step`
    decode_step(cache, token_B, index) -> (logits_BxV, cache)
  """

  config: TransformerConfig

  def setup(self):
    cfg = self.config
    embed = lambda v: nn.Embed(
      v, cfg.emb_dim, dtype=cfg.dtype, embedding_init=nn.initializers.normal(cfg.emb_dim**-0.5)
    )
    if cfg.share_embeddings:
      self.shared_embedding = embed(cfg.input_vocab_size)
    else:
      self.input_embedding = embed(cfg.input_vocab_size)
      self.output_embedding = embed(cfg.output_vocab_size)
      self.logits_dense = nn.Dense(cfg.output_vocab_size, dtype=cfg.dtype)
    self.input_positions = AddPositions(cfg.max_input_length, cfg.positional)
    self.target_positions = AddPositions(cfg.max_target_length, cfg.positional)
    self.encoder_layers = [EncoderLayer(cfg) for _ in range(cfg.num_encoder_layers)]
    self.decoder_layers = [DecoderLayer(cfg) for _ in range(cfg.num_decoder_layers)]
    if cfg.pre_norm:
      self.encoder_norm = nn.LayerNorm(dtype=cfg.dtype)
      self.decoder_norm = nn.LayerNorm(dtype=cfg.dtype)
    self.dropout = nn.Dropout(cfg.dropout_rate)

  def _positions(self, tokens_BxT, start, max_length, train):
    """int32 (B or 1, T) positions of the tokens for the computed encodings
    (random ordered ones in training when randomized), else None."""
    cfg = self.config
    if cfg.positional not in positions.COMPUTED:
      return None
    if train and cfg.positional in positions.RANDOMIZED:
      key = self.make_rng(positions.RNG_COLLECTION)
      return positions.random_ordered(key, tokens_BxT != cfg.pad_id, cfg.max_random_position)
    step = positions.stride(cfg.positional, cfg.max_random_position, max_length)
    return positions.deterministic(tokens_BxT.shape[1], start, step)

  def _embed(self, tokens, table, add_positions, start, train):
    """(embedded tokens (B, T, D), rotary positions (B or 1, T) or None)."""
    cfg = self.config
    x = table(tokens) * jnp.asarray(cfg.emb_dim**0.5, cfg.dtype)
    pos = self._positions(tokens, start, add_positions.max_length, train)
    if pos is None:
      x = add_positions(x, start)
    elif cfg.positional == 'randomized_sinusoidal':
      x = x + positions.sinusoidal(pos, cfg.emb_dim).astype(x.dtype)
    rotary = pos if cfg.positional in positions.ROTARY else None
    return self.dropout(x, deterministic=not train), rotary

  def _src_mask(self, src_BxS):
    return attention.padding_mask(src_BxS != self.config.pad_id)

  def _logits(self, y):
    if self.config.pre_norm:
      y = self.decoder_norm(y)
    if self.config.share_embeddings:
      return self.shared_embedding.attend(y).astype(jnp.float32)
    return self.logits_dense(y).astype(jnp.float32)

  def encode(self, src_BxS: jax.Array, *, train: bool = False) -> jax.Array:
    """Encodes int32 source tokens (B, S); returns (B, S, D) in the compute dtype."""
    table = self.shared_embedding if self.config.share_embeddings else self.input_embedding
    x, rotary = self._embed(src_BxS, table, self.input_positions, 0, train)
    mask = self._src_mask(src_BxS)
    for layer in self.encoder_layers:
      x = _call_layer(self.config, layer, x, mask, train=train, rotary_positions=rotary)
    return self.encoder_norm(x) if self.config.pre_norm else x

  def _target_table(self):
    cfg = self.config
    return self.shared_embedding if cfg.share_embeddings else self.output_embedding

  def decode(
    self,
    encoded_BxSxD: jax.Array,
    src_BxS: jax.Array,
    tgt_in_BxT: jax.Array,
    *,
    train: bool = False,
  ) -> jax.Array:
    """Teacher-forced decoder: float32 logits (B, T, V) for the next tokens."""
    y, rotary = self._embed(tgt_in_BxT, self._target_table(), self.target_positions, 0, train)
    mask = self._src_mask(src_BxS)
    for layer in self.decoder_layers:
      y = _call_layer(
        self.config, layer, y, encoded_BxSxD, mask, train=train, rotary_positions=rotary
      )
    return self._logits(y)

  def __call__(self, src_BxS: jax.Array, tgt_in_BxT: jax.Array, *, train: bool) -> jax.Array:
    """Logits (B, T, V) of the targets given the sources and shifted targets."""
    return self.decode(self.encode(src_BxS, train=train), src_BxS, tgt_in_BxT, train=train)

  def init_cache(self, encoded_BxSxD: jax.Array, src_BxS: jax.Array) -> Cache:
    """The decoding cache: the source padding mask (B, 1, 1, S) and per decoder
    layer empty self-attention keys/values (B, L, N, H) and the cross-attention
    keys/values of the encoding (B, S, N, H), computed once. Every leaf has the
    leading axis B, so beam search can reorder it."""
    cfg = self.config
    b = encoded_BxSxD.shape[0]
    shape = (b, cfg.max_target_length, cfg.num_heads, cfg.emb_dim // cfg.num_heads)
    layers = []
    for layer in self.decoder_layers:
      k, v = layer.cross_kv(encoded_BxSxD)
      layers.append(
        {
          'k': jnp.zeros(shape, cfg.dtype),
          'v': jnp.zeros(shape, cfg.dtype),
          'cross_k': k,
          'cross_v': v,
        }
      )
    return {'src_mask': self._src_mask(src_BxS), 'layers': layers}

  def decode_step(
    self, cache: Cache, token_B: jax.Array, index: jax.Array
  ) -> tuple[jax.Array, Cache]:
    """Feeds token_B at target position `index`; returns float32 logits (B, V) of
    the token at `index` + 1 and the cache with this position's keys/values."""
    table = self._target_table()
    y, rotary = self._embed(token_B[:, None], table, self.target_positions, index, False)
    layers = []
    for layer, layer_cache in zip(self.decoder_layers, cache['layers'], strict=True):
      y, layer_cache = layer.step(y, layer_cache, cache['src_mask'], index, rotary)
      layers.append(layer_cache)
    return self._logits(y)[:, 0], {'src_mask': cache['src_mask'], 'layers': layers}
