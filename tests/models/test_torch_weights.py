"""PyTorch MY_NET weights <-> our Flax CNN: same logits, exact round trip, clear errors.

The reference is the seed's PyTorch forward pass (NCHW, C-H-W flatten) written in
NumPy here, so everything but the last test runs without torch.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.errors import UserInputError
from research.models import cnn
from research.models import torch_weights

HIDDEN, CLASSES = 16, 5
# (name, out, in channels) of MY_NET's convolutions.
_CONV_SHAPES = (('conv1', 32, 3), ('conv2', 64, 32), ('conv3', 128, 64))


def _torch_shapes(hw, hidden=HIDDEN, classes=CLASSES):
  shapes = {}
  for name, o, i in _CONV_SHAPES:
    shapes[f'{name}.weight'], shapes[f'{name}.bias'] = (o, i, 3, 3), (o,)
  flat = 128 * (hw[0] // 4) * (hw[1] // 4)
  shapes.update(
    {
      'fc1.weight': (hidden, flat),
      'fc1.bias': (hidden,),
      'fc2.weight': (classes, hidden),
      'fc2.bias': (classes,),
    }
  )
  return shapes


def _random_state_dict(hw, seed=0, **kw):
  """PyTorch layout and PyTorch's default scale: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  rng = np.random.default_rng(seed)
  sd = {}
  for key, shape in _torch_shapes(hw, **kw).items():
    if key.endswith('weight'):  # Each bias follows its weight and shares its bound.
      bound = 1.0 / np.sqrt(np.prod(shape[1:]))
    sd[key] = rng.uniform(-bound, bound, shape).astype(np.float32)
  return sd


def _conv_nchw(x_BxIxHxW, w_OxIx3x3, b_O):
  """PyTorch Conv2d(k=3, padding=1): a cross-correlation over zero-padded patches."""
  _, _, h, w = x_BxIxHxW.shape
  xp = np.pad(x_BxIxHxW, ((0, 0), (0, 0), (1, 1), (1, 1)))
  patches = np.stack(
    [np.stack([xp[:, :, dy : dy + h, dx : dx + w] for dx in range(3)]) for dy in range(3)]
  )  # (3, 3, B, I, H, W)
  return np.einsum('yxbihw,oiyx->bohw', patches, w_OxIx3x3) + b_O[None, :, None, None]


def _max_pool_nchw(x):
  b, c, h, w = x.shape
  x = x[:, :, : h // 2 * 2, : w // 2 * 2]
  return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _reference_logits(sd, x_BxCxHxW):
  """MY_NET.forward in eval mode (dropout off), in float64 NumPy."""
  p = {k: v.astype(np.float64) for k, v in sd.items()}
  relu = lambda a: np.maximum(a, 0.0)
  x = relu(_conv_nchw(x_BxCxHxW.astype(np.float64), p['conv1.weight'], p['conv1.bias']))
  x = relu(_conv_nchw(x, p['conv2.weight'], p['conv2.bias']))
  x = _max_pool_nchw(x)
  x = relu(_conv_nchw(x, p['conv3.weight'], p['conv3.bias']))
  x = _max_pool_nchw(x).reshape(x.shape[0], -1)  # C-H-W order.
  x = relu(x @ p['fc1.weight'].T + p['fc1.bias'])
  return x @ p['fc2.weight'].T + p['fc2.bias']


def _random_flax_params(size, hidden=HIDDEN, classes=CLASSES, seed=3):
  """Random float32 params in the Flax layout, shapes from `jax.eval_shape`."""
  model = cnn.CNN(cnn.CNNConfig(num_classes=classes, hidden_dim=hidden))
  shapes = jax.eval_shape(
    lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False)
  )['params']
  rng = np.random.default_rng(seed)
  # Kernels (..., in, out) and biases alike scaled by the kernel's fan-in.
  scale = lambda s: 1.0 / np.sqrt(np.prod(s.shape[:-1]) if len(s.shape) > 1 else 64)
  return jax.tree.map(lambda s: (scale(s) * rng.normal(size=s.shape)).astype(np.float32), shapes)


def _flax_logits(params, x_BxCxHxW, hidden=HIDDEN, classes=CLASSES):
  model = cnn.CNN(cnn.CNNConfig(num_classes=classes, hidden_dim=hidden))
  return model.apply({'params': params}, jnp.asarray(x_BxCxHxW.transpose(0, 2, 3, 1)), train=False)


@pytest.mark.parametrize('hw', [(8, 8), (16, 16), (8, 12)])
def test_imported_weights_give_the_pytorch_logits(hw):
  sd = _random_state_dict(hw)
  x = np.random.default_rng(1).normal(size=(3, 3, *hw)).astype(np.float32)
  image_size = hw[0] if hw[0] == hw[1] else hw
  params = torch_weights.cnn_params_from_torch(sd, image_size=image_size)
  expected = _reference_logits(sd, x)
  assert np.abs(expected).max() > 0.05  # Logits big enough for the check to bite.
  chex.assert_trees_all_close(_flax_logits(params, x), expected, atol=1e-5, rtol=0)


def test_imported_tree_has_the_flax_models_names_shapes_and_dtype():
  params = torch_weights.cnn_params_from_torch(_random_state_dict((48, 48), classes=10, hidden=512))
  model = cnn.CNN(cnn.CNNConfig(num_classes=10))
  expected = jax.eval_shape(
    lambda: model.init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)), train=False)
  )['params']
  chex.assert_trees_all_equal_shapes_and_dtypes(params, expected)


