"""Multi-head attention on `jax.nn.dot_product_attention` (fused kernels where the
backend has them: cuDNN flash attention on GPU, XLA's elsewhere).

Dimension key: B batch, T query length, S key/value length, D model width,
N heads, H head width (D = N * H).

Masks are boolean and broadcast to (B, N, T, S): True where a query may attend.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research import platform_policy
from research.models import positions

# 'auto': cuDNN's fused attention in programs lowered for cuda where it applies
# (`cudnn_allows`, `platform_policy.on_gpu`), XLA's elsewhere; 'xla': XLA's always;
# 'cudnn': cuDNN's always (fails where it cannot be traced or does not apply).
IMPLEMENTATIONS = ('auto', 'xla', 'cudnn')
# cuDNN's flash attention: half-precision inputs, head width a multiple of 8, at most 128.
_CUDNN_DTYPES = (jnp.bfloat16, jnp.float16)
_CUDNN_MAX_HEAD_DIM = 128


def padding_mask(valid_BxS: jax.Array) -> jax.Array:
  """Key padding mask (B, 1, 1, S): every query may see the real keys only."""
  return valid_BxS[:, None, None, :].astype(bool)


def causal_mask(length: int) -> jax.Array:
  """(1, 1, T, T) lower-triangular mask: position t sees positions <= t."""
  return jnp.tril(jnp.ones((length, length), bool))[None, None]


def attention_weights(
  q_BxTxNxH: jax.Array, k_BxSxNxH: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
  """The softmax weights (B, N, T, S), float32, that `dot_product_attention` applies.

  A reference for tests and inspection; the model never materialises them itself.
  Masked logits get the same large negative value as in JAX's XLA path, so a row
  with no visible key is uniform rather than NaN.
  """
  scale = q_BxTxNxH.shape[-1] ** -0.5
  logits = (
    jnp.einsum('btnh,bsnh->bnts', q_BxTxNxH, k_BxSxNxH, preferred_element_type=jnp.float32) * scale
  )
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min * 0.7)
  return jax.nn.softmax(logits, axis=-1)


def cudnn_allows(q_BxTxNxH: jax.Array, k_BxSxNxH: jax.Array) -> bool:
  """Whether cuDNN's flash attention takes these queries and keys.

  It needs bfloat16 or float16 inputs (keys alike) and a head width H that is a
  multiple of 8 and at most 128.
  """
  h = q_BxTxNxH.shape[-1]
  return (
    q_BxTxNxH.dtype in _CUDNN_DTYPES
    and k_BxSxNxH.dtype == q_BxTxNxH.dtype
    and h % 8 == 0
    and h <= _CUDNN_MAX_HEAD_DIM
  )


def _cudnn_attention(q, k, v, mask):
  """cuDNN's attention. Its mask is a full (., ., T, S) bias, whose gradient needs even
  T and S: an odd length gets one padding position, a hidden key or a dropped query."""
  t, s = q.shape[1], k.shape[1]
  pad_t, pad_s = t % 2, s % 2
  if mask is None and pad_s:
    mask = jnp.ones((1, 1, t, s), bool)
  if mask is not None:
    mask = jnp.broadcast_to(mask, mask.shape[:2] + (t, s))
    mask = jnp.pad(mask, ((0, 0), (0, 0), (0, pad_t), (0, pad_s)))
    if pad_t:  # The padding query sees the first key: no row without a visible key.
      mask = mask.at[:, :, t:, 0].set(True)
  pad = lambda x, n: jnp.pad(x, ((0, 0), (0, n), (0, 0), (0, 0))) if n else x
  y = jax.nn.dot_product_attention(
    pad(q, pad_t), pad(k, pad_s), pad(v, pad_s), mask=mask, implementation='cudnn'
  )
  return y[:, :t]


def _xla_attention(q, k, v, mask):
  return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation='xla')


def dot_product_attention(
  q_BxTxNxH: jax.Array,
  k_BxSxNxH: jax.Array,
  v_BxSxNxH: jax.Array,
  mask: jax.Array | None = None,
  *,
  implementation: str = 'xla',
) -> jax.Array:
  """`jax.nn.dot_product_attention` (B, T, N, H) on the kernel `implementation` names.

  Args:
    q_BxTxNxH: queries; keys and values (B, S, N, H) have the same dtype.
    k_BxSxNxH: keys.
    v_BxSxNxH: values.
    mask: boolean, broadcastable to (B, N, T, S); True where a query may attend.
    implementation: one of `IMPLEMENTATIONS`. 'auto' is cuDNN's in programs lowered
      for cuda when `cudnn_allows` the inputs and this process has cuDNN
      (`platform_policy.cudnn_attention_available`), XLA's otherwise and on every
      other platform.

  Returns:
    (B, T, N, H) in the inputs' dtype.
  """
  args = (q_BxTxNxH, k_BxSxNxH, v_BxSxNxH, mask)
  if implementation == 'cudnn':
    return _cudnn_attention(*args)
  if implementation == 'auto':
    if cudnn_allows(q_BxTxNxH, k_BxSxNxH) and platform_policy.cudnn_attention_available():
      return platform_policy.on_gpu(_cudnn_attention, _xla_attention, *args)
    return _xla_attention(*args)
  if implementation != 'xla':
    raise ValueError(f'unknown attention {implementation!r}: use one of {IMPLEMENTATIONS}')
  return _xla_attention(*args)


class MultiHeadAttention(nn.Module):
  """Projections q, k, v (D -> N x H) and out (N x H -> D), all with biases.

  Public methods share the parameters: `__call__` for whole sequences, `kv` and
  `attend` so that decoding can cache keys and values.

  Attributes:
    features: model width D.
    num_heads: N; must divide D.
    dtype: compute dtype (parameters float32; softmax runs in float32).
    implementation: attention kernel, one of `IMPLEMENTATIONS`.
  """

  features: int
  num_heads: int
  dtype: Any = jnp.float32
  implementation: str = 'xla'

  def setup(self):
    head_dim = self.features // self.num_heads
    init = nn.initializers.xavier_uniform()
    proj = lambda: nn.DenseGeneral((self.num_heads, head_dim), dtype=self.dtype, kernel_init=init)
    self.query = proj()
    self.key = proj()
    self.value = proj()
    self.out = nn.DenseGeneral(self.features, axis=(-2, -1), dtype=self.dtype, kernel_init=init)

  def kv(
    self, x_BxSxD: jax.Array, rotary_positions: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """Keys and values (B, S, N, H) of `x_BxSxD`, in the compute dtype; keys
    rotated to int positions (B or 1, S) if `rotary_positions` is given."""
    k = self.key(x_BxSxD)
    if rotary_positions is not None:
      k = positions.apply_rotary(k, rotary_positions)
    return k, self.value(x_BxSxD)

  def attend(
    self,
    x_BxTxD: jax.Array,
    k_BxSxNxH: jax.Array,
    v_BxSxNxH: jax.Array,
    mask: jax.Array | None = None,
    rotary_positions: jax.Array | None = None,
  ) -> jax.Array:
    """Queries from `x_BxTxD` attend to the given keys/values; returns (B, T, D).
    Queries are rotated to int positions (B or 1, T) if `rotary_positions` is given."""
    q = self.query(x_BxTxD)
    if rotary_positions is not None:
      q = positions.apply_rotary(q, rotary_positions)
    y_BxTxNxH = dot_product_attention(
      q,
      k_BxSxNxH.astype(q.dtype),
      v_BxSxNxH.astype(q.dtype),
      mask,
      implementation=self.implementation,
    )
    return self.out(y_BxTxNxH)

  def __call__(
    self,
    x_BxTxD: jax.Array,
    x_BxSxD: jax.Array,
    mask: jax.Array | None = None,
    rotary_positions: jax.Array | None = None,
  ) -> jax.Array:
    """Attention of the T queries of `x_BxTxD` over the S positions of `x_BxSxD`.
    `rotary_positions` (B or 1, T) rotates queries and keys: self-attention only."""
    k, v = self.kv(x_BxSxD, rotary_positions)
    return self.attend(x_BxTxD, k, v, mask, rotary_positions)
