"""Properties of the transformer: masks, cache, parameter arithmetic, dtypes."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.models import attention
from research.models import transformer

B, S, T, V = 3, 7, 6, 13


def _config(**kw):
  base = dict(
    input_vocab_size=V,
    output_vocab_size=V,
    emb_dim=16,
    num_heads=4,
    num_encoder_layers=2,
    num_decoder_layers=2,
    mlp_dim=24,
    max_input_length=S + 3,
    max_target_length=T + 3,
    dropout_rate=0.1,
  )
  return transformer.TransformerConfig(**(base | kw))


def _tokens(key, shape, low=3):
  return jax.random.randint(jax.random.key(key), shape, low, V, jnp.int32)


def _init(cfg):
  model = transformer.Transformer(cfg)
  params = model.init(
    jax.random.key(0), jnp.ones((1, S), jnp.int32), jnp.ones((1, T), jnp.int32), train=False
  )['params']
  return model, params


@pytest.mark.parametrize(
  'kw',
  [
    {},
    {'share_embeddings': True},
    {'pre_norm': False},
    {'positional': 'learned'},
    {'share_embeddings': True, 'positional': 'learned', 'pre_norm': False},
  ],
)
def test_parameter_count_matches_the_layer_arithmetic(kw):
  cfg = _config(**kw)
  init = functools.partial(transformer.Transformer(cfg).init, train=False)
  shapes = jax.eval_shape(
    init, jax.random.key(0), jnp.ones((1, S), jnp.int32), jnp.ones((1, T), jnp.int32)
  )['params']
  assert sum(x.size for x in jax.tree.leaves(shapes)) == transformer.num_params(cfg)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(shapes))


def test_causal_mask_later_targets_do_not_change_earlier_logits():
  model, params = _init(_config())
  src, tgt = _tokens(1, (B, S)), _tokens(2, (B, T))
  changed = tgt.at[:, 4:].set(_tokens(3, (B, T - 4)))
  out = model.apply({'params': params}, src, tgt, train=False)
  out2 = model.apply({'params': params}, src, changed, train=False)
  chex.assert_shape(out, (B, T, V))
  chex.assert_trees_all_close(out[:, :4], out2[:, :4], atol=1e-5)
  assert not np.allclose(out[:, 4:], out2[:, 4:], atol=1e-3)


@pytest.mark.parametrize('pre_norm', [True, False])
def test_padding_leaves_real_positions_unchanged(pre_norm):
  model, params = _init(_config(pre_norm=pre_norm))
  src, tgt = _tokens(1, (B, S)), _tokens(2, (B, T))
  src = src.at[0, 5:].set(0)  # A shorter source in the batch.
  padded_src = jnp.pad(src, ((0, 0), (0, 3)))
  padded_tgt = jnp.pad(tgt, ((0, 0), (0, 2)))
  out = model.apply({'params': params}, src, tgt, train=False)
  out2 = model.apply({'params': params}, padded_src, padded_tgt, train=False)
  chex.assert_trees_all_close(out, out2[:, :T], atol=1e-5)
  # Changing the padded source positions changes nothing either.
  enc = model.apply({'params': params}, src, method=model.encode)
  enc2 = model.apply({'params': params}, src.at[0, 5:].set(0), method=model.encode)
  chex.assert_trees_all_close(enc[0, :5], enc2[0, :5], atol=1e-6)


@pytest.mark.parametrize(
  'kw',
  [
    {},
    {'share_embeddings': True, 'positional': 'learned', 'pre_norm': False},
    # The computed encodings: deterministic positions (strided where randomized),
    # rotary keys cached already rotated.
    {'positional': 'rotary'},
    {'positional': 'randomized_rotary'},
    {'positional': 'randomized_sinusoidal'},
  ],
)
def test_cached_step_by_step_decoding_equals_the_full_forward_pass(kw):
  model, params = _init(_config(**kw))
  v = {'params': params}
  src, tgt = _tokens(1, (B, S)).at[1, 4:].set(0), _tokens(2, (B, T))
  full = model.apply(v, src, tgt, train=False)
  encoded = model.apply(v, src, method=model.encode)
  cache = model.apply(v, encoded, src, method=model.init_cache)
  step = jax.jit(lambda c, tok, i: model.apply(v, c, tok, i, method=model.decode_step))
  steps = []
  for i in range(T):
    logits, cache = step(cache, tgt[:, i], jnp.asarray(i))
    steps.append(logits)
  chex.assert_trees_all_close(jnp.stack(steps, 1), full, atol=1e-5)


def test_dropout_acts_in_training_only():
  model, params = _init(_config(dropout_rate=0.5))
  src, tgt = _tokens(1, (B, S)), _tokens(2, (B, T))
  run = lambda train, key: model.apply(
    {'params': params}, src, tgt, train=train, rngs={'dropout': jax.random.key(key)}
  )
  chex.assert_trees_all_close(run(False, 0), run(False, 1))
  assert not np.allclose(run(True, 0), run(True, 1))


def test_bfloat16_compute_keeps_float32_params_and_logits():
  cfg = _config(dtype=jnp.bfloat16)
  model, params = _init(cfg)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  src, tgt = _tokens(1, (B, S)), _tokens(2, (B, T))
  out = model.apply({'params': params}, src, tgt, train=False)
  assert out.dtype == jnp.float32
  ref = transformer.Transformer(_config()).apply({'params': params}, src, tgt, train=False)
  chex.assert_tree_all_finite(out)
  np.testing.assert_allclose(out, ref, atol=0.15)


def test_attention_weights_sum_to_one_and_match_the_fused_op():
  q, k, v = (jax.random.normal(jax.random.key(i), (2, 5 if i == 0 else 4, 3, 8)) for i in range(3))
  mask = attention.padding_mask(jnp.array([[1, 1, 1, 0], [1, 1, 0, 0]]))
  w = attention.attention_weights(q, k, mask)
  chex.assert_shape(w, (2, 3, 5, 4))
  chex.assert_trees_all_close(w.sum(-1), jnp.ones((2, 3, 5)), atol=1e-6)
  assert float(w[1, :, :, 2:].max()) == 0.0  # Padding gets no weight.
  expected = jnp.einsum('bnts,bsnh->btnh', w, v)
  chex.assert_trees_all_close(jax.nn.dot_product_attention(q, k, v, mask=mask), expected, atol=1e-5)
  causal = attention.attention_weights(q[:, :4], k, attention.causal_mask(4))
  chex.assert_trees_all_close(causal.sum(-1), jnp.ones((2, 3, 4)), atol=1e-6)
  assert float(jnp.triu(causal, 1).max()) == 0.0


def test_config_rejects_bad_settings():
  with pytest.raises(ValueError, match='divisible'):
    _config(num_heads=5)
  with pytest.raises(ValueError, match='positional'):
    _config(positional='alibi')
  with pytest.raises(ValueError, match='equal'):
    _config(share_embeddings=True, output_vocab_size=V + 1)
