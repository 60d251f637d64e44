"""Position encodings computed from explicit positions: sinusoids at any position,
rotary embeddings (Su et al., 2021) and randomized ordered positions (Ruoss et al.,
2023, "Randomized Positional Encodings Boost Length Generalization of Transformers").

Dimension key: B batch (1 where positions are shared by the batch), T length,
N heads, H head width, D width, L `max_random_position`.

Randomized positions: in training each sequence of n real tokens gets a sorted
sample of n distinct positions from [0, L) instead of 0..n-1, so every position up to
L is trained however short the training sequences are, and only the order of the
positions carries meaning. Outside training the positions are deterministic,
0, s, 2s, ... with the stride s = L // max_length: they keep the order, fill [0, L)
for the longest sequence as the training samples do, and position t does not depend
on the length, so cached decoding can compute it one step at a time.
"""

import math

import jax
import jax.numpy as jnp

POSITIONAL = ('sinusoidal', 'learned', 'randomized_sinusoidal', 'rotary', 'randomized_rotary')
ROTARY = ('rotary', 'randomized_rotary')  # Rotate queries and keys; add nothing.
RANDOMIZED = ('randomized_sinusoidal', 'randomized_rotary')  # Sampled in training.
COMPUTED = RANDOMIZED + ('rotary',)  # Need explicit positions, not the fixed table.
RNG_COLLECTION = 'positions'  # The Flax PRNG stream randomized positions draw from.


def sinusoidal(positions_BxT: jax.Array, dim: int) -> jax.Array:
  """float32 (B, T, D) sinusoidal encodings of int positions (B, T).

  Same features as `transformer.sinusoidal_positions` (sines in the first half,
  cosines in the second) at arbitrary rather than consecutive positions.
  """
  half = dim // 2
  inv_freq = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / max(half - 1, 1))
  angles = positions_BxT[..., None].astype(jnp.float32) * inv_freq
  out = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], -1)
  return jnp.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, dim - 2 * half)])


def random_ordered(key: jax.Array, valid_BxT: jax.Array, max_position: int) -> jax.Array:
  """int32 (B, T) strictly increasing positions per row.

  The n = valid.sum() real tokens of a row (padding follows them) get a uniformly
  random sorted sample without replacement of n positions from [0, max_position);
  padding gets max_position, max_position + 1, ... so rows stay increasing.

  Args:
    key: PRNG key.
    valid_BxT: bool (B, T), True at the real tokens.
    max_position: L >= T.
  """
  b, t = valid_BxT.shape
  if t > max_position:
    raise ValueError(f'cannot sample {t} distinct positions below {max_position}')
  # The T largest of L uniform scores are a uniformly random T-subset in random
  # order, so its first n entries are a uniformly random n-subset for any n.
  _, index_BxT = jax.lax.top_k(jax.random.uniform(key, (b, max_position)), t)
  n_Bx1 = valid_BxT.sum(-1, keepdims=True)
  tail = max_position + jnp.arange(t)
  chosen = jnp.where(jnp.arange(t) < n_Bx1, index_BxT, tail)
  return jnp.sort(chosen, axis=-1).astype(jnp.int32)


def stride(kind: str, max_position: int, max_length: int) -> int:
  """Spacing of the deterministic positions: L // max_length when randomized, else 1."""
  return max(max_position // max_length, 1) if kind in RANDOMIZED else 1


def deterministic(length: int, start: jax.Array | int, step: int) -> jax.Array:
  """int32 (1, T) positions (start + t) * step for t < T = length."""
  return ((start + jnp.arange(length)) * step)[None].astype(jnp.int32)


def apply_rotary(x_BxTxNxH: jax.Array, positions_BxT: jax.Array) -> jax.Array:
  """Rotates feature pairs (h, h + H/2) of queries or keys (B, T, N, H) by
  position * 10^4^(-2h/H); same shape and dtype.

  The rotation makes the dot product of a rotated query and key depend on the
  positions only through their difference. The angles run in float32.
  """
  half = x_BxTxNxH.shape[-1] // 2
  inv_freq = 10_000.0 ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions_BxT[..., None, None].astype(jnp.float32) * inv_freq
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  x1 = x_BxTxNxH[..., :half].astype(jnp.float32)
  x2 = x_BxTxNxH[..., half:].astype(jnp.float32)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)
  return out.astype(x_BxTxNxH.dtype)
