"""Autoregressive decoding: greedy and beam search, each one `lax.while_loop`.

Both are model-agnostic; the model enters through a step function

  step_fn(cache, token_B, index) -> (logits_BxV float32, cache)

that feeds one token per sequence at position `index` and returns the logits of
the next one (for the transformer: `Transformer.decode_step` with a key/value
cache). Decoding starts from `bos_id` and a sequence ends at its `eos_id`; the loop
stops as soon as every sequence has ended (or after `max_len` tokens).
`decode_transformer` binds them to `research.models.Transformer`'s cached
`decode_step` and the special ids of `research.data.tokenizers`.

Dimension key: B batch, K beams, L maximal output length, V vocabulary.

Outputs are int32 (B, L): the generated tokens, EOS included, then `pad_id`.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from research.data import tokenizers
from research.models import transformer

StepFn = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
NEG_INF = -1e30  # Finite, so that sums and comparisons stay NaN-free.


def greedy(
  step_fn: StepFn,
  cache: Any,
  batch_size: int,
  max_len: int,
  *,
  bos_id: int,
  eos_id: int,
  pad_id: int = 0,
) -> jax.Array:
  """The argmax token at every position until EOS.

  Args:
    step_fn: see the module docstring.
    cache: the initial cache (leading axis B).
    batch_size: B.
    max_len: L, the longest output (EOS included).
    bos_id, eos_id, pad_id: special token ids.

  Returns:
    int32 (B, L) tokens.
  """

  def cond(state):
    t, _, _, done, _ = state
    return (t < max_len) & ~jnp.all(done)

  def body(state):
    t, cache, seq_BxL, done_B, last_B = state
    logits_BxV, cache = step_fn(cache, last_B, t)
    token_B = jnp.where(done_B, pad_id, jnp.argmax(logits_BxV, -1).astype(jnp.int32))
    seq_BxL = jax.lax.dynamic_update_slice_in_dim(seq_BxL, token_B[:, None], t, axis=1)
    return t + 1, cache, seq_BxL, done_B | (token_B == eos_id), token_B

  init = (
    jnp.asarray(0),
    cache,
    jnp.full((batch_size, max_len), pad_id, jnp.int32),
    jnp.zeros(batch_size, bool),
    jnp.full(batch_size, bos_id, jnp.int32),
  )
  return jax.lax.while_loop(cond, body, init)[2]


def length_penalty(length: jax.Array | int, alpha: float) -> jax.Array | float:
  """GNMT's ((5 + length) / 6) ** alpha; 1 when alpha is 0."""
  return ((5.0 + length) / 6.0) ** alpha


def _take(x_BxKx, idx_BxJ):
  """x[b, idx[b, j]] for every b, j (beams chosen per batch element)."""
  return jnp.take_along_axis(
    x_BxKx, idx_BxJ.reshape(idx_BxJ.shape + (1,) * (x_BxKx.ndim - 2)), axis=1
  )


