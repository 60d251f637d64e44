"""The seed's CNN: parameter arithmetic, shapes, dropout and the fast conv/pool."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.models import cnn
from research.models import layers
from research.train import state as state_lib


def _abstract_params(num_classes, size=48):
  model = cnn.CNN(cnn.CNNConfig(num_classes=num_classes))
  x = jnp.zeros((1, size, size, 3))
  return jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))['params']


@pytest.mark.parametrize('num_classes,fc2', [(10, 5_130), (43, 22_059)])
def test_parameter_counts_match_layer_arithmetic(num_classes, fc2):
  counts = state_lib.count_params(_abstract_params(num_classes))
  assert counts == {
      'conv1': (3 * 3 * 3 + 1) * 32,  # 896
      'conv2': (32 * 3 * 3 + 1) * 64,  # 18,496
      'conv3': (64 * 3 * 3 + 1) * 128,  # 73,856
      'fc1': (128 * 12 * 12 + 1) * 512,  # 9,437,696
      'fc2': (512 + 1) * num_classes,
      'total': 896 + 18_496 + 73_856 + 9_437_696 + fc2,
  }
  assert counts['fc2'] == fc2


def test_output_shape_and_dtype():
  model = cnn.CNN(cnn.CNNConfig(num_classes=7, hidden_dim=16))
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  params = model.init(jax.random.key(1), x, train=False)['params']
  logits = model.apply({'params': params}, x, train=False)
  chex.assert_shape(logits, (2, 7))
  assert logits.dtype == jnp.float32
  chex.assert_tree_all_finite(logits)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = cnn.CNN(cnn.CNNConfig(hidden_dim=16, dtype=jnp.bfloat16))
  x = jnp.ones((2, 8, 8, 3))
  params = model.init(jax.random.key(1), x, train=False)['params']
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  assert model.apply({'params': params}, x, train=False).dtype == jnp.float32


def test_dropout_only_in_training():
  model = cnn.CNN(cnn.CNNConfig(hidden_dim=32))
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  params = model.init(jax.random.key(1), x, train=False)['params']
  apply = lambda train, key: model.apply({'params': params}, x, train=train,
                                         rngs={'dropout': key})
  chex.assert_trees_all_equal(apply(False, jax.random.key(2)),
                              apply(False, jax.random.key(3)))
  assert not np.allclose(apply(True, jax.random.key(2)), apply(True, jax.random.key(3)))
  assert not np.allclose(apply(True, jax.random.key(2)), apply(False, jax.random.key(2)))


def _lax_conv(x, k):
  return jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


# The opt-in im2col path: on CPU the forward is an im2col matmul; the kernel gradient
# takes three paths: XLA's own below 8,192 rows (B*H*W), chunked im2col matmuls above,
# one unchunked matmul when the batch does not divide into 4.
@pytest.mark.parametrize('shape', [(16, 6, 7, 3), (8, 32, 33, 5), (5, 40, 41, 2)])
def test_conv3x3_values_and_gradients_match_lax(shape):
  x = jax.random.normal(jax.random.key(0), shape)
  k = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], 4))
  im2col = functools.partial(layers.conv3x3, im2col_on_cpu=True)
  chex.assert_trees_all_close(im2col(x, k), _lax_conv(x, k), atol=1e-5)
  loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
  expected = jax.grad(loss(_lax_conv), (0, 1))(x, k)
  actual = jax.jit(jax.grad(loss(im2col), (0, 1)))(x, k)
  chex.assert_trees_all_close(actual, expected, atol=2e-3, rtol=1e-4)


def test_max_pool2_matches_flax_max_pool():
  x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
  chex.assert_trees_all_close(layers.max_pool2(x), nn.max_pool(x, (2, 2), (2, 2)))
