"""LSTM/GRU layers and the character LM: scan vs loop, counts, padding, and our cells
inside `flax.linen.RNN`."""

import functools
import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.models import recurrence
from research.models import rnn

B, T, D, H, V = 2, 7, 5, 6, 11
CELLS = ('lstm', 'gru')


def _layer(cell, **kw):
  layer = rnn.Recurrent(cell, H, **kw)
  x = jax.random.normal(jax.random.key(0), (B, T, D))
  params = layer.init(jax.random.key(1), x)['params']
  return layer, params, x


def _reference_cell(cell, params, carry, x_BxD):
  """The textbook gate equations, written independently of the module."""
  xg = x_BxD @ params['w_ih'] + params['b_ih']
  h = carry[-1]
  hg = h @ params['w_hh'] + (params['b_hh'] if cell == 'gru' else 0.0)
  sig = jax.nn.sigmoid
  if cell == 'lstm':
    i, f, o, g = jnp.split(xg + hg, 4, axis=-1)
    c = sig(f) * carry[0] + sig(i) * jnp.tanh(g)
    return (c, sig(o) * jnp.tanh(c))
  xr, xz, xn = jnp.split(xg, 3, axis=-1)
  hr, hz, hn = jnp.split(hg, 3, axis=-1)
  r, z = sig(xr + hr), sig(xz + hz)
  return ((1 - z) * jnp.tanh(xn + r * hn) + z * h,)


@pytest.mark.parametrize('cell', CELLS)
def test_scan_equals_step_by_step_loop(cell):
  layer, params, x = _layer(cell)
  y_scan, carry_scan = layer.apply({'params': params}, x)
  chex.assert_shape(y_scan, (B, T, H))
  carry, ys, ref_carry, ref_ys = None, [], recurrence.zero_carry(cell, B, H), []
  for t in range(T):
    y_t, carry = layer.apply({'params': params}, x[:, t : t + 1], carry=carry)
    ys.append(y_t[:, 0])
    ref_carry = _reference_cell(cell, params, ref_carry, x[:, t])
    ref_ys.append(ref_carry[-1])
  chex.assert_trees_all_close(y_scan, jnp.stack(ys, 1), atol=1e-5)
  chex.assert_trees_all_close(y_scan, jnp.stack(ref_ys, 1), atol=1e-5)
  chex.assert_trees_all_close(carry_scan, carry, atol=1e-5)


@pytest.mark.parametrize('cell', CELLS)
def test_unroll_does_not_change_results(cell):
  layer, params, x = _layer(cell)
  chex.assert_trees_all_close(
    layer.apply({'params': params}, x),
    rnn.Recurrent(cell, H, unroll=3).apply({'params': params}, x),
    atol=1e-5,
  )


@pytest.mark.parametrize('cell,gates,extra_bias', [('lstm', 4, 0), ('gru', 3, 1)])
def test_parameter_counts_match_gate_formulas(cell, gates, extra_bias):
  _, params, _ = _layer(cell)
  n = sum(p.size for p in jax.tree.leaves(params))
  assert n == gates * (D * H + H * H + (1 + extra_bias) * H)
  assert n == recurrence.num_cell_params(cell, D, H)
  cfg = rnn.CharLMConfig(vocab_size=V, embed_dim=D, hidden_dim=H, num_layers=2, cell=cell)
  shapes = jax.eval_shape(
    lambda: rnn.CharLM(cfg).init(jax.random.key(0), jnp.zeros((1, 3), jnp.int32), train=False)
  )['params']
  total = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes))
  assert total == (
    V * D
    + recurrence.num_cell_params(cell, D, H)
    + recurrence.num_cell_params(cell, H, H)
    + H * V
    + V
  )


