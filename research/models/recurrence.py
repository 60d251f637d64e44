"""The LSTM and GRU recurrence: cell steps and the scan over time, with its gradient.

Dimension key: B batch, T time steps, D layer input width, H hidden width,
G gates x H (4H for the LSTM, 3H for the GRU).

`scan_recurrence` runs one layer's recurrence over precomputed input projections
(xg = x @ w_ih + b_ih, one matmul for all steps, made by the caller); the scan body
carries only the recurrent (B, H) x (H, G) matmul. On CPU its gradient is
`scan_fused_grad`'s: the backward scan carries only the carry cotangents, and the
gradient of w_hh is one (H, T*B) x (T*B, G) matmul after it (JAX's autodiff, kept on
other platforms, accumulates it with a matmul per step; `research.platform_policy`
makes the choice).

Parameters per layer (gate arithmetic, one bias per gate for the LSTM as in Flax,
input and recurrent biases for the GRU as in PyTorch, whose reset gate multiplies the
recurrent term including its bias):
  LSTM: 4 * (D*H + H*H + H)        GRU: 3 * (D*H + H*H + 2*H)

Padding: a step whose mask is 0 leaves the carry unchanged and outputs zeros, so a
padded step is the same as no step at all, in either direction and for any pattern
of padding (right-padding is the usual one).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research import platform_policy

CELLS = ('lstm', 'gru')
NUM_GATES = {'lstm': 4, 'gru': 3}

# A layer's carry is a tuple of float32 (B, H) arrays: (c, h) for the LSTM, (h,) for
# the GRU. A model's carry is a tuple of its layers' carries.
Carry = tuple[jax.Array, ...]


def check_cell(cell: str) -> None:
  """Raises ValueError for a cell type other than 'lstm' or 'gru'."""
  if cell not in CELLS:
    raise ValueError(f'unknown cell {cell!r}: use one of {CELLS}')


def zero_carry(cell: str, batch_size: int, hidden_dim: int) -> Carry:
  """The initial (all-zero, float32) carry of one layer."""
  check_cell(cell)
  n = 2 if cell == 'lstm' else 1
  return tuple(jnp.zeros((batch_size, hidden_dim), jnp.float32) for _ in range(n))


def num_cell_params(cell: str, input_dim: int, hidden_dim: int) -> int:
  """Parameters of one recurrent layer, from the gate formulas above."""
  d, h = input_dim, hidden_dim
  return 4 * (d * h + h * h + h) if cell == 'lstm' else 3 * (d * h + h * h + 2 * h)


def _lstm_forward(
  carry: Carry, xg_BxG: jax.Array, hg_BxG: jax.Array
) -> tuple[Carry, tuple[jax.Array, ...]]:
  """`lstm_cell` and the float32 gate activations its gradient needs (ifo_Bx3H, g_BxH)."""
  c_BxH, _ = carry
  pre_BxG = (xg_BxG + hg_BxG).astype(jnp.float32)
  h = c_BxH.shape[-1]
  # One sigmoid over the three contiguous sigmoid gates (fewer, larger kernels).
  # `...` lets `RecurrentCell` run it with any number of batch axes.
  ifo_Bx3H = nn.sigmoid(pre_BxG[..., : 3 * h])
  g_BxH = jnp.tanh(pre_BxG[..., 3 * h :])
  i, f, o = ifo_Bx3H[..., :h], ifo_Bx3H[..., h : 2 * h], ifo_Bx3H[..., 2 * h :]
  c_BxH = f * c_BxH + i * g_BxH
  return (c_BxH, o * jnp.tanh(c_BxH)), (ifo_Bx3H, g_BxH)


def _gru_forward(
  carry: Carry, xg_BxG: jax.Array, hg_BxG: jax.Array
) -> tuple[Carry, tuple[jax.Array, ...]]:
  """`gru_cell` and the float32 values its gradient needs (r, z, n, hn), each (B, H)."""
  (h_BxH,) = carry
  xr, xz, xn = jnp.split(xg_BxG.astype(jnp.float32), 3, axis=-1)
  hr, hz, hn = jnp.split(hg_BxG.astype(jnp.float32), 3, axis=-1)
  r = nn.sigmoid(xr + hr)
  z = nn.sigmoid(xz + hz)
  n = jnp.tanh(xn + r * hn)
  return ((1.0 - z) * n + z * h_BxH,), (r, z, n, hn)


def lstm_cell(carry: Carry, xg_BxG: jax.Array, hg_BxG: jax.Array) -> Carry:
  """One LSTM step from the input and recurrent gate pre-activations (i, f, o, g).

  Args:
    carry: float32 (c, h), each (B, H).
    xg_BxG: input pre-activations, the compute dtype.
    hg_BxG: recurrent pre-activations, the compute dtype.

  Returns:
    the new float32 carry (c, h).
  """
  return _lstm_forward(carry, xg_BxG, hg_BxG)[0]


def gru_cell(carry: Carry, xg_BxG: jax.Array, hg_BxG: jax.Array) -> Carry:
  """One GRU step from the input and recurrent pre-activations (r, z, n).

  The reset gate multiplies the whole recurrent term hn, its bias included.

  Args:
    carry: float32 (h,), (B, H).
    xg_BxG: input pre-activations, the compute dtype.
    hg_BxG: recurrent pre-activations (with b_hh), the compute dtype.

  Returns:
    the new float32 carry (h,).
  """
  return _gru_forward(carry, xg_BxG, hg_BxG)[0]


_CELL_FORWARD = {'lstm': _lstm_forward, 'gru': _gru_forward}


def _dot_f32(a_BxK: jax.Array, b_KxN: jax.Array) -> jax.Array:
  """(B, N) float32 product of two same-dtype matrices, accumulated in float32.

  For float32 operands this is the plain product. For bfloat16 ones XLA:CPU then runs
  its native bf16 matmul kernels, which it has only for a float32 result: a bfloat16
  result makes it convert both operands to float32 first.
  """
  return jnp.dot(a_BxK, b_KxN, preferred_element_type=jnp.float32)


def _recurrent_forward(
  cell: str, carry: Carry, xg_BxG: jax.Array, w_hh: jax.Array, b_hh: jax.Array, dtype: Any
) -> tuple[Carry, tuple[jax.Array, ...]]:
  """`recurrent_step` and the cell's float32 residuals for the gradient."""
  hg_BxG = _dot_f32(carry[-1].astype(dtype), w_hh.astype(dtype)) + b_hh.astype(jnp.float32)
  return _CELL_FORWARD[cell](carry, xg_BxG, hg_BxG)


