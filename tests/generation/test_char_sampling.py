"""Sampling from the character LM: per-key determinism, greedy = full forward, top-k."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from research.generation import char_sampling
from research.models import rnn

B, V = 2, 11


def _lm(cell='lstm', layers=2):
  cfg = rnn.CharLMConfig(vocab_size=V, embed_dim=8, hidden_dim=16, num_layers=layers, cell=cell)
  model = rnn.CharLM(cfg)
  tokens = jax.random.randint(jax.random.key(3), (B, 12), 0, V)
  params = model.init(jax.random.key(4), tokens, train=False)['params']
  return model, params, tokens


def test_sampling_is_deterministic_per_key():
  model, params, _ = _lm()
  prompt = jnp.array([[1, 2, 3], [4, 5, 0]], jnp.int32)
  mask = jnp.array([[1, 1, 1], [1, 1, 0]], jnp.float32)
  sample = lambda k, **kw: char_sampling.sample_chars(
    model, params, prompt, mask, jax.random.key(k), num_steps=20, **kw
  )
  a, b, c = sample(0), sample(0), sample(1)
  chex.assert_shape(a, (2, 20))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert int(a.min()) >= 0 and int(a.max()) < V
  # top_k = 1 is greedy whatever the key.
  np.testing.assert_array_equal(sample(0, top_k=1), sample(7, temperature=0.0))


def test_greedy_generation_equals_full_forward_decoding():
  model, params, _ = _lm('gru')
  prompt = jnp.array([[1, 2, 3]], jnp.int32)
  out = char_sampling.sample_chars(
    model, params, prompt, jnp.ones((1, 3)), jax.random.key(0), num_steps=6, temperature=0.0
  )
  seq = prompt
  for _ in range(6):
    logits, _ = model.apply({'params': params}, seq, train=False)
    seq = jnp.concatenate([seq, jnp.argmax(logits[:, -1:], -1).astype(jnp.int32)], 1)
  np.testing.assert_array_equal(out, seq[:, 3:])


def test_top_k_keeps_only_the_k_likeliest():
  logits = jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4]] * 64))
  ids = char_sampling.sample_logits(logits, jax.random.key(0), temperature=1.0, top_k=2)
  assert set(np.asarray(ids).tolist()) <= {2, 3}
