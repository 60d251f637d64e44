"""The platform policy: its rules, and CPU paths that reach CPU programs only.

`research.platform_policy` makes every platform-specific choice of the library. Its
host-side rules are tested on platform names ('cpu', 'gpu', 'tpu'); its traced
choice, `on_cpu`, by exporting programs with `jax.export` for cpu, cuda and tpu (no
accelerator needed): the models' CPU branches are marked and must appear in the cpu
program only. tests/test_lowering.py checks what each branch computes.
"""

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research import platform_policy
from research.errors import UserInputError
from research.models import cnn
from research.models import rnn
from research.train import optimizers
from research.train import parallel
from research.train import state as state_lib

STEP, CONV = platform_policy.STEP_PARTS, platform_policy.CONV_PARTS
ACCELERATORS = ('cuda', 'tpu')


# ---------------------------------------------------------------------------
# Independent parts of the per-device batch.


@pytest.mark.parametrize('per_device,expected', [(64, 2), (16, 2), (14, 1), (8, 1), (33, 1)])
def test_automatic_step_microbatches_on_cpu_split_large_even_batches(per_device, expected):
  assert platform_policy.batch_parts(0, per_device, 'cpu', STEP) == expected


@pytest.mark.parametrize('per_device,expected', [(64, 8), (8, 8), (24, 8), (12, 1), (4, 1)])
def test_automatic_conv_parts_on_cpu_where_eight_divide_the_batch(per_device, expected):
  assert platform_policy.batch_parts(0, per_device, 'cpu', CONV) == expected


@pytest.mark.parametrize('platform', ['gpu', 'tpu', 'cuda', 'rocm'])
@pytest.mark.parametrize('kind', [STEP, CONV])
def test_automatic_parts_are_one_off_cpu(platform, kind):
  assert platform_policy.batch_parts(0, 64, platform, kind) == 1


@pytest.mark.parametrize('platform', ['cpu', 'gpu', 'tpu'])
@pytest.mark.parametrize('kind,requested', [(STEP, 1), (STEP, 4), (CONV, 1), (CONV, 2), (CONV, 16)])
def test_requested_parts_are_used_as_given(platform, kind, requested):
  assert platform_policy.batch_parts(requested, 64, platform, kind) == requested


def test_the_default_kind_is_step_microbatches():
  assert platform_policy.batch_parts(0, 64, 'cpu') == platform_policy.CPU_STEP_MICROBATCHES


@pytest.mark.parametrize('kind,field', [(STEP, 'microbatches'), (CONV, 'conv_parts')])
def test_invalid_requests_are_user_errors_naming_the_field(kind, field):
  with pytest.raises(
    UserInputError, match=f'{field}=5 does not divide the per-device batch of 12 examples'
  ):
    platform_policy.batch_parts(5, 12, 'cpu', kind)
  with pytest.raises(UserInputError, match=f'{field} must be >= 0'):
    platform_policy.batch_parts(-1, 12, 'gpu', kind)


def test_unknown_kind_is_rejected():
  with pytest.raises(ValueError, match='kind must be one of'):
    platform_policy.batch_parts(0, 64, 'cpu', 'layers')


def test_split_loss_runs_in_two_programs_on_cpu_only():
  assert platform_policy.splits_loss_steps('cpu')
  assert not any(platform_policy.splits_loss_steps(p) for p in ('gpu', 'tpu', 'rocm'))


# ---------------------------------------------------------------------------
# `on_cpu`: resolved when lowered.


def _exported(fn, platform, *args) -> str:
  return jax.export.export(jax.jit(fn), platforms=[platform])(*args).mlir_module()


def test_on_cpu_keeps_one_branch_per_platform():
  fn = lambda x: platform_policy.on_cpu(jnp.sin, jnp.cos, x)
  x = jnp.linspace(0.0, 1.0, 8)
  cpu = _exported(fn, 'cpu', x)
  assert 'stablehlo.sine' in cpu and 'stablehlo.cosine' not in cpu
  for platform in ACCELERATORS:
    text = _exported(fn, platform, x)
    assert 'stablehlo.cosine' in text and 'stablehlo.sine' not in text, platform
  assert 'conditional(' not in jax.jit(fn).lower(x).compile().as_text()
  chex.assert_trees_all_equal(jax.jit(fn)(x), jnp.sin(x))  # Run here, on CPU.