def recurrent_step(
  cell: str, carry: Carry, xg_BxG: jax.Array, w_hh: jax.Array, b_hh: jax.Array, dtype: Any
) -> Carry:
  """One step from the projected input: adds the recurrent term, applies the cell."""
  return _recurrent_forward(cell, carry, xg_BxG, w_hh, b_hh, dtype)[0]


def _lstm_backward(
  dnew: Carry, prev: Carry, res: tuple[jax.Array, ...]
) -> tuple[Carry, jax.Array, jax.Array]:
  """Cotangents through one LSTM cell (float32).

  Args:
    dnew: cotangents (dc, dh) of the new carry, zero at padded steps.
    prev: the carry (c, h) the step started from.
    res: `_lstm_forward`'s (ifo_Bx3H, g_BxH).

  Returns:
    the cotangents of `prev` that skip the recurrent matmul, of xg_BxG and of hg_BxG
    (the same array: pre = xg + hg).
  """
  dc, dh = dnew
  ifo_Bx3H, g_BxH = res
  h = g_BxH.shape[-1]
  i, f, o = ifo_Bx3H[:, :h], ifo_Bx3H[:, h : 2 * h], ifo_Bx3H[:, 2 * h :]
  tc_BxH = jnp.tanh(f * prev[0] + i * g_BxH)
  dc = dc + dh * o * (1.0 - tc_BxH * tc_BxH)
  difo_Bx3H = jnp.concatenate([dc * g_BxH, dc * prev[0], dh * tc_BxH], axis=-1)
  dpre_BxG = jnp.concatenate(
    [difo_Bx3H * ifo_Bx3H * (1.0 - ifo_Bx3H), dc * i * (1.0 - g_BxH * g_BxH)], axis=-1
  )
  return (dc * f, jnp.zeros_like(dh)), dpre_BxG, dpre_BxG