def test_lstm_hidden_bias_adds_to_the_input_bias_and_gets_its_gradient():
  """Torch's two-bias LSTM: the gates see b_ih + b_hh, and both biases get the same
  gradient (through the fused CPU gradient of the recurrence)."""
  layer, params, x = _layer('lstm', lstm_hidden_bias=True, init_range=0.1)
  assert params['b_hh'].shape == (4 * H,) and float(jnp.abs(params['b_hh']).min()) > 0
  assert sum(p.size for p in jax.tree.leaves(params)) == 4 * (D * H + H * H + 2 * H)
  one_bias = dict(params, b_ih=params['b_ih'] + params['b_hh'])
  del one_bias['b_hh']
  w = jax.random.normal(jax.random.key(3), (B, T, H))
  loss = lambda m, p: jnp.sum(m.apply({'params': p}, x)[0] * w)
  chex.assert_trees_all_close(
    loss(layer, params), loss(rnn.Recurrent('lstm', H), one_bias), rtol=1e-6
  )
  grads = jax.grad(functools.partial(loss, layer))(params)
  chex.assert_trees_all_close(grads['b_hh'], grads['b_ih'], rtol=1e-6)
  assert float(jnp.abs(grads['b_hh']).max()) > 0


@pytest.mark.parametrize('cell', CELLS)
def test_padded_steps_change_nothing(cell):
  layer, params, x = _layer(cell)
  lengths = np.array([T, 4])
  mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)
  garbage = jnp.where(mask[..., None] > 0, x, 100.0 * jax.random.normal(jax.random.key(5), x.shape))
  y, carry = layer.apply({'params': params}, garbage, mask)
  y_short, carry_short = layer.apply({'params': params}, x[1:, :4])
  chex.assert_trees_all_close(y[1, :4], y_short[0], atol=1e-5)
  chex.assert_trees_all_close(
    jax.tree.map(lambda c: c[1], carry), jax.tree.map(lambda c: c[0], carry_short), atol=1e-5
  )
  np.testing.assert_array_equal(y[1, 4:], 0.0)
  # The backward direction skips the padding too.
  bi = rnn.Bidirectional(cell, H)
  bi_params = bi.init(jax.random.key(2), x)['params']
  y_bi, _ = bi.apply({'params': bi_params}, garbage, mask)
  y_bi_short, _ = bi.apply({'params': bi_params}, x[1:, :4])
  chex.assert_trees_all_close(y_bi[1, :4], y_bi_short[0], atol=1e-5)


@pytest.mark.parametrize('cell', CELLS)
def test_bidirectional_backward_is_forward_on_reversed_input(cell):
  bi = rnn.Bidirectional(cell, H)
  x = jax.random.normal(jax.random.key(0), (B, T, D))
  params = bi.init(jax.random.key(1), x)['params']
  y, _ = bi.apply({'params': params}, x)
  chex.assert_shape(y, (B, T, 2 * H))
  fwd = rnn.Recurrent(cell, H)
  y_rev, _ = fwd.apply({'params': params['backward']}, x[:, ::-1])
  chex.assert_trees_all_close(y[..., H:], y_rev[:, ::-1], atol=1e-5)


@pytest.mark.parametrize('cell', CELLS)
def test_gradient_reaches_the_first_time_step(cell):
  layer, params, x = _layer(cell)
  g = jax.grad(lambda x: layer.apply({'params': params}, x)[0][:, -1].sum())(x)
  assert float(jnp.abs(g[:, 0]).min()) > 0.0
  chex.assert_tree_all_finite(g)


