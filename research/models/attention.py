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


class MultiHeadAttention(nn.Module):
  """Projections q, k, v (D -> N x H) and out (N x H -> D), all with biases.

  Public methods share the parameters: `__call__` for whole sequences, `kv` and
  `attend` so that decoding can cache keys and values.

  Attributes:
    features: model width D.
    num_heads: N; must divide D.
    dtype: compute dtype (parameters float32; softmax runs in float32).
  """

  features: int
  num_heads: int
  dtype: Any = jnp.float32

  def setup(self):
    head_dim = self.features // self.num_heads
    init = nn.initializers.xavier_uniform()
    proj = lambda: nn.DenseGeneral((self.num_heads, head_dim), dtype=self.dtype, kernel_init=init)
    self.query = proj()
    self.key = proj()
    self.value = proj()
    self.out = nn.DenseGeneral(self.features, axis=(-2, -1), dtype=self.dtype, kernel_init=init)

  def kv(self, x_BxSxD: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Keys and values (B, S, N, H) of `x_BxSxD`, in the compute dtype."""
    return self.key(x_BxSxD), self.value(x_BxSxD)

  def attend(
    self,
    x_BxTxD: jax.Array,
    k_BxSxNxH: jax.Array,
    v_BxSxNxH: jax.Array,
    mask: jax.Array | None = None,
  ) -> jax.Array:
    """Queries from `x_BxTxD` attend to the given keys/values; returns (B, T, D)."""
    q = self.query(x_BxTxD)
    y_BxTxNxH = jax.nn.dot_product_attention(
      q, k_BxSxNxH.astype(q.dtype), v_BxSxNxH.astype(q.dtype), mask=mask
    )
    return self.out(y_BxTxNxH)

  def __call__(
    self, x_BxTxD: jax.Array, x_BxSxD: jax.Array, mask: jax.Array | None = None
  ) -> jax.Array:
    """Attention of the T queries of `x_BxTxD` over the S positions of `x_BxSxD`."""
    k, v = self.kv(x_BxSxD)
    return self.attend(x_BxTxD, k, v, mask)