def _gru_backward(
  dnew: Carry, prev: Carry, res: tuple[jax.Array, ...]
) -> tuple[Carry, jax.Array, jax.Array]:
  """Cotangents through one GRU cell (float32); arguments and results as `_lstm_backward`'s.

  xg and hg differ in their n block: n = tanh(xn + r * hn).
  """
  (dh,) = dnew
  r, z, n, hn = res
  dan = dh * (1.0 - z) * (1.0 - n * n)
  dar = dan * hn * r * (1.0 - r)
  daz = dh * (prev[0] - n) * z * (1.0 - z)
  dxg_BxG = jnp.concatenate([dar, daz, dan], axis=-1)
  dhg_BxG = jnp.concatenate([dar, daz, dan * r], axis=-1)
  return (dh * z,), dxg_BxG, dhg_BxG


_CELL_BACKWARD = {'lstm': _lstm_backward, 'gru': _gru_backward}


def scan_autodiff(
  cell: str,
  reverse: bool,
  unroll: int,
  dtype: Any,
  xg_TxBxG: jax.Array,
  m_TxBx1: jax.Array,
  w_hh: jax.Array,
  b_hh: jax.Array,
  carry: Carry,
) -> tuple[Carry, jax.Array]:
  """A layer's recurrence as a plain `lax.scan`, differentiated by JAX's autodiff.

  Args:
    cell: 'lstm' or 'gru'.
    reverse: run from the last step to the first.
    unroll: time steps per scan iteration.
    dtype: compute dtype of the recurrent matmul.
    xg_TxBxG: the input projections (with b_ih), in `dtype`.
    m_TxBx1: bool, True for real steps.
    w_hh: (H, G), `dtype`.
    b_hh: (G,), `dtype` (zero for the LSTM).
    carry: the float32 initial carry.

  Returns:
    the float32 carry after the last real step and float32 outputs (T, B, H), zero at
    padded steps.
  """

  def step(carry, xs):
    xg_BxG, m_Bx1 = xs
    new = recurrent_step(cell, carry, xg_BxG, w_hh, b_hh, dtype)
    new = tuple(jnp.where(m_Bx1, n, c) for n, c in zip(new, carry, strict=True))
    return new, jnp.where(m_Bx1, new[-1], 0.0)

  return jax.lax.scan(step, carry, (xg_TxBxG, m_TxBx1), reverse=reverse, unroll=unroll)


def _fused_forward(cell, reverse, unroll, dtype, xg_TxBxG, m_TxBx1, w_hh, b_hh, carry):
  """`scan_autodiff`'s forward pass, saving every step's input carry and cell residuals."""

  def step(carry, xs):
    xg_BxG, m_Bx1 = xs
    new, res = _recurrent_forward(cell, carry, xg_BxG, w_hh, b_hh, dtype)
    new = tuple(jnp.where(m_Bx1, n, c) for n, c in zip(new, carry, strict=True))
    return new, (jnp.where(m_Bx1, new[-1], 0.0), carry, res)

  last, (h_TxBxH, prev_T, res_T) = jax.lax.scan(
    step, carry, (xg_TxBxG, m_TxBx1), reverse=reverse, unroll=unroll
  )
  return (last, h_TxBxH), (m_TxBx1, w_hh, b_hh, prev_T, res_T)


def _hh_gradients(
  cell: str, h_TxBxH: jax.Array, dxg_TxBxG: jax.Array, res_T: tuple[jax.Array, ...], dtype: Any
) -> tuple[jax.Array, jax.Array]:
  """float32 dw_hh (H, G) and db_hh (G,) from every step's input h and gate cotangents.

  The LSTM's recurrent cotangent is its input one; the GRU's n block is r times it
  (r_TxBxH is the first residual), so the loop need not emit a second (T, B, G) array.
  """
  if cell == 'lstm':
    blocks = [dxg_TxBxG]
  else:
    h = h_TxBxH.shape[-1]
    blocks = [dxg_TxBxG[..., : 2 * h], (dxg_TxBxG[..., 2 * h :] * res_T[0]).astype(dtype)]
  h_TxBxH = h_TxBxH.astype(dtype)
  # One (H, T*B) x (T*B, G) matmul per block, not one (H, B) x (B, G) per step.
  dw_hh = [
    jnp.einsum('tbh,tbg->hg', h_TxBxH, d, preferred_element_type=jnp.float32) for d in blocks
  ]
  db_hh = [jnp.sum(d, axis=(0, 1), dtype=jnp.float32) for d in blocks]
  return jnp.concatenate(dw_hh, axis=-1), jnp.concatenate(db_hh, axis=-1)


