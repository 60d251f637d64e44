"""The LM loss and window gather, trained with the shared train_step."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.models import rnn
from research.tasks import language_model as lm
from research.train import state as state_lib
from research.train import steps

V = 12


def _model(cell='lstm', hidden=16):
  return rnn.CharLM(rnn.CharLMConfig(vocab_size=V, embed_dim=8, hidden_dim=hidden, cell=cell))


def test_window_gather_cuts_shifted_windows_and_masks_the_end():
  tokens = np.arange(1, 11, dtype=np.int32)  # N = 10.
  data = lm.window_data(tokens, lm.eval_offsets(10, 4), seq_len=4)
  np.testing.assert_array_equal(data['offsets'], [0, 4, 8])
  batch = lm.make_window_gather(4)(jax.tree.map(jnp.asarray, data), jnp.array([0, 2], jnp.int32))
  np.testing.assert_array_equal(batch['inputs'], [[1, 2, 3, 4], [9, 10, 0, 0]])
  np.testing.assert_array_equal(batch['targets'], [[2, 3, 4, 5], [10, 0, 0, 0]])
  np.testing.assert_array_equal(batch['token_mask'], [[1, 1, 1, 1], [1, 0, 0, 0]])
  # Evaluation windows predict every token after the first exactly once.
  everything = lm.make_window_gather(4)(
    jax.tree.map(jnp.asarray, data), jnp.arange(3, dtype=jnp.int32)
  )
  assert float(everything['token_mask'].sum()) == 9
  assert len(lm.train_offsets(10, 4)) == 6


def _batch(rng, b=3, t=6):
  tokens = jax.random.randint(rng, (b, t + 1), 1, V)
  return {
    'inputs': tokens[:, :-1],
    'targets': tokens[:, 1:],
    'token_mask': jnp.ones((b, t)),
    'mask': jnp.ones((b,)),
  }


@pytest.mark.parametrize('cell', ('lstm', 'gru'))
def test_padding_does_not_change_the_loss_of_real_tokens(cell):
  model = _model(cell)
  loss_fn = lm.make_loss_fn(model)
  batch = _batch(jax.random.key(0))
  params = model.init(jax.random.key(1), batch['inputs'], train=False)['params']
  token_mask = jnp.array([[1.0] * 6, [1.0] * 4 + [0.0] * 2, [1.0] * 6])
  padded = dict(batch, token_mask=token_mask, mask=jnp.array([1.0, 1.0, 0.0]))
  noisy = dict(
    padded,
    inputs=jnp.where(token_mask > 0, batch['inputs'], 7),
    targets=jnp.where(token_mask > 0, batch['targets'], 3),
  )
  noisy = dict(noisy, inputs=noisy['inputs'].at[2].set(5))
  m_padded, _ = loss_fn(params, padded, None, False)
  m_noisy, _ = loss_fn(params, noisy, None, False)
  chex.assert_trees_all_close(m_padded, m_noisy, atol=1e-5)
  assert float(m_padded['loss'][1]) == 10
  short = {k: v[:2, :4] for k, v in batch.items() if k != 'mask'}
  m_short, _ = loss_fn(params, dict(short, mask=jnp.ones(2)), None, False)
  m_first, _ = loss_fn(params, {k: v[:1] for k, v in batch.items()}, None, False)
  expected = (
    m_short['loss'][0]
    - loss_fn(
      params, dict({k: v[:1, :4] for k, v in short.items()}, mask=jnp.ones(1)), None, False
    )[0]['loss'][0]
    + m_first['loss'][0]
  )
  np.testing.assert_allclose(m_padded['loss'][0], expected, rtol=1e-5)


@pytest.mark.parametrize('cell', ('lstm', 'gru'))
def test_both_cells_overfit_a_tiny_text(cell):
  # Four sequences that share their later tokens' statistics: only memory of the
  # first token (distinct per row) makes the loss go to zero.
  rng = np.random.default_rng(0)
  rows = rng.integers(1, V, (4, 11)).astype(np.int32)
  rows[:, 0] = [1, 2, 3, 4]
  batch = {
    'inputs': jnp.asarray(rows[:, :-1]),
    'targets': jnp.asarray(rows[:, 1:]),
    'token_mask': jnp.ones((4, 10)),
    'mask': jnp.ones(4),
  }
  model = _model(cell, hidden=32)
  init = lambda k: model.init(k, batch['inputs'], train=False)['params']
  state = state_lib.init_train_state(init, model.apply, optax.adam(3e-2), jax.random.key(0))
  step = jax.jit(functools.partial(steps.train_step, loss_fn=lm.make_loss_fn(model)))
  for _ in range(150):
    state, metrics = step(state, batch, jax.random.key(1))
  loss = float(metrics['loss'][0] / metrics['loss'][1])
  assert loss < 0.05, f'{cell} did not overfit: loss {loss}'


def test_perplexity_and_bits_per_char():
  values = lm.perplexity_and_bpc(float(np.log(4.0)))
  np.testing.assert_allclose([values['perplexity'], values['bits_per_char']], [4.0, 2.0])
