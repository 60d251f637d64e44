"""LSTM and GRU layers, and a character-level language model.

Dimension key: B batch, T time steps, D layer input width, H hidden width,
G gates x H (4H for the LSTM, 3H for the GRU), V vocabulary size.

A `Recurrent` layer projects the inputs of every time step with one (B*T, D) x (D, G)
matmul, then runs `research.models.recurrence.scan_recurrence` (the cells, the scan,
its CPU gradient, the parameter arithmetic and the padding rule are documented there).

On CPU, a layer whose inputs are rows of an embedding table (`EmbeddedIds`, the
language model's first layer) projects the table instead, (V, D) x (D, G), and gathers
the projected rows: the same values, and for a character vocabulary (V much smaller
than B*T) a fraction of the matmul work in both directions (the gradient of the
gather is a scatter-add into V rows). Where V exceeds B*T, and on other platforms
(where the scatter-add's many repeated rows may cost more than the matmul saves), it
gathers the embeddings and projects them (`research.platform_policy` makes the choice).

`RecurrentCell` is the same LSTM/GRU step as a `flax.linen.RNNCellBase`, for use with
`nn.RNN`, `nn.Bidirectional` and other code written against Flax's cell protocol.
It has the same parameters (names, shapes, initialisers) as `Recurrent`, so
`nn.RNN(RecurrentCell(cell, H))` with params `{'cell': p}` computes what
`Recurrent(cell, H)` computes with `p`. `nn.RNN` projects the inputs inside its scan,
one step at a time, so `Recurrent` is the faster of the two.
"""

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from research import platform_policy
from research.models import recurrence
from research.models.recurrence import Carry


def uniform_init(init_range: float, default: Callable) -> Callable:
  """Flax initialiser: uniform in [-init_range, init_range] (Zaremba et al. 2014
  initialise every weight and bias so), or `default` where `init_range` is 0."""
  if not init_range:
    return default

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -init_range, init_range)

  return init