def test_export_round_trips_bitwise():
  sd = _random_state_dict((8, 12))
  back = torch_weights.cnn_params_to_torch(
    torch_weights.cnn_params_from_torch(sd, (8, 12)), (8, 12)
  )
  assert list(back) == list(sd)  # MY_NET's registration order.
  for key in sd:
    assert back[key].dtype == np.float32 and back[key].flags.writeable, key
    np.testing.assert_array_equal(back[key], sd[key], err_msg=key)
  params = _random_flax_params(16)
  again = torch_weights.cnn_params_from_torch(
    torch_weights.cnn_params_to_torch(jax.device_put(params), 16), 16
  )
  chex.assert_trees_all_equal_structs(again, params)
  jax.tree.map(np.testing.assert_array_equal, again, params)


def _drop(key):
  return lambda d: {k: v for k, v in d.items() if k != key}


def _set(key, value):
  return lambda d: {**d, key: value}


@pytest.mark.parametrize(
  'edit,image_size,match',
  [
    (_drop('fc2.bias'), 8, "missing keys \\['fc2.bias'\\]"),
    (_set('module.conv1.weight', np.zeros((32, 3, 3, 3))), 8, "module.conv1.weight.*'module.'"),
    (_set('conv2.weight', np.zeros((64, 32, 3, 2))), 8, r'conv2.weight has shape \(64, 32, 3, 2\)'),
    (_set('conv1.bias', np.zeros((3, 32))), 8, r'conv1.bias has shape \(3, 32\)'),
    (lambda d: {**d, 'fc1.weight': d['fc1.weight'].T}, 8, 'fc1.weight has shape'),
    (lambda d: d, 16, 'fc1.weight has shape .*image_size=16'),
    (_set('fc2.bias', np.zeros(CLASSES, np.int32)), 8, 'fc2.bias must hold floating'),
    (lambda d: d, 3, 'image_size must be'),
    (lambda d: d, 8.0, 'image_size must be'),
    (lambda d: d, (8, 8, 3), 'image_size must be'),
  ],
)
def test_bad_state_dicts_are_rejected_by_name(edit, image_size, match):
  with pytest.raises(UserInputError, match=match):
    torch_weights.cnn_params_from_torch(edit(_random_state_dict((8, 8))), image_size)


@pytest.mark.parametrize(
  'edit,match',
  [
    (lambda p: {k: v for k, v in p.items() if k != 'fc1'}, r"missing keys \['fc1/kernel'"),
    (
      lambda p: {**p, 'conv3': {**p['conv3'], 'kernel': p['conv3']['kernel'][:2]}},
      r'conv3/kernel has shape \(2, 3, 64, 128\)',
    ),
    (lambda p: {'params': p}, r"variables\['params'\]"),
  ],
)
def test_bad_flax_params_are_rejected_by_name(edit, match):
  params = torch_weights.cnn_params_from_torch(_random_state_dict((8, 8)), 8)
  with pytest.raises(UserInputError, match=match):
    torch_weights.cnn_params_to_torch(edit(params), 8)


def _my_net(torch, num_classes):
  """The seed's PyTorch model, as the primer writes it."""
  nn = torch.nn

  class MY_NET(nn.Module):  # pylint: disable=invalid-name
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 32, kernel_size=3, padding=1)
      self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
      self.pool1 = nn.MaxPool2d(2, 2)
      self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
      self.pool2 = nn.MaxPool2d(2, 2)
      self.dropout = nn.Dropout(0.5)
      self.fc1 = nn.Linear(128 * 12 * 12, 512)
      self.fc2 = nn.Linear(512, num_classes)

    def forward(self, x):
      x = torch.relu(self.conv1(x))
      x = self.pool1(torch.relu(self.conv2(x)))
      x = self.pool2(torch.relu(self.conv3(x)))
      x = self.dropout(torch.flatten(x, 1))
      x = self.dropout(torch.relu(self.fc1(x)))
      return self.fc2(x)

  return MY_NET().eval()


def test_real_pytorch_my_net_gives_the_same_logits_both_ways():
  torch = pytest.importorskip('torch')
  torch.manual_seed(0)
  net = _my_net(torch, num_classes=10)
  x = np.random.default_rng(2).normal(size=(2, 3, 48, 48)).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(x)).numpy()
  params = torch_weights.cnn_params_from_torch(net.state_dict())  # torch tensors in.
  ours = _flax_logits(params, x, hidden=512, classes=10)
  chex.assert_trees_all_close(ours, expected, atol=1e-5, rtol=0)
  # Flax-layout weights exported into a fresh MY_NET (strict load).
  flax_params = _random_flax_params(48, hidden=512, classes=10)
  fresh = _my_net(torch, num_classes=10)
  fresh.load_state_dict(
    {k: torch.from_numpy(v) for k, v in torch_weights.cnn_params_to_torch(flax_params).items()}
  )
  with torch.no_grad():
    theirs = fresh(torch.from_numpy(x)).numpy()
  ours = _flax_logits(flax_params, x, hidden=512, classes=10)
  chex.assert_trees_all_close(ours, theirs, atol=1e-5, rtol=0)