def test_steps_are_unrolled_on_cpu_only_where_they_convolve():
  x, w = jnp.ones((1, 2, 8, 8)), jnp.ones((2, 2, 3, 3))
  conv = lambda x: jax.lax.conv(x, w, (1, 1), 'SAME').sum()
  matmul = lambda x: (x.reshape(16, 8) @ x.reshape(8, 16)).sum()
  # Found in a gradient inside a remat inside a scan inside a jit.
  nested = lambda f: jax.jit(
    lambda x: jax.lax.scan(lambda c, _: (jax.checkpoint(jax.grad(f))(c), None), x, None, 2)[0]
  )
  assert platform_policy.unrolls_steps_on_cpu(nested(conv), x)
  assert not platform_policy.unrolls_steps_on_cpu(nested(matmul), x)


# Every CPU branch of the models' and drivers' `on_cpu` calls gets a marker on its
# outputs: a float32 `reduce_precision` to float32's own precision (same values), an
# op none of these programs has otherwise.
_MARKER = 'stablehlo.reduce_precision'


def _mark(y):
  if not jnp.issubdtype(y.dtype, jnp.floating):
    return y
  return jax.lax.reduce_precision(y, exponent_bits=8, mantissa_bits=23)


@pytest.fixture
def marked_cpu_branches(monkeypatch):
  on_cpu = platform_policy.on_cpu

  def marked(cpu_fn, default_fn, *args):
    return on_cpu(lambda *a: jax.tree.map(_mark, cpu_fn(*a)), default_fn, *args)

  monkeypatch.setattr(platform_policy, 'on_cpu', marked)


def _cnn_grad():
  model = cnn.CNN(cnn.CNNConfig(hidden_dim=8))
  x = jnp.zeros((4, 8, 8, 3))  # RGB: conv1 takes its padded CPU forward.
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))['params']
  loss = lambda p, x: model.apply({'params': p}, x, train=False).sum()
  return jax.grad(loss), (params, x)


def _char_lm_grad():
  model = rnn.CharLM(
    rnn.CharLMConfig(
      vocab_size=12, embed_dim=8, hidden_dim=8, num_layers=1, dropout_rate=0.0, cell='lstm'
    )
  )
  ids = jnp.ones((2, 6), jnp.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), ids, train=False))['params']
  loss = lambda p, ids: model.apply({'params': p}, ids, train=False)[0].sum()
  return jax.grad(loss), (params, ids)


def _conv_regression_loss(params, batch, rng, train):
  # A convolution (of each 3-vector with w), so the chunk's steps are flat on CPU.
  pred = jax.vmap(lambda x: jnp.convolve(x, params['w'], mode='valid')[0])(batch['x'])
  err = (pred - batch['y']) ** 2 * batch['mask']
  return {'loss': (err.sum(), batch['mask'].sum())}, {}


def _train_chunk():
  tx = optimizers.make_optimizer(optimizers.OptimizerConfig())
  state = jax.eval_shape(
    lambda: state_lib.init_train_state(lambda _: {'w': jnp.zeros(3)}, None, tx, jax.random.key(0))
  )
  data = {'x': np.zeros((8, 3), np.float32), 'y': np.zeros(8, np.float32)}
  chunk = functools.partial(
    parallel._train_chunk,
    loss_fn=_conv_regression_loss,  # pylint: disable=protected-access
    gather_fn=parallel.take_examples,
    axis_name=None,
    microbatches=1,
  )
  idx, mask = jnp.zeros((2, 4), jnp.int32), jnp.ones((2, 4))
  return chunk, (state, data, idx, mask, jax.random.key(1))


# Program -> the `on_cpu` calls it makes: conv1's padded forward and two max pools;
# the LSTM's projected embedding table and its scan; a chunk of 2 convolving steps, flat.
PROGRAMS = {
  'cnn_grad': (_cnn_grad, 3),
  'char_lm_grad': (_char_lm_grad, 2),
  'train_chunk': (_train_chunk, 1),
}


@pytest.mark.parametrize('name', PROGRAMS)
def test_accelerator_programs_hold_no_cpu_path(name, marked_cpu_branches):
  build, num_choices = PROGRAMS[name]
  fn, args = build()
  cpu = _exported(fn, 'cpu', *args)
  # The CPU program holds every CPU branch (so the check below can fail) ...
  assert len(re.findall(r'"stablehlo\.case"', cpu)) >= num_choices
  assert _MARKER in cpu
  # ... and the accelerators' hold none.
  for platform in ACCELERATORS:
    assert _MARKER not in _exported(fn, platform, *args), platform