def beam_search(
  step_fn: StepFn,
  cache: Any,
  batch_size: int,
  max_len: int,
  *,
  beam_size: int,
  bos_id: int,
  eos_id: int,
  pad_id: int = 0,
  alpha: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
  """Beam search for the sequence of highest length-normalised log-probability.

  Each step extends the K live beams, keeps the best K continuations that do not
  end there, and moves a hypothesis ending in EOS to the finished set when it ranks
  among the K best candidates of the step (fairseq's rule, which makes K = 1 exactly
  greedy). The loop ends when no live beam can beat the best finished one.

  Args:
    step_fn: see the module docstring; it is called on B * K rows.
    cache: the initial cache (leading axis B); it is repeated for the K beams.
    batch_size: B.
    max_len: L.
    beam_size: K.
    bos_id, eos_id, pad_id: special token ids.
    alpha: length-penalty exponent (0: plain log-probability).

  Returns:
    int32 (B, L) best sequences and float32 (B,) their scores.
  """
  b, k = batch_size, beam_size
  cache = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), cache)
  rows_B1 = jnp.arange(b)[:, None] * k
  best_possible = lambda lp_BxK: lp_BxK[:, 0] / length_penalty(max_len, alpha)

  def cond(state):
    t, _, _, alive_lp, _, _, fin_score = state
    return (t < max_len) & ~jnp.all(fin_score[:, 0] >= best_possible(alive_lp))

  def body(state):
    t, cache, alive_seq, alive_lp, last, fin_seq, fin_score = state
    logits, cache = step_fn(cache, last.reshape(b * k), t)
    logp_BxKxV = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(b, k, -1)
    v = logp_BxKxV.shape[-1]
    cand_lp, cand_idx = jax.lax.top_k((alive_lp[..., None] + logp_BxKxV).reshape(b, k * v), 2 * k)
    beam_Bx2K, token_Bx2K = cand_idx // v, (cand_idx % v).astype(jnp.int32)
    cand_seq = jax.lax.dynamic_update_slice_in_dim(
      _take(alive_seq, beam_Bx2K), token_Bx2K[..., None], t, axis=2
    )
    ends = token_Bx2K == eos_id
    # Live beams: the best K candidates that continue.
    alive_lp, keep = jax.lax.top_k(jnp.where(ends, NEG_INF, cand_lp), k)
    alive_seq, last = _take(cand_seq, keep), _take(token_Bx2K, keep)
    parent = (rows_B1 + _take(beam_Bx2K, keep)).reshape(b * k)
    cache = jax.tree.map(lambda x: x[parent], cache)
    # Finished: EOS candidates ranked among the step's K best.
    finishes = ends & (jnp.arange(2 * k)[None] < k) & (cand_lp > NEG_INF / 2)
    new_score = jnp.where(finishes, cand_lp / length_penalty(t + 1.0, alpha), NEG_INF)
    fin_score, keep = jax.lax.top_k(jnp.concatenate([fin_score, new_score], 1), k)
    fin_seq = _take(jnp.concatenate([fin_seq, cand_seq], 1), keep)
    return t + 1, cache, alive_seq, alive_lp, last, fin_seq, fin_score

  empty = jnp.full((b, k, max_len), pad_id, jnp.int32)
  alive_lp = jnp.tile(jnp.asarray([0.0] + [NEG_INF] * (k - 1), jnp.float32), (b, 1))
  start_BxK = jnp.full((b, k), bos_id, jnp.int32)
  no_score_BxK = jnp.full((b, k), NEG_INF, jnp.float32)
  init = (jnp.asarray(0), cache, empty, alive_lp, start_BxK, empty, no_score_BxK)
  _, _, alive_seq, alive_lp, _, fin_seq, fin_score = jax.lax.while_loop(cond, body, init)
  # A sequence that never produced EOS falls back to its best live beam.
  none_finished = fin_score[:, 0] <= NEG_INF / 2
  seq = jnp.where(none_finished[:, None], alive_seq[:, 0], fin_seq[:, 0])
  score = jnp.where(none_finished, best_possible(alive_lp), fin_score[:, 0])
  return seq, score


def decode_transformer(
  model: transformer.Transformer,
  params: Any,
  inputs_BxS: jax.Array,
  *,
  beam_size: int = 1,
  alpha: float = 0.0,
) -> jax.Array:
  """Decodes int32 sources (B, S) with the transformer's key/value cache.

  Args:
    model: the encoder-decoder.
    params: its parameters.
    inputs_BxS: int32 source tokens, EOS then PAD_ID.
    beam_size: 0 runs the greedy loop, K >= 1 beam search with K beams (K = 1
      gives the greedy result).
    alpha: length-penalty exponent of the beam search.

  Returns:
    int32 (B, max_target_length) tokens, EOS included, then padding.
  """
  variables = {'params': params}
  encoded = model.apply(variables, inputs_BxS, method=model.encode)
  cache = model.apply(variables, encoded, inputs_BxS, method=model.init_cache)

  def step_fn(cache, token_B, index):
    return model.apply(variables, cache, token_B, index, method=model.decode_step)

  kw = dict(bos_id=tokenizers.BOS_ID, eos_id=tokenizers.EOS_ID, pad_id=tokenizers.PAD_ID)
  b, max_len = inputs_BxS.shape[0], model.config.max_target_length
  if beam_size == 0:
    return greedy(step_fn, cache, b, max_len, **kw)
  return beam_search(step_fn, cache, b, max_len, beam_size=beam_size, alpha=alpha, **kw)[0]