def _nonzero(params, seed=9):
  """Params with every entry perturbed, so that zero-initialised biases count too."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: p + 0.3 * rng.normal(size=p.shape).astype(np.float32), params)


def _flax_rnn(cell, **kw):
  """`nn.RNN` over our cell; its params are {'cell': <Recurrent's params>}."""
  return nn.RNN(rnn.RecurrentCell(cell, H), **kw)


@pytest.mark.parametrize('cell', CELLS)
def test_flax_rnn_with_our_cell_equals_our_scan(cell):
  layer, params, x = _layer(cell)
  flax_rnn = _flax_rnn(cell, return_carry=True)
  own = jax.eval_shape(flax_rnn.init, jax.random.key(1), x)['params']
  assert list(own) == ['cell']
  chex.assert_trees_all_equal_shapes_and_dtypes(own['cell'], params)
  params = _nonzero(params)
  variables = {'params': {'cell': params}}
  y_scan, carry_scan = layer.apply({'params': params}, x)
  carry, y = flax_rnn.apply(variables, x)
  chex.assert_trees_all_close(y, y_scan, atol=1e-5)
  chex.assert_trees_all_close(carry, carry_scan, atol=1e-5)
  # From a given carry (truncated BPTT), and with an extra batch axis.
  carry0 = _nonzero(carry_scan, seed=7)
  chex.assert_trees_all_close(
    flax_rnn.apply(variables, x, initial_carry=carry0)[::-1],
    layer.apply({'params': params}, x, carry=carry0),
    atol=1e-5,
  )
  chex.assert_trees_all_close(flax_rnn.apply(variables, x[None])[1][0], y_scan, atol=1e-5)


@pytest.mark.parametrize('cell', CELLS)
def test_flax_rnn_with_our_cell_has_our_scans_gradients(cell):
  layer, params, x = _layer(cell)
  params = _nonzero(params)
  w_BxTxH = jax.random.normal(jax.random.key(8), (B, T, H))

  def loss(apply_fn):
    def f(p, x):
      y, carry = apply_fn(p, x)
      return jnp.sum(y * w_BxTxH) + jnp.sum(carry[0])  # c for the LSTM, h for the GRU.

    return jax.jit(jax.grad(f, argnums=(0, 1)))

  g_scan = loss(lambda p, x: layer.apply({'params': p}, x))(params, x)
  flax_rnn = _flax_rnn(cell, return_carry=True)
  g_flax = loss(lambda p, x: flax_rnn.apply({'params': {'cell': p}}, x)[::-1])(params, x)
  chex.assert_trees_all_equal_structs(g_flax, g_scan)
  chex.assert_trees_all_close(g_flax, g_scan, atol=1e-5)


@pytest.mark.parametrize('cell', CELLS)
def test_flax_bidirectional_with_seq_lengths_equals_our_masked_layer(cell):
  bi = rnn.Bidirectional(cell, H)
  x = jax.random.normal(jax.random.key(0), (B, T, D))
  params = _nonzero(bi.init(jax.random.key(1), x)['params'])
  lengths = np.array([T, 4])
  mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)
  y, (fwd, bwd) = bi.apply({'params': params}, x, mask)
  flax_bi = nn.Bidirectional(_flax_rnn(cell), _flax_rnn(cell), return_carry=True)
  (fwd_f, bwd_f), y_f = flax_bi.apply(
    {
      'params': {
        'forward_rnn': {'cell': params['forward']},
        'backward_rnn': {'cell': params['backward']},
      }
    },
    x,
    seq_lengths=lengths,
  )
  # nn.RNN does not zero the outputs of padded steps; ours does.
  chex.assert_trees_all_close(y_f * mask[..., None], y, atol=1e-5)
  chex.assert_trees_all_close((fwd_f, bwd_f), (fwd, bwd), atol=1e-5)


def test_cell_carry_and_feature_axes_follow_flax_protocol():
  lstm, gru = rnn.RecurrentCell('lstm', H), rnn.RecurrentCell('gru', H)
  assert isinstance(lstm, nn.RNNCellBase) and lstm.num_feature_axes == 1
  carry = lstm.initialize_carry(jax.random.key(0), (3, B, D))
  chex.assert_trees_all_equal(carry, (jnp.zeros((3, B, H)),) * 2)
  chex.assert_trees_all_equal(
    gru.initialize_carry(jax.random.key(0), (B, D)), recurrence.zero_carry('gru', B, H)
  )
  with pytest.raises(ValueError, match='unknown cell'):
    rnn.RecurrentCell('rnn', H).initialize_carry(jax.random.key(0), (B, D))


