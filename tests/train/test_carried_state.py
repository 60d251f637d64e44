"""Truncated backpropagation through time: the recurrent state carried across steps.

A `CarriedTrainState` trains B streams of consecutive windows; with a zero learning
rate its per-step losses must be the per-window losses of one forward pass over each
whole stream, its carry that pass's final state, and it must forget the state where
a stream starts again. Stream evaluation must score a text exactly as one pass does.
(Both drivers, several devices, micro-batches and resume: test_trainer_matrix.py's
'gru_streams'.)
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research.models import rnn
from research.tasks import language_model as lm
from research.train import state as state_lib
from research.train import steps

V, T, B, K = 11, 4, 2, 3  # Vocabulary, window, streams, windows per stream.


def _model(cell):
  return rnn.CharLM(rnn.CharLMConfig(V, embed_dim=6, hidden_dim=8, num_layers=2, cell=cell))


def _stream_state(model, batch_size):
  init = lambda k: model.init(k, jnp.zeros((1, T), jnp.int32), train=False)['params']
  carry = functools.partial(rnn.zero_lm_carry, model.config, batch_size)
  init_fn = state_lib.train_state_init(init, model.apply, optax.sgd(0.0), init_carry=carry)
  return jax.jit(init_fn)(jax.random.key(0))


def _streams(tokens_N):
  """(state, per-step batches) of B streams over `tokens_N`, K windows each."""
  offsets, reset = lm.stream_windows(len(tokens_N), B, T)
  data = lm.window_data(tokens_N, offsets, T, reset)
  gather = lm.make_window_gather(T)
  return [dict(gather(data, jnp.arange(B) * K + (s % K)), mask=jnp.ones(B)) for s in range(2 * K)]


def _train(model, batches):
  """Per-step mean losses and the final state of zero-rate SGD over `batches`."""
  state = _stream_state(model, B)
  step = jax.jit(functools.partial(steps.train_step, loss_fn=lm.make_loss_fn(model)))
  losses = []
  for batch in batches:
    state, m = step(state, batch, jax.random.key(1))
    losses.append(float(m['loss'][0] / m['loss'][1]))
  return np.array(losses), state


def test_stream_windows_cut_the_text_into_consecutive_windows():
  offsets, reset = lm.stream_windows(27, B, T)  # 13 tokens a stream: 3 windows.
  np.testing.assert_array_equal(offsets, [0, 4, 8, 13, 17, 21])
  np.testing.assert_array_equal(reset, [1, 0, 0, 1, 0, 0])
  with pytest.raises(Exception, match='too few for a window'):
    lm.stream_windows(9, B, T)


@pytest.mark.parametrize('cell', ['lstm', 'gru'])
def test_carried_windows_equal_one_pass_over_each_stream(cell):
  model = _model(cell)
  tokens = np.random.default_rng(0).integers(4, V, 27).astype(np.int32)
  losses, state = _train(model, _streams(tokens)[:K])
  # One forward pass over each whole stream (its K windows and the last target).
  streams = tokens[:26].reshape(B, 13)
  logits, carry = model.apply({'params': state.params}, jnp.asarray(streams[:, :-1]), train=False)
  per_token = optax.softmax_cross_entropy_with_integer_labels(logits, streams[:, 1:])
  windows = np.asarray(per_token)[:, : K * T].reshape(B, K, T).mean(axis=(0, 2))
  np.testing.assert_allclose(losses, windows, rtol=2e-6)
  # The stored carry is the pass's state after the last window's last input.
  _, carry_k = model.apply({'params': state.params}, jnp.asarray(streams[:, : K * T]), train=False)
  for a, b in zip(jax.tree.leaves(state.carry), jax.tree.leaves(carry_k), strict=True):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert losses[1] != pytest.approx(losses[0], rel=1e-3)  # The windows differ.
  del carry


def test_the_state_is_reset_where_a_stream_starts_again():
  model = _model('lstm')
  tokens = np.random.default_rng(1).integers(4, V, 27).astype(np.int32)
  losses, _ = _train(model, _streams(tokens))  # Two epochs of K windows.
  # Epoch 2 reads the same windows from a zero state again: the same losses.
  np.testing.assert_allclose(losses[K:], losses[:K], rtol=1e-6)


def test_the_gradient_stops_at_the_window_boundary():
  """Step 2's gradient is that of window 2's loss with the carry in as a constant."""
  model = _model('lstm')
  tokens = np.random.default_rng(2).integers(4, V, 27).astype(np.int32)
  batches = _streams(tokens)
  state = _stream_state(model, B)
  loss_fn = lm.make_loss_fn(model)
  state, _ = steps.train_step(state, batches[0], jax.random.key(1), loss_fn=loss_fn)
  carry = jax.tree.map(np.asarray, state.carry)

  def window_loss(params, carry_in):
    m, _ = loss_fn(params, dict(batches[1], carry=carry_in), jax.random.key(9), True)
    return m['loss'][0] / m['loss'][1]

  want = jax.grad(window_loss)(state.params, carry)
  # The same through a step with rate 1 (the update is minus the gradient).
  sgd = state.replace(tx=optax.sgd(1.0), opt_state=optax.sgd(1.0).init(state.params))
  after, _ = steps.train_step(sgd, batches[1], jax.random.key(1), loss_fn=loss_fn)
  got = jax.tree.map(lambda a, b: a - b, state.params, after.params)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, atol=1e-6)


@pytest.mark.parametrize('num_streams', [1, 2])
def test_stream_evaluation_scores_the_text_as_one_pass(num_streams):
  model = _model('gru')
  tokens = np.random.default_rng(3).integers(4, V, 23).astype(np.int32)
  params = _stream_state(model, 1).params
  arrays = lm.stream_eval_arrays(tokens, num_streams, T)
  evaluate = lm.make_stream_evaluator(model, functools.partial(rnn.zero_lm_carry, model.config))
  loss_sum, correct, count = np.asarray(evaluate(params, arrays), np.float64).sum(0)
  per = len(tokens) // num_streams
  streams = tokens[: num_streams * per].reshape(num_streams, per)
  logits, _ = model.apply({'params': params}, jnp.asarray(streams[:, :-1]), train=False)
  want = optax.softmax_cross_entropy_with_integer_labels(logits, streams[:, 1:])
  assert count == num_streams * (per - 1)  # Every prediction once, padding not scored.
  np.testing.assert_allclose(loss_sum, float(np.asarray(want, np.float64).sum()), rtol=1e-5)
  hits = (np.asarray(logits).argmax(-1) == streams[:, 1:]).sum()
  assert correct == hits