def _cell_params(
  module: nn.Module,
  cell: str,
  input_dim: int,
  hidden_dim: int,
  init_range: float = 0.0,
  lstm_hidden_bias: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Declares one layer's parameters on `module` (inside its compact `__call__`);
  `init_range` > 0 draws them all uniform in [-init_range, init_range].

  Returns:
    float32 (w_ih (D, G), w_hh (H, G), b_ih (G,), b_hh (G,)); the LSTM's b_hh is a
    constant zero, not a parameter, unless `lstm_hidden_bias`.
  """
  g = recurrence.NUM_GATES[cell] * hidden_dim
  init = nn.initializers
  u = functools.partial(uniform_init, init_range)
  w_ih = module.param('w_ih', u(init.lecun_normal()), (input_dim, g))
  w_hh = module.param('w_hh', u(init.orthogonal(column_axis=-1)), (hidden_dim, g))
  b_ih = module.param('b_ih', u(init.zeros_init()), (g,))
  if cell == 'gru' or lstm_hidden_bias:
    b_hh = module.param('b_hh', u(init.zeros_init()), (g,))
  else:
    b_hh = jnp.zeros((g,), jnp.float32)  # The LSTM needs one bias only.
  return w_ih, w_hh, b_ih, b_hh


class EmbeddedIds(NamedTuple):
  """A layer's inputs given as ids into an embedding table: x[b, t] = table_VxD[ids_BxT[b, t]].

  Attributes:
    table_VxD: the embedding table, any float dtype.
    ids_BxT: int ids into its rows.
  """

  table_VxD: jax.Array
  ids_BxT: jax.Array

  @property
  def shape(self) -> tuple[int, int, int]:
    """(B, T, D), the shape of the inputs the ids stand for."""
    b, t = self.ids_BxT.shape
    return b, t, self.table_VxD.shape[-1]


def _project_inputs(x_BxTxD: jax.Array, w_ih: jax.Array, b_ih: jax.Array) -> jax.Array:
  """(T, B, G) projections of (B, T, D) inputs, all one dtype.

  The input is made time-major before the projection, not its G-wide result: XLA
  otherwise writes the (T, B, G) projection through a transpose and a copy.
  """
  return jnp.einsum('tbd,dg->tbg', jnp.swapaxes(x_BxTxD, 0, 1), w_ih) + b_ih


def _project_gathered_rows(table_VxD, ids_BxT, w_ih, b_ih):
  return _project_inputs(jnp.take(table_VxD, ids_BxT, axis=0), w_ih, b_ih)


def _project_table_rows(table_VxD, ids_BxT, w_ih, b_ih):
  return jnp.take(table_VxD @ w_ih + b_ih, ids_BxT.T, axis=0)


def input_projections(
  x: jax.Array | EmbeddedIds, w_ih: jax.Array, b_ih: jax.Array, dtype: Any
) -> jax.Array:
  """Every step's input projection x @ w_ih + b_ih, time-major.

  `EmbeddedIds` inputs project the table and gather its projected rows on CPU where
  V <= B*T; other platforms, and larger tables, gather the rows and project them
  (`platform_policy.on_cpu`).

  Args:
    x: inputs (B, T, D), or `EmbeddedIds` whose rows are the inputs.
    w_ih: (D, G).
    b_ih: (G,).
    dtype: compute dtype of the matmul and of the result.

  Returns:
    (T, B, G) projections in `dtype`.
  """
  w_ih, b_ih = w_ih.astype(dtype), b_ih.astype(dtype)
  if not isinstance(x, EmbeddedIds):
    return _project_inputs(x.astype(dtype), w_ih, b_ih)
  table_VxD, ids_BxT = x.table_VxD.astype(dtype), x.ids_BxT
  if table_VxD.shape[0] > ids_BxT.size:
    return _project_gathered_rows(table_VxD, ids_BxT, w_ih, b_ih)
  return platform_policy.on_cpu(
    _project_table_rows, _project_gathered_rows, table_VxD, ids_BxT, w_ih, b_ih
  )


class Recurrent(nn.Module):
  """One LSTM or GRU layer over a whole sequence (a `lax.scan` over time).

  Attributes:
    cell: 'lstm' or 'gru'.
    hidden_dim: H.
    reverse: run from the last step to the first (the backward half of a
      bidirectional layer); padded steps are skipped either way.
    unroll: time steps per scan iteration (a speed knob; same results).
    dtype: compute dtype of the matmuls; gates, carry and outputs are float32.
    init_range: > 0: every parameter uniform in [-init_range, init_range]
      (0: the default initialisers).
    lstm_hidden_bias: give the LSTM a second bias vector, b_hh, on the recurrent
      projection, as Torch's and PyTorch's LSTMs have. The gates see b_ih + b_hh:
      the same function as one bias, but initialised as a sum of two draws and, as
      both get the same gradient, moved twice as far by SGD.
  """

  cell: str
  hidden_dim: int
  reverse: bool = False
  unroll: int = 1
  dtype: Any = jnp.float32
  init_range: float = 0.0
  lstm_hidden_bias: bool = False

  @nn.compact
  def __call__(
    self,
    x_BxTxD: jax.Array | EmbeddedIds,
    mask_BxT: jax.Array | None = None,
    carry: Carry | None = None,
  ) -> tuple[jax.Array, Carry]:
    """Runs the layer.

    Args:
      x_BxTxD: inputs, or `EmbeddedIds` (B, T ids into a (V, D) table).
      mask_BxT: 1 for real steps, 0 for padding (None: all real).
      carry: the initial carry (None: zeros), e.g. the last one of the previous
        window for truncated backpropagation through time.

    Returns:
      float32 outputs (B, T, H), zero at padded steps, and the carry after the last
      real step.
    """
    recurrence.check_cell(self.cell)
    b, t, d = x_BxTxD.shape
    w_ih, w_hh, b_ih, b_hh = _cell_params(
      self, self.cell, d, self.hidden_dim, self.init_range, self.lstm_hidden_bias
    )
    if carry is None:
      carry = recurrence.zero_carry(self.cell, b, self.hidden_dim)
    if mask_BxT is None:
      mask_BxT = jnp.ones((b, t), jnp.float32)

    # All input projections at once, time-major for the scan.
    xg_TxBxG = input_projections(x_BxTxD, w_ih, b_ih, self.dtype)
    m_TxBx1 = jnp.swapaxes(mask_BxT, 0, 1)[..., None] > 0
    w_hh = w_hh.astype(self.dtype)
    b_hh = b_hh.astype(self.dtype)

    last, h_TxBxH = recurrence.scan_recurrence(
      self.cell, self.reverse, self.unroll, self.dtype, xg_TxBxG, m_TxBx1, w_hh, b_hh, carry
    )
    return jnp.swapaxes(h_TxBxH, 0, 1), last


class RecurrentCell(nn.RNNCellBase):
  """One LSTM or GRU step behind Flax's cell protocol, for `flax.linen.RNN`.

  The parameter tree is `Recurrent`'s (w_ih (D, G), w_hh (H, G), b_ih (G,), and
  b_hh (G,) for the GRU) and the step is the same computation, so

      params = Recurrent('lstm', H).init(key, x_BxTxD)['params']
      nn.RNN(RecurrentCell('lstm', H)).apply({'params': {'cell': params}}, x_BxTxD)

  equals `Recurrent('lstm', H).apply({'params': params}, x_BxTxD)[0]`; the other way
  round, `nn.RNN(...).init(...)['params']['cell']` serves `Recurrent`. The carry is
  the same tuple of float32 arrays: (c, h) for the LSTM, (h,) for the GRU, each
  (*batch, H); the output of a step is h.
  `nn.RNN(..., seq_lengths=...)` gives `Recurrent`'s outputs on the real steps (its
  padded outputs are not zeroed) and, with `return_carry=True`, the same carry.

  Attributes:
    cell: 'lstm' or 'gru'.
    hidden_dim: H.
    dtype: compute dtype of the matmuls; gates, carry and outputs are float32.
  """

  cell: str
  hidden_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, carry: Carry, x_BxD: jax.Array) -> tuple[Carry, jax.Array]:
    """One step.

    Args:
      carry: the layer's carry, float32 arrays (*batch, H).
      x_BxD: the inputs of this step, (*batch, D).

    Returns:
      the new carry and the float32 output h (*batch, H).
    """
    recurrence.check_cell(self.cell)
    w_ih, w_hh, b_ih, b_hh = _cell_params(self, self.cell, x_BxD.shape[-1], self.hidden_dim)
    xg_BxG = x_BxD.astype(self.dtype) @ w_ih.astype(self.dtype) + b_ih.astype(self.dtype)
    carry = recurrence.recurrent_step(self.cell, carry, xg_BxG, w_hh, b_hh, self.dtype)
    return carry, carry[-1]

  @nn.nowrap
  def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Carry:
    """The all-zero float32 carry for inputs of shape (*batch, D); `rng` is unused."""
    del rng
    recurrence.check_cell(self.cell)
    shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
    n = 2 if self.cell == 'lstm' else 1
    return tuple(jnp.zeros(shape, jnp.float32) for _ in range(n))

  @property
  def num_feature_axes(self) -> int:
    """Inputs have one feature axis (D)."""
    return 1


class Bidirectional(nn.Module):
  """A forward and a backward `Recurrent` layer; outputs concatenated (B, T, 2H).

  For encoders: the output at step t sees the whole (unpadded) sequence.
  """

  cell: str
  hidden_dim: int
  unroll: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
    self, x_BxTxD: jax.Array, mask_BxT: jax.Array | None = None
  ) -> tuple[jax.Array, tuple[Carry, Carry]]:
    """Returns float32 outputs (B, T, 2H) and the (forward, backward) final carries."""
    layer = functools.partial(
      Recurrent, self.cell, self.hidden_dim, unroll=self.unroll, dtype=self.dtype
    )
    fwd_BxTxH, fwd_carry = layer(name='forward')(x_BxTxD, mask_BxT)
    bwd_BxTxH, bwd_carry = layer(reverse=True, name='backward')(x_BxTxD, mask_BxT)
    return jnp.concatenate([fwd_BxTxH, bwd_BxTxH], axis=-1), (fwd_carry, bwd_carry)


@dataclasses.dataclass(frozen=True)
class CharLMConfig:
  """Hyperparameters of the character-level recurrent language model.

  Attributes:
    vocab_size: V, including the special ids of `research.data.tokenizers`.
    embed_dim: width of the character embedding.
    hidden_dim: H of every recurrent layer.
    num_layers: stacked recurrent layers.
    cell: 'lstm' or 'gru'.
    dropout_rate: dropout on the outputs of every recurrent layer (between layers
      and before the output layer), training only.
    unroll: time steps per scan iteration.
    dtype: compute dtype of the matmuls; parameters stay float32, logits float32.
    init_range: > 0: every parameter (embedding, layers, output) uniform in
      [-init_range, init_range], as Zaremba et al. 2014 (0: default initialisers).
    embed_dropout: dropout (`dropout_rate`) on the embeddings too, as Zaremba et
      al.'s regularised models drop every non-recurrent connection.
    lstm_hidden_bias: a second LSTM bias per layer (see `Recurrent`), as Zaremba
      et al.'s Torch code has.
  """

  vocab_size: int
  embed_dim: int = 128
  hidden_dim: int = 512
  num_layers: int = 1
  cell: str = 'lstm'
  dropout_rate: float = 0.0
  unroll: int = 1
  dtype: Any = jnp.float32
  init_range: float = 0.0
  embed_dropout: bool = False
  lstm_hidden_bias: bool = False


def zero_lm_carry(config: CharLMConfig, batch_size: int) -> tuple[Carry, ...]:
  """The all-zero carry of every layer of the model."""
  return tuple(
    recurrence.zero_carry(config.cell, batch_size, config.hidden_dim)
    for _ in range(config.num_layers)
  )


class CharLM(nn.Module):
  """Embedding, stacked LSTM/GRU layers ('layer_0', ...), dense over the vocabulary."""

  config: CharLMConfig

  @nn.compact
  def __call__(
    self,
    tokens_BxT: jax.Array,
    *,
    train: bool,
    mask_BxT: jax.Array | None = None,
    carry: tuple[Carry, ...] | None = None,
  ) -> tuple[jax.Array, tuple[Carry, ...]]:
    """Next-character logits.

    Args:
      tokens_BxT: int32 character ids.
      train: enables dropout (needs a 'dropout' PRNG stream).
      mask_BxT: 1 for real steps, 0 for padding (None: all real).
      carry: per-layer initial carries (None: zeros); pass the returned carry back
        to continue a text across windows (truncated backpropagation through time).

    Returns:
      float32 logits (B, T, V) and the per-layer carries after the last real step.
    """
    cfg = self.config
    recurrence.check_cell(cfg.cell)
    if carry is None:
      carry = zero_lm_carry(cfg, tokens_BxT.shape[0])
    u = functools.partial(uniform_init, cfg.init_range)
    embed_init = u(nn.initializers.variance_scaling(1.0, 'fan_in', 'normal', out_axis=0))
    embed = nn.Embed(cfg.vocab_size, cfg.embed_dim, embedding_init=embed_init, name='embed')
    # The first layer reads the embedding rows through the table (`EmbeddedIds`).
    x: jax.Array | EmbeddedIds = EmbeddedIds(embed.embedding, tokens_BxT)
    if cfg.embed_dropout and train and cfg.dropout_rate:
      x = nn.Dropout(cfg.dropout_rate, deterministic=False)(embed(tokens_BxT))
    new_carry = []
    for i in range(cfg.num_layers):
      h, c = Recurrent(
        cfg.cell,
        cfg.hidden_dim,
        unroll=cfg.unroll,
        dtype=cfg.dtype,
        init_range=cfg.init_range,
        lstm_hidden_bias=cfg.lstm_hidden_bias,
        name=f'layer_{i}',
      )(x, mask_BxT, carry[i])
      x = nn.Dropout(cfg.dropout_rate, deterministic=not train)(h)
      new_carry.append(c)
    if isinstance(x, EmbeddedIds):  # No recurrent layer: the embeddings themselves.
      x = embed(tokens_BxT)
    logits_BxTxV = nn.Dense(
      cfg.vocab_size,
      dtype=cfg.dtype,
      kernel_init=u(nn.linear.default_kernel_init),
      bias_init=u(nn.initializers.zeros_init()),
      name='output',
    )(x)
    return logits_BxTxV.astype(jnp.float32), tuple(new_carry)