@pytest.mark.parametrize('cell', CELLS)
@pytest.mark.parametrize('length', [12, 3])
def test_embedded_ids_equal_projecting_the_gathered_rows(cell, length):
  """Ids into a table give the values and gradients of the gathered rows as inputs:
  on CPU through the projected table where B*T >= V (length 12), gathering first
  where not (length 3) and on other platforms."""
  layer, params, _ = _layer(cell)
  table = jax.random.normal(jax.random.key(5), (V, D))
  ids = jax.random.randint(jax.random.key(6), (B, length), 0, V)
  mask = jnp.ones((B, length)).at[1, -1].set(0.0)
  weights = jax.random.normal(jax.random.key(7), (B, length, H))
  via_ids = lambda p, t: layer.apply({'params': p}, rnn.EmbeddedIds(t, ids), mask)[0]
  via_rows = lambda p, t: layer.apply({'params': p}, t[ids], mask)[0]
  chex.assert_trees_all_close(via_ids(params, table), via_rows(params, table), atol=1e-5)
  grads = [
    jax.grad(lambda p, t, f=f: jnp.sum(f(p, t) * weights), argnums=(0, 1))(params, table)
    for f in (via_ids, via_rows)
  ]
  chex.assert_trees_all_close(grads[0], grads[1], atol=1e-5)
  gates = recurrence.NUM_GATES[cell] * H
  table_projection = re.compile(rf'stablehlo\.dot_general .* -> tensor<{V}x{gates}xf32>')
  text = {
    p: jax.export.export(jax.jit(via_ids), platforms=[p])(params, table).mlir_module()
    for p in ('cpu', 'cuda', 'tpu')
  }
  assert bool(table_projection.search(text['cpu'])) == (B * length >= V)
  assert not table_projection.search(text['cuda']) and not table_projection.search(text['tpu'])


def _lm(cell='lstm', layers=2):
  cfg = rnn.CharLMConfig(vocab_size=V, embed_dim=8, hidden_dim=16, num_layers=layers, cell=cell)
  model = rnn.CharLM(cfg)
  tokens = jax.random.randint(jax.random.key(3), (B, 12), 0, V)
  params = model.init(jax.random.key(4), tokens, train=False)['params']
  return model, params, tokens


@pytest.mark.parametrize('cell', CELLS)
def test_carried_state_continues_the_text(cell):
  model, params, tokens = _lm(cell)
  full, _ = model.apply({'params': params}, tokens, train=False)
  first, carry = model.apply({'params': params}, tokens[:, :5], train=False)
  second, _ = model.apply({'params': params}, tokens[:, 5:], train=False, carry=carry)
  chex.assert_trees_all_close(full, jnp.concatenate([first, second], 1), atol=1e-5)


def test_dropout_only_in_training():
  cfg = rnn.CharLMConfig(vocab_size=V, embed_dim=8, hidden_dim=16, dropout_rate=0.5)
  model = rnn.CharLM(cfg)
  tokens = jnp.ones((B, 4), jnp.int32)
  params = model.init(jax.random.key(0), tokens, train=False)['params']
  ev = lambda: model.apply({'params': params}, tokens, train=False)[0]
  tr = lambda k: model.apply(
    {'params': params}, tokens, train=True, rngs={'dropout': jax.random.key(k)}
  )[0]
  chex.assert_trees_all_equal(ev(), ev())
  assert not np.allclose(tr(0), tr(1))


def test_unknown_cell_is_rejected():
  with pytest.raises(ValueError, match='unknown cell'):
    recurrence.zero_carry('rnn', 1, 2)


# ---------------------------------------------------------------------------
# The fused-gradient recurrence (`scan_fused_grad`, CPU's path) against autodiff.

# Ragged and holed padding: full, right-padded, holes, and an all-padding row.
MASK_4xT = np.array([[1] * T, [1] * 4 + [0] * (T - 4), [0, 1, 1, 0, 1, 0, 1], [0] * T], np.float32)


def _layer_loss(cell, scan_fn, monkeypatch, **kw):
  """loss(params, x, carry) of a `Recurrent` layer traced with `scan_fn`, and its args.

  The loss weighs every output and the final carry with fixed random weights, so each
  gets a distinct cotangent.
  """
  monkeypatch.setattr(recurrence, 'scan_recurrence', scan_fn)
  b = MASK_4xT.shape[0]
  layer = rnn.Recurrent(cell, H, **kw)
  x = jax.random.normal(jax.random.key(0), (b, T, D))
  params = _nonzero(layer.init(jax.random.key(1), x)['params'])
  carry = tuple(
    jax.random.normal(jax.random.key(2 + i), (b, H)) for i in range(2 if cell == 'lstm' else 1)
  )
  wy = jax.random.normal(jax.random.key(7), (b, T, H))
  wc = jax.random.normal(jax.random.key(8), (b, H))

  def loss(params, x, carry, mask):
    y, last = layer.apply({'params': params}, x, mask, carry)
    return jnp.sum(y * wy) + sum(jnp.sum(c * wc * (i + 1)) for i, c in enumerate(last))

  return loss, (params, x, carry)


