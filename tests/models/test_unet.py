"""The U-Net denoiser and the prompt encoder: shapes, building blocks, conditioning."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.data import tokenizers
from research.models import text_encoder
from research.models import unet
from research.tasks import ddpm

CFG = unet.UNetConfig(widths=(8, 16), attention_resolutions=(4,), num_heads=2, num_groups=4)


def _init(cfg=CFG, size=8, cond_dim=6):
  model = unet.UNet(cfg)
  params = model.init(
    jax.random.key(0),
    jnp.zeros((2, size, size, 1)),
    jnp.zeros((2,), jnp.int32),
    jnp.zeros((2, cond_dim)),
    train=False,
  )['params']
  return model, params


def test_output_shape_dtype_and_zero_init():
  model, params = _init()
  x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
  y = model.apply({'params': params}, x, jnp.array([0, 5, 9]), jnp.ones((3, 6)), train=False)
  chex.assert_shape(y, (3, 8, 8, 1))
  assert y.dtype == jnp.float32
  # Zero-initialised output conv: the untrained net predicts no noise.
  chex.assert_trees_all_close(y, jnp.zeros_like(y))
  assert 'down1_0_attention' in params and 'mid_attention' in params
  assert 'down0_0_attention' not in params  # 8x8 is not in attention_resolutions.


def test_prediction_depends_on_time_and_condition():
  model, params = _init()
  params = jax.tree.map(lambda p: p + 0.05, params)  # Make the output layer non-zero.
  x = jax.random.normal(jax.random.key(1), (1, 8, 8, 1))
  f = lambda t, c: model.apply({'params': params}, x, jnp.array([t]), c, train=False)
  c0, c1 = jnp.zeros((1, 6)), jnp.ones((1, 6))
  assert not np.allclose(f(1, c0), f(500, c0))
  assert not np.allclose(f(1, c0), f(1, c1))
  chex.assert_trees_all_close(f(7, c1), f(7, c1))


def test_space_to_depth_and_upsample():
  x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
  y = unet.space_to_depth(x)
  chex.assert_shape(y, (2, 2, 2, 12))
  np.testing.assert_array_equal(y[0, 1, 0, :3], x[0, 2, 0])
  np.testing.assert_array_equal(y[0, 1, 0, 9:], x[0, 3, 1])
  u = unet.upsample_nearest(x)
  chex.assert_shape(u, (2, 8, 8, 3))
  np.testing.assert_array_equal(u[:, ::2, ::2], x)
  np.testing.assert_array_equal(u[:, 1::2, 1::2], x)


def test_timestep_embedding():
  e = unet.timestep_embedding(jnp.array([0, 1, 999]), 8)
  chex.assert_shape(e, (3, 8))
  np.testing.assert_allclose(e[0], [1, 1, 1, 1, 0, 0, 0, 0], atol=1e-7)
  np.testing.assert_allclose(e[1, 0], np.cos(1.0), rtol=1e-6)


def test_bad_sizes_are_rejected():
  with pytest.raises(ValueError, match='multiple of 4'):
    unet.check_image_size(unet.UNetConfig(widths=(8, 8, 8), num_groups=4, num_heads=2), 30)
  unet.check_image_size(unet.UNetConfig(), 28)
  with pytest.raises(ValueError, match='divisible by num_groups'):
    unet.UNetConfig(widths=(12,), num_groups=8)


DIGIT_PROMPTS = ddpm.class_prompts('mnist', [str(i) for i in range(10)])


def _encoder(max_length, **kw):
  vocab = tokenizers.WordTokenizer.from_prompts(DIGIT_PROMPTS)
  return text_encoder.TextEncoder(
    text_encoder.TextEncoderConfig(vocab_size=vocab.size, max_length=max_length, **kw)
  ), vocab


def test_text_encoder_padding_invariance_and_prompt_dependence():
  enc, vocab = _encoder(8, emb_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
  toks = vocab.encode_batch(['a handwritten seven', 'a handwritten one'], 8)
  params = enc.init(jax.random.key(0), toks, train=False)['params']
  out = enc.apply({'params': params}, toks, train=False)
  chex.assert_shape(out, (2, 16))
  assert not np.allclose(out[0], out[1])
  # Trailing padding (a shorter max_length) does not change the vector.
  short, _ = _encoder(5, emb_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
  out_short = short.apply({'params': params}, toks[:, :5], train=False)
  chex.assert_trees_all_close(out, out_short, atol=1e-5)


def test_digit_prompts_start_far_from_parallel():
  # Prompts of one template must not start (near-)parallel, or the denoiser learns
  # to ignore them (character-level encodings of these started at cosine > 0.98).
  enc, vocab = _encoder(8)
  toks = vocab.encode_batch(DIGIT_PROMPTS, 8)
  out = enc.apply(enc.init(jax.random.key(0), toks, train=False), toks, train=False)
  unit = out / np.linalg.norm(out, axis=1, keepdims=True)
  mean_cos = ((unit @ unit.T).sum() - 10) / 90
  assert mean_cos < 0.9, mean_cos


def test_text_encoder_pools_only_the_words():
  # With no layers the output is the pooled word vectors alone: the PAD_ID and
  # EOS_ID embeddings, however large, must not reach it.
  enc, vocab = _encoder(6, emb_dim=8, num_heads=2, num_layers=0, mlp_dim=8)
  toks = vocab.encode_batch(DIGIT_PROMPTS[:2], 6)
  assert (toks == tokenizers.PAD_ID).any() and (toks == tokenizers.EOS_ID).any()
  params = enc.init(jax.random.key(0), toks, train=False)['params']
  out = enc.apply({'params': params}, toks, train=False)
  table = params['embed']['embedding']
  for special in (tokenizers.PAD_ID, tokenizers.EOS_ID):
    loud = {**params, 'embed': {'embedding': table.at[special].set(1e3)}}
    chex.assert_trees_all_close(enc.apply({'params': loud}, toks, train=False), out, atol=1e-4)
