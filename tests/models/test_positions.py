"""Randomized and rotary position encodings: sampled positions, the rotary shift
invariance, and the transformer's parameters, cache and config with each encoding."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.errors import UserInputError
from research.models import attention
from research.models import positions
from research.models import transformer
from research.tasks import seq2seq
from research.train import settings
from tests.models import test_transformer

B, S, T, V = test_transformer.B, test_transformer.S, test_transformer.T, test_transformer.V
L = 64  # max_random_position of the tests: eval stride L // (T + 3) = 7.
NEW = ('randomized_sinusoidal', 'rotary', 'randomized_rotary')
_tokens, _init = test_transformer._tokens, test_transformer._init


def _config(**kw):
  """The transformer tests' tiny config, without dropout, positions below L."""
  return test_transformer._config(**({'dropout_rate': 0.0, 'max_random_position': L} | kw))


def test_random_positions_are_increasing_in_range_and_vary_with_the_key():
  lengths = jnp.array([1, 4, 7, 5])
  valid = jnp.arange(7)[None] < lengths[:, None]
  draw = lambda key, valid: np.asarray(positions.random_ordered(jax.random.key(key), valid, L))
  pos = draw(0, valid)
  assert pos.dtype == np.int32 and pos.shape == (4, 7)
  assert (np.diff(pos, axis=-1) > 0).all()
  real = pos[np.asarray(valid)]
  assert real.min() >= 0 and real.max() < L
  assert (pos[~np.asarray(valid)] >= L).all()
  assert not (draw(1, valid) == pos)[np.asarray(valid)].all()
  # More padding leaves the real tokens' positions unchanged (same key).
  wider = jnp.pad(valid, ((0, 0), (0, 5)))
  np.testing.assert_array_equal(draw(0, wider)[:, :7][np.asarray(valid)], real)
  # The whole range [0, L) is drawn, not only its start.
  many = draw(2, jnp.ones((200, 4), bool))
  assert len(np.unique(many)) > 0.9 * L


def test_deterministic_positions_are_strided_and_identity_without_room():
  np.testing.assert_array_equal(positions.deterministic(4, 0, 1), [[0, 1, 2, 3]])
  np.testing.assert_array_equal(positions.deterministic(2, 3, 7), [[21, 28]])
  assert positions.stride('randomized_rotary', L, T + 3) == L // (T + 3)
  assert positions.stride('rotary', L, T + 3) == 1
  assert positions.stride('randomized_sinusoidal', 4, 9) == 1


@pytest.mark.parametrize('kind', ['randomized_sinusoidal', 'randomized_rotary'])
def test_randomized_encodings_are_random_in_training_and_deterministic_in_eval(kind):
  model, params = _init(_config(positional=kind))
  src, tgt = _tokens(1, (B, S)), _tokens(2, (B, T))
  run = lambda train, key: model.apply(
    {'params': params}, src, tgt, train=train, rngs={'positions': jax.random.key(key)}
  )
  chex.assert_trees_all_close(run(False, 0), run(False, 1))
  assert not np.allclose(run(True, 0), run(True, 1), atol=1e-3)
  # With no room to spread (L = longest length) evaluation uses 0, 1, 2, ...:
  # exactly the plain encoding.
  plain = kind.removeprefix('randomized_')
  cfg = dict(max_random_position=S + 3)
  tight = model.clone(config=_config(positional=kind, **cfg))
  ref = model.clone(config=_config(positional=plain, **cfg))
  out = tight.apply({'params': params}, src, tgt, train=False)
  chex.assert_trees_all_close(out, ref.apply({'params': params}, src, tgt, train=False), atol=1e-5)


def test_sinusoidal_at_integer_positions_matches_the_table():
  table = transformer.sinusoidal_positions(40, 10)
  pos = jnp.array([[0, 3, 39], [5, 6, 7]])
  chex.assert_trees_all_close(positions.sinusoidal(pos, 10), table[np.asarray(pos)], atol=1e-5)


def test_rotary_attention_scores_depend_on_position_differences_only():
  q, k = (jax.random.normal(jax.random.key(i), (2, 5, 3, 8)) for i in range(2))
  pos = jnp.array([[0, 2, 3, 9, 11], [1, 4, 5, 6, 20]])
  weights = lambda p: attention.attention_weights(
    positions.apply_rotary(q, p), positions.apply_rotary(k, p), attention.causal_mask(5)
  )
  chex.assert_trees_all_close(weights(pos + 37), weights(pos), atol=1e-5)
  assert not np.allclose(weights(pos * 2), weights(pos), atol=1e-3)
  # The module's self-attention too: shifting every position changes nothing.
  mha = attention.MultiHeadAttention(16, 2)
  x = jax.random.normal(jax.random.key(2), (2, 5, 16))
  p = mha.init(jax.random.key(3), x, x)
  out = lambda pos: mha.apply(p, x, x, None, pos)
  chex.assert_trees_all_close(out(pos + 100), out(pos), atol=1e-5)
  assert not np.allclose(out(pos), mha.apply(p, x, x), atol=1e-3)


@pytest.mark.parametrize('kind', NEW)
def test_new_encodings_add_no_parameters(kind):
  def count(cfg):
    init = functools.partial(transformer.Transformer(cfg).init, train=False)
    shapes = jax.eval_shape(
      init, jax.random.key(0), jnp.ones((1, S), jnp.int32), jnp.ones((1, T), jnp.int32)
    )['params']
    return sum(x.size for x in jax.tree.leaves(shapes))

  cfg = _config(positional=kind)
  assert count(cfg) == count(_config()) == transformer.num_params(cfg)


def test_the_seq2seq_loss_supplies_the_positions_stream():
  model, params = _init(_config(positional='randomized_rotary'))
  loss_fn = seq2seq.make_loss_fn(model)
  batch = {
    'inputs': _tokens(1, (B, S)),
    'targets': _tokens(2, (B, T)).at[:, -1].set(0),
    'mask': jnp.ones(B),
  }
  loss = lambda key: loss_fn(params, batch, jax.random.key(key), True)[0]['loss'][0]
  assert float(loss(0)) != float(loss(1))


def test_config_rejects_bad_positional_settings_in_one_line():
  with pytest.raises(ValueError, match="unknown positional 'alibi': use one of") as e:
    _config(positional='alibi')
  assert '\n' not in str(e.value) and all(k in str(e.value) for k in positions.POSITIONAL)
  # A --config.model.positional override reaches the user as that same line.
  with pytest.raises(UserInputError, match="^model: unknown positional 'alibi': use one of"):
    sizes = dict(input_vocab_size=V, output_vocab_size=V)
    settings.model_settings(transformer.TransformerConfig, {'positional': 'alibi'}, **sizes)
  with pytest.raises(ValueError, match='max_random_position'):
    _config(positional='randomized_rotary', max_random_position=S)
  with pytest.raises(ValueError, match='even head width'):
    _config(positional='rotary', emb_dim=12, num_heads=4)