FUSED_CASES = {
  'plain': dict(),
  'ragged_mask': dict(mask=True),
  'reverse': dict(reverse=True, mask=True),
  'unroll2': dict(unroll=2, mask=True),
}


@pytest.mark.parametrize('case', FUSED_CASES)
@pytest.mark.parametrize('cell', CELLS)
def test_fused_gradient_equals_autodiff(cell, case, monkeypatch):
  kw = dict(FUSED_CASES[case])
  mask = jnp.asarray(MASK_4xT) if kw.pop('mask', False) else None
  results = []
  for scan_fn in (recurrence.scan_autodiff, recurrence.scan_fused_grad):
    loss, args = _layer_loss(cell, scan_fn, monkeypatch, **kw)
    results.append(jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(*args, mask))
  (value, grads), (fused_value, fused_grads) = results
  chex.assert_trees_all_close(fused_value, value, rtol=1e-5)
  # Gradients w.r.t. w_ih, w_hh, b_ih (b_hh), the inputs and the initial carry.
  chex.assert_trees_all_close(fused_grads, grads, atol=1e-5, rtol=1e-5)
  chex.assert_tree_all_finite(fused_grads)
  assert float(jnp.abs(fused_grads[0]['w_hh']).min()) > 0.0


@pytest.mark.parametrize('cell', CELLS)
def test_fused_gradient_in_bfloat16_keeps_the_forward_and_is_close(cell, monkeypatch):
  mask = jnp.asarray(MASK_4xT)
  results = []
  for scan_fn in (recurrence.scan_autodiff, recurrence.scan_fused_grad):
    loss, args = _layer_loss(cell, scan_fn, monkeypatch, dtype=jnp.bfloat16)
    results.append(jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(*args, mask))
  (value, grads), (fused_value, fused_grads) = results
  # The same casts in the forward. The gradients agree but for dw_hh and db_hh, summed
  # over time and batch in float32 here and in bfloat16 steps by autodiff: ~1 bf16 ulp.
  chex.assert_trees_all_close(fused_value, value, rtol=1e-6)
  chex.assert_trees_all_equal_dtypes(fused_grads, grads)
  chex.assert_trees_all_close(fused_grads, grads, atol=0.03, rtol=0.01)


@pytest.mark.parametrize('cell', CELLS)
def test_bfloat16_recurrent_matmuls_accumulate_in_float32(cell, monkeypatch):
  """In bfloat16 the per-step (B, H) x (H, G) matmul and its (B, G) x (G, H) cotangent
  take bf16 operands and give float32: XLA:CPU runs those natively, while a bf16
  result makes it convert both operands to float32 (slower than float32 throughout)."""
  loss, args = _layer_loss(cell, recurrence.scan_fused_grad, monkeypatch, dtype=jnp.bfloat16)
  text = jax.jit(jax.grad(loss)).lower(*args, jnp.asarray(MASK_4xT)).as_text()
  dots = re.findall(
    r'stablehlo\.dot_general .*: \(tensor<(\w+)>, tensor<(\w+)>\) -> '
    r'tensor<(\w+)>',
    text,
  )
  b, g = MASK_4xT.shape[0], recurrence.NUM_GATES[cell] * H
  recurrent = [
    d
    for d in dots
    if d[:2] in ((f'{b}x{H}xbf16', f'{H}x{g}xbf16'), (f'{b}x{g}xbf16', f'{g}x{H}xbf16'))
  ]
  assert sorted(set(recurrent)) == [
    (f'{b}x{g}xbf16', f'{g}x{H}xbf16', f'{b}x{H}xf32'),
    (f'{b}x{H}xbf16', f'{H}x{g}xbf16', f'{b}x{g}xf32'),
  ]


def test_layer_on_cpu_takes_the_fused_gradient(monkeypatch):
  """`Recurrent` calls `scan_recurrence`, whose CPU branch is `scan_fused_grad`."""
  calls = []
  fused = recurrence.scan_fused_grad
  monkeypatch.setattr(recurrence, 'scan_fused_grad', lambda *a: calls.append(1) or fused(*a))
  loss, args = _layer_loss('gru', recurrence.scan_recurrence, monkeypatch)
  jax.grad(loss)(*args, None)
  assert calls
