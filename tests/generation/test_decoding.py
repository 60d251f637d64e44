"""Greedy and beam search: on a toy step function and on the transformer."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from research.data import tokenizers
from research.generation import decoding
from research.models import transformer
from research.tasks import seq2seq

BOS, EOS, PAD = tokenizers.BOS_ID, tokenizers.EOS_ID, tokenizers.PAD_ID


def _table_step(log_probs_VxV):
  """A bigram model: the next token's logits depend on the last token only; the
  cache counts the calls, to show the loop stops early."""

  def step_fn(cache, token_B, index):
    del index
    return log_probs_VxV[token_B], cache + 1

  return step_fn


def _bigram():
  # From BOS: 'a'(3) is likelier than 'b'(4), but 'a' leads to poor continuations,
  # 'b' to a sure EOS: greedy picks 'a', beam search 'b'.
  p = np.full((6, 6), 1e-6)
  p[BOS, 3], p[BOS, 4] = 0.55, 0.45
  p[3, 5], p[3, 3], p[3, EOS] = 0.34, 0.33, 0.33
  p[4, EOS] = 1.0
  p[5, EOS] = 1.0
  p[EOS, EOS] = 1.0
  p /= p.sum(1, keepdims=True)
  return jnp.log(jnp.asarray(p, jnp.float32))


def test_greedy_follows_argmax_stops_at_eos_and_pads():
  cache = jnp.zeros((2,), jnp.int32)
  seq = jax.jit(lambda c: decoding.greedy(_table_step(_bigram()), c, 2, 8, bos_id=BOS, eos_id=EOS))(
    cache
  )
  np.testing.assert_array_equal(seq, [[3, 5, EOS, 0, 0, 0, 0, 0]] * 2)


def test_beam_search_finds_the_likelier_sequence_and_stops_early():
  step = _table_step(_bigram())
  calls = {}

  def counting(cache, token_B, index):
    logits, cache = step(cache, token_B, index)
    calls['shape'] = token_B.shape
    return logits, cache

  seq, score = jax.jit(
    lambda c: decoding.beam_search(counting, c, 2, 8, beam_size=2, bos_id=BOS, eos_id=EOS)
  )(jnp.zeros((2,), jnp.int32))
  np.testing.assert_array_equal(seq, [[4, EOS, 0, 0, 0, 0, 0, 0]] * 2)
  np.testing.assert_allclose(score, np.log(0.45), atol=1e-4)
  assert calls['shape'] == (4,)  # B * K rows per step.


def _tiny_model():
  cfg = transformer.TransformerConfig(
    input_vocab_size=9,
    output_vocab_size=9,
    emb_dim=16,
    num_heads=2,
    mlp_dim=32,
    num_encoder_layers=1,
    num_decoder_layers=2,
    max_input_length=6,
    max_target_length=7,
  )
  model = transformer.Transformer(cfg)
  src = jax.random.randint(jax.random.key(1), (4, 6), 3, 9).at[2, 3:].set(0)
  params = model.init(jax.random.key(0), src, src, train=False)['params']
  return model, params, src


def test_beam_size_one_equals_greedy_on_the_transformer():
  model, params, src = _tiny_model()
  gen = jax.jit(decoding.decode_transformer, static_argnums=0, static_argnames='beam_size')
  greedy = gen(model, params, src, beam_size=0)
  beam1 = gen(model, params, src, beam_size=1)
  chex.assert_shape(greedy, (4, 7))
  np.testing.assert_array_equal(greedy, beam1)


def test_greedy_decoding_agrees_with_the_teacher_forced_argmax():
  model, params, src = _tiny_model()
  greedy = decoding.decode_transformer(model, params, src, beam_size=0)
  logits = model.apply({'params': params}, src, seq2seq.shift_right(greedy, BOS), train=False)
  argmax = np.asarray(jnp.argmax(logits, -1))
  for row, ref in zip(np.asarray(greedy), argmax, strict=True):
    n = (list(row).index(EOS) + 1) if EOS in row else len(row)
    np.testing.assert_array_equal(row[:n], ref[:n])
    assert (row[n:] == PAD).all()


def test_wider_beams_never_score_worse():
  model, params, src = _tiny_model()
  v = {'params': params}
  encoded = model.apply(v, src, method=model.encode)
  cache = model.apply(v, encoded, src, method=model.init_cache)
  step = lambda c, tok, i: model.apply(v, c, tok, i, method=model.decode_step)
  scores = [
    decoding.beam_search(step, cache, 4, 7, beam_size=k, bos_id=BOS, eos_id=EOS)[1] for k in (1, 4)
  ]
  assert (np.asarray(scores[1]) >= np.asarray(scores[0]) - 1e-5).all()
