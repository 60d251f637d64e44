"""The seed's CNN: parameter arithmetic, shapes, dropout and the fast conv/pool."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.cnn.configs import default as cnn_default
from research.errors import UserInputError
from research.families import cnn as cnn_family
from research.models import cnn
from research.models import layers
from research.train import state as state_lib
from tests import helpers


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
  apply = lambda train, key: model.apply({'params': params}, x, train=train, rngs={'dropout': key})
  chex.assert_trees_all_equal(apply(False, jax.random.key(2)), apply(False, jax.random.key(3)))
  assert not np.allclose(apply(True, jax.random.key(2)), apply(True, jax.random.key(3)))
  assert not np.allclose(apply(True, jax.random.key(2)), apply(False, jax.random.key(2)))


def _lax_conv(x, k):
  return jax.lax.conv_general_dilated(
    x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )


def test_rgb_conv3x3_values_and_gradients_match_lax():
  x = jax.random.normal(jax.random.key(0), (4, 9, 10, 3))
  k = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
  chex.assert_trees_all_close(jax.jit(layers.conv3x3)(x, k), _lax_conv(x, k), atol=1e-5)
  loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
  expected = jax.grad(loss(_lax_conv), (0, 1))(x, k)
  actual = jax.jit(jax.grad(loss(layers.conv3x3), (0, 1)))(x, k)
  chex.assert_trees_all_close(actual, expected, atol=1e-4, rtol=1e-5)


def test_max_pool2_matches_flax_max_pool():
  x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
  chex.assert_trees_all_close(layers.max_pool2(x), nn.max_pool(x, (2, 2), (2, 2)))


def _windowed_max(x):
  """2x2 max pooling as a reshape and a max, differentiated by JAX (the reference)."""
  b, h, w, c = x.shape
  return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def test_max_pool2_gradient_splits_ties_like_autodiff():
  # ReLU'd inputs tie at 0 in many windows; one window ties at a positive maximum;
  # odd height and width drop the last row and column.
  x = jax.nn.relu(jax.random.normal(jax.random.key(0), (3, 9, 7, 5)))
  x = x.at[0, 0:2, 0:2, 0].set(jnp.array([[2.0, 1.0], [2.0, 2.0]]))
  g = jax.random.normal(jax.random.key(1), (3, 4, 3, 5))
  chex.assert_trees_all_equal(jax.jit(layers.max_pool2)(x), _windowed_max(x))
  actual = jax.jit(jax.vjp(layers.max_pool2, x)[1])(g)[0]
  expected = jax.vjp(_windowed_max, x)[1](g)[0]
  chex.assert_trees_all_close(actual, expected, atol=1e-6)
  np.testing.assert_allclose(
    actual[0, 0:2, 0:2, 0], g[0, 0, 0, 0] / 3 * np.array([[1, 0], [1, 1]]), rtol=1e-6
  )
  assert float(jnp.abs(actual[:, 8]).max()) == 0.0 and float(jnp.abs(actual[:, :, 6]).max()) == 0.0


def _conv_count(model, params, x):
  """Convolutions in the forward pass lowered for cuda (one path, no CPU variants)."""
  forward = jax.jit(lambda p: model.apply({'params': p}, x, train=False))
  text = jax.export.export(forward, platforms=['cuda'])(params).mlir_module()
  return text.count('stablehlo.convolution')


@pytest.mark.parametrize('batch', [8, 6])
def test_conv_parts_give_the_whole_batch_values_and_gradients(batch):
  whole = cnn.CNN(cnn.CNNConfig(hidden_dim=16))
  parted = cnn.CNN(cnn.CNNConfig(hidden_dim=16, conv_parts=4))
  x = jax.random.normal(jax.random.key(0), (batch, 8, 8, 3))
  params = whole.init(jax.random.key(1), x, train=False)['params']
  labels = jnp.arange(batch) % 10

  def loss(model):
    def f(p):
      logits = model.apply({'params': p}, x, train=True, rngs={'dropout': jax.random.key(2)})
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      return jnp.mean(loss), logits

    return jax.grad(f, has_aux=True)

  (g_whole, logits_whole), (g_parted, logits_parted) = loss(whole)(params), loss(parted)(params)
  chex.assert_trees_all_close(logits_parted, logits_whole, atol=1e-5)
  chex.assert_trees_all_close(g_parted, g_whole, atol=1e-5)
  # 8 examples: four independent copies of the three convolutions; 6: one, whole.
  assert _conv_count(parted, params, x) == (12 if batch == 8 else 3)
  assert _conv_count(whole, params, x) == 3


def _family_model(**model):
  c = cnn_default.get_config()
  c.lock()
  c.update(image_size=8, model=dict(hidden_dim=16) | model)
  images = helpers.tiny_images()
  family = cnn_family.CNNClassifier(c, datasets=(images, images))
  return family.build(family.load_data())


@pytest.mark.parametrize(
  'conv_parts,parts,model_parts', [(0, 8, True), (1, 1, False), (4, 4, False)]
)
def test_the_family_takes_automatic_parts_in_the_convolutions(conv_parts, parts, model_parts):
  # The default config's batch of 64 on one CPU device: 8 automatic parts
  # (`platform_policy.batch_parts`; 1 on an accelerator). Where conv_parts is
  # automatic the model takes the automatic choice: the step's is then 1.
  model = _family_model(conv_parts=conv_parts)
  on_cpu = jax.default_backend() == 'cpu'
  assert model.module.config.conv_parts == (parts if on_cpu or conv_parts else 1)
  assert model.model_parts == model_parts
  assert model.microbatches(0) == (1 if model_parts else 0)
  assert model.microbatches(2) == 2


def test_conv_parts_that_do_not_divide_the_batch_are_a_user_error():
  with pytest.raises(UserInputError, match='conv_parts=3 does not divide'):
    _family_model(conv_parts=3)
  with pytest.raises(UserInputError, match='conv_parts must be >= 0'):
    _family_model(conv_parts=-1)
