"""`attention.dot_product_attention`'s kernel choice: cuDNN's fused attention only in
programs lowered for cuda, where the inputs allow it; XLA's everywhere else.

cuDNN's kernel cannot run here; its padding of odd lengths is checked by running the
same padded computation on XLA's kernel.
"""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research import platform_policy
from research.models import attention

CUDNN_TARGETS = ('__cudnn$fmhaScaleBiasSoftmax', '__cudnn$fmhaScaleBiasSoftmaxBackward')


def _qkv(t, s, dtype=jnp.bfloat16, h=16):
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (2, t, 2, h)).astype(dtype)
  k = jax.random.normal(keys[1], (2, s, 2, h)).astype(dtype)
  v = jax.random.normal(keys[2], (2, s, 2, h)).astype(dtype)
  return q, k, v


def _padding_mask(s):
  valid = np.ones((2, s), bool)
  valid[1, s - 2 :] = False
  return attention.padding_mask(jnp.asarray(valid))


@pytest.fixture
def cudnn(monkeypatch):
  """Traces cuDNN's attention as a CUDA install would (its version check is the only
  host-side obstacle to lowering it for cuda)."""
  from jax._src.cudnn import fused_attention_stablehlo  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(fused_attention_stablehlo, 'check_cudnn_version', lambda: 90800)


def _export(implementation, platform, *args):
  fn = lambda q, k, v, m: attention.dot_product_attention(
    q, k, v, m, implementation=implementation
  ).astype(jnp.float32)
  grad = jax.jit(jax.grad(lambda *a: fn(*a).sum(), argnums=(0, 1, 2)))
  disabled = [jax.export.DisabledSafetyCheck.custom_call(t) for t in CUDNN_TARGETS]
  return jax.export.export(grad, platforms=[platform], disabled_checks=disabled)(
    *args
  ).mlir_module()


@pytest.mark.parametrize('t, s', [(8, 8), (7, 9)])
def test_auto_is_cudnn_on_cuda_only(cudnn, t, s):
  args = (*_qkv(t, s), _padding_mask(s))
  calls = set(re.findall(r'custom_call @(__cudnn\$\w+)', _export('auto', 'cuda', *args)))
  assert calls == set(CUDNN_TARGETS)  # Forward and backward.
  for platform in ('cpu', 'tpu'):
    assert '__cudnn' not in _export('auto', platform, *args)
  assert '__cudnn' not in _export('xla', 'cuda', *args)


@pytest.mark.parametrize('dtype, h', [(jnp.float32, 16), (jnp.bfloat16, 12), (jnp.bfloat16, 256)])
def test_auto_keeps_xla_where_cudnn_does_not_apply(cudnn, dtype, h):
  q, k, v = _qkv(8, 8, dtype, h)
  assert not attention.cudnn_allows(q, k)
  assert '__cudnn' not in _export('auto', 'cuda', q, k, v, _padding_mask(8))


def test_auto_keeps_xla_without_cudnn():
  # This CPU-only install has no cuDNN: not even a cuda program may name it.
  assert not platform_policy.cudnn_attention_available()
  assert '__cudnn' not in _export('auto', 'cuda', *_qkv(8, 8), _padding_mask(8))


@pytest.mark.parametrize('t, s, masked', [(7, 9, True), (7, 9, False), (5, 4, True)])
def test_cudnn_padding_of_odd_lengths_keeps_values_and_gradients(monkeypatch, t, s, masked):
  q, k, v = _qkv(t, s, jnp.float32)
  mask = _padding_mask(s) if masked else None

  def loss(fn, q, k, v):
    return jnp.sum(jnp.sin(fn(q, k, v, mask)))

  reference = jax.value_and_grad(lambda *a: loss(attention._xla_attention, *a), (0, 1, 2))
  expected = reference(q, k, v)
  # The cuDNN path's padding, with XLA's kernel in place of cuDNN's.
  xla = jax.nn.dot_product_attention
  monkeypatch.setattr(
    jax.nn, 'dot_product_attention', lambda *a, implementation=None, **kw: xla(*a, **kw)
  )
  padded = jax.value_and_grad(lambda *a: loss(attention._cudnn_attention, *a), (0, 1, 2))
  chex.assert_trees_all_close(padded(q, k, v), expected, rtol=1e-5, atol=1e-6)


def test_unknown_implementation_names_the_allowed_ones():
  with pytest.raises(ValueError, match="unknown attention 'flash'.*'auto', 'xla', 'cudnn'"):
    attention.dot_product_attention(*_qkv(4, 4), implementation='flash')