def _fused_backward(cell, reverse, unroll, dtype, saved, cotangents):
  """The carry cotangents in a scan, then dw_hh and db_hh after it (`_hh_gradients`)."""
  m_TxBx1, w_hh, b_hh, prev_T, res_T = saved
  dlast, dh_TxBxH = cotangents
  w_hh_t = w_hh.T

  def step(dcarry, xs):
    dy_BxH, m_Bx1, prev, res = xs
    dnew = dcarry[:-1] + (dcarry[-1] + dy_BxH,)
    dnew = tuple(jnp.where(m_Bx1, d, 0.0) for d in dnew)
    dprev, dxg_BxG, dhg_BxG = _CELL_BACKWARD[cell](dnew, prev, res)
    dh_mm_BxH = _dot_f32(dhg_BxG.astype(dtype), w_hh_t)
    dprev = dprev[:-1] + (dprev[-1] + dh_mm_BxH,)
    dprev = tuple(jnp.where(m_Bx1, p, d) for p, d in zip(dprev, dcarry, strict=True))
    return dprev, dxg_BxG

  dcarry, dxg_TxBxG = jax.lax.scan(
    step, dlast, (dh_TxBxH, m_TxBx1, prev_T, res_T), reverse=not reverse, unroll=unroll
  )
  # Cast once here: XLA:CPU stacks a bfloat16 output per step slowly.
  dxg_TxBxG = dxg_TxBxG.astype(dtype)
  dw_hh, db_hh = _hh_gradients(cell, prev_T[-1], dxg_TxBxG, res_T, dtype)
  return dxg_TxBxG, None, dw_hh.astype(w_hh.dtype), db_hh.astype(b_hh.dtype), dcarry


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def scan_fused_grad(
  cell: str,
  reverse: bool,
  unroll: int,
  dtype: Any,
  xg_TxBxG: jax.Array,
  m_TxBx1: jax.Array,
  w_hh: jax.Array,
  b_hh: jax.Array,
  carry: Carry,
) -> tuple[Carry, jax.Array]:
  """`scan_autodiff` with a hand-written gradient that suits XLA:CPU.

  Autodiff of the scan accumulates the gradient of the loop-invariant w_hh inside the
  backward loop: one (H, B) x (B, G) matmul and a read-modify-write of the (H, G)
  accumulator per step. Here the backward scan carries only the carry cotangents and
  emits each step's gate cotangents; dw_hh is then one (H, T*B) x (T*B, G) matmul (two
  for the GRU, whose n block differs), db_hh a sum, and the cotangent of xg_TxBxG (hence
  of the input projection, differentiated outside) is the emitted gate cotangents. The
  forward saves each step's input carry and gate activations, so the backward redoes no
  matmul.

  Arguments and results are `scan_autodiff`'s (same values, same dtypes).
  """
  return _fused_forward(cell, reverse, unroll, dtype, xg_TxBxG, m_TxBx1, w_hh, b_hh, carry)[0]


scan_fused_grad.defvjp(_fused_forward, _fused_backward)


def scan_recurrence(
  cell: str,
  reverse: bool,
  unroll: int,
  dtype: Any,
  xg_TxBxG: jax.Array,
  m_TxBx1: jax.Array,
  w_hh: jax.Array,
  b_hh: jax.Array,
  carry: Carry,
) -> tuple[Carry, jax.Array]:
  """A layer's recurrence: `scan_fused_grad` on CPU, `scan_autodiff` elsewhere.

  On cuda, rocm and tpu the program stays XLA's own autodiff of the plain scan
  (`platform_policy.on_cpu`). Arguments and results are `scan_autodiff`'s.
  """
  static = (cell, reverse, unroll, dtype)
  return platform_policy.on_cpu(
    functools.partial(scan_fused_grad, *static),
    functools.partial(scan_autodiff, *static),
    xg_TxBxG,
    m_TxBx1,
    w_hh,
    b_hh,
    carry,
  )
