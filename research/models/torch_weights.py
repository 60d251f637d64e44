"""Weights of the seed's PyTorch `MY_NET` in and out of our Flax `cnn.CNN`.

Dimension key: O output channels, I input channels, C channels after conv3 (128),
Hp, Wp height and width after the two 2x2 pools, F = C*Hp*Wp flattened features,
D hidden width (fc1), K classes.

The two frameworks hold the same numbers in different layouts:

  layer  PyTorch state_dict                      Flax params
  convN  convN.weight (O, I, 3, 3), .bias (O,)   convN/kernel (3, 3, I, O), /bias (O,)
  fc1    fc1.weight (D, F), inputs in C-H-W      fc1/kernel (F, D), inputs in H-W-C
  fc2    fc2.weight (K, D), fc2.bias (K,)        fc2/kernel (D, K), fc2/bias (K,)

PyTorch convolutions are cross-correlations like XLA's, so kernels are transposed,
never flipped. Activations are NCHW there and NHWC here, so `MY_NET` flattens its
pooled features channel-first and our CNN channel-last: the rows of fc1's kernel are
permuted accordingly, which is why the conversion needs the image size.

Example:

    params = cnn_params_from_torch(torch_model.state_dict(), image_size=48)
    model = cnn.CNN(cnn.CNNConfig(num_classes=params['fc2']['bias'].shape[0],
                                  hidden_dim=params['fc1']['bias'].shape[0]))
    logits = model.apply({'params': params}, images_BxHxWxC, train=False)
    torch_model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in cnn_params_to_torch(params).items()})
"""

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from research.errors import UserInputError

# (name, input channels, output channels) of the 3x3 convolutions of `cnn.CNN`.
_CONVS = (('conv1', 3, 32), ('conv2', 32, 64), ('conv3', 64, 128))
_LAST_CHANNELS = _CONVS[-1][2]


def _pooled_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
  """(Hp, Wp) after two 2x2 floor pools, as in both `MY_NET` and `cnn.CNN`."""
  is_int = lambda n: isinstance(n, (int, np.integer)) and not isinstance(n, bool)
  hw: tuple[Any, ...] = (
    (image_size, image_size)
    if is_int(image_size)
    else tuple(image_size)
    if isinstance(image_size, (tuple, list))
    else ()
  )
  if len(hw) != 2 or not all(is_int(n) and n >= 4 for n in hw):
    raise UserInputError(
      f'image_size must be an int or (height, width) of ints >= 4, got {image_size!r}'
    )
  return hw[0] // 4, hw[1] // 4


def _as_float32(name: str, value: Any) -> np.ndarray:
  """A NumPy float32 copy of a NumPy/JAX array or a torch tensor (never imports torch)."""
  if hasattr(value, 'detach'):  # A torch tensor, possibly on a GPU or in bfloat16.
    value = value.detach().cpu()
    if value.is_floating_point():
      value = value.float()
    value = value.numpy()
  array = np.asarray(value)
  if not jnp.issubdtype(array.dtype, jnp.floating):  # jnp's knows bfloat16.
    raise UserInputError(f'{name} must hold floating-point values, got dtype {array.dtype}')
  return np.array(array, dtype=np.float32, copy=True)


def _check_keys(found: Mapping[str, Any], expected: Mapping[str, Any], what: str) -> None:
  """Raises UserInputError naming every missing and every unexpected key."""
  missing = [k for k in expected if k not in found]
  unexpected = sorted(set(found) - set(expected), key=str)
  if missing or unexpected:
    hint = ''
    if any(str(k).startswith('params/') for k in unexpected):
      hint = " (pass variables['params'], not the whole variables dict)"
    elif any(str(k).startswith('module.') for k in unexpected):
      hint = " (strip the 'module.' prefix that DataParallel adds)"
    raise UserInputError(
      f'{what} does not match the seed CNN: missing keys {missing}, unexpected keys '
      f'{unexpected}; expected exactly {list(expected)}{hint}'
    )


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, ...], hint: str = '') -> None:
  if array.shape != tuple(shape):
    raise UserInputError(f'{name} has shape {array.shape}, expected {tuple(shape)}{hint}')


def _dims(name: str, array: np.ndarray, ndim: int) -> tuple[int, ...]:
  """The shape of `array` (D and K are read off it), after checking its rank."""
  if array.ndim != ndim:
    raise UserInputError(f'{name} has shape {array.shape}, expected {ndim} dimensions')
  return array.shape


def _torch_shapes(d: int, k: int, hp: int, wp: int) -> dict[str, tuple[int, ...]]:
  shapes: dict[str, tuple[int, ...]] = {}
  for name, i, o in _CONVS:
    shapes[f'{name}.weight'] = (o, i, 3, 3)
    shapes[f'{name}.bias'] = (o,)
  shapes.update(
    {
      'fc1.weight': (d, _LAST_CHANNELS * hp * wp),
      'fc1.bias': (d,),
      'fc2.weight': (k, d),
      'fc2.bias': (k,),
    }
  )
  return shapes


def _size_hint(image_size: Any) -> str:
  return (
    f' (fc1 depends on the image size: is image_size={image_size!r} the size '
    'the network was built for?)'
  )


def _validated(
  arrays: Mapping[str, Any],
  shapes_fn,
  dense: tuple[str, str],
  out_axis: int,
  what: str,
  image_size: Any,
) -> tuple[dict[str, Any], int]:
  """Float32 copies of `arrays` once their keys and shapes fit the seed CNN.

  Args:
    arrays: flat {key: array} in one layout.
    shapes_fn: (D, K, Hp, Wp) -> {key: shape} of that layout.
    dense: the keys of fc1's and fc2's weights.
    out_axis: the axis of a dense weight that holds its outputs (D, K).
    what: names `arrays` in messages.
    image_size: as given by the caller, for fc1's message.

  Returns:
    the float32 arrays and D, fc1's width.
  """
  hp, wp = _pooled_size(image_size)
  _check_keys(arrays, shapes_fn(0, 0, hp, wp), what)
  arrays = {k: _as_float32(k, v) for k, v in arrays.items()}
  d, k = (_dims(key, arrays[key], 2)[out_axis] for key in dense)
  for name, shape in shapes_fn(d, k, hp, wp).items():
    _check_shape(name, arrays[name], shape, _size_hint(image_size) if name == dense[0] else '')
  return arrays, d


def cnn_params_from_torch(
  state_dict: Mapping[str, Any], image_size: int | tuple[int, int] = 48
) -> dict[str, Any]:
  """Converts a PyTorch `MY_NET` state_dict into `cnn.CNN` parameters.

  Args:
    state_dict: exactly the keys `conv{1,2,3}.{weight,bias}` and
      `fc{1,2}.{weight,bias}`, as NumPy arrays or torch tensors (any float dtype,
      any device) in PyTorch layout: conv weights (O, I, 3, 3), dense weights
      (out, in); fc1's input order is MY_NET's C-H-W flatten.
    image_size: the (square) side or (height, width) of the network's input images;
      it fixes the flatten size F = 128 * (height // 4) * (width // 4).

  Returns:
    the Flax `params` tree {'conv1': {'kernel', 'bias'}, ..., 'fc2': {...}} of
    float32 NumPy arrays: conv kernels (3, 3, I, O), fc1 kernel (F, D) with rows in
    H-W-C order, fc2 kernel (D, K). Use it as `model.apply({'params': params}, ...)`
    with `CNNConfig(num_classes=K, hidden_dim=D)`.

  Raises:
    UserInputError: a missing or unexpected key, a non-float tensor, or a shape that
      does not fit the seed CNN at `image_size` (the message names the key).
  """
  hp, wp = _pooled_size(image_size)
  if not isinstance(state_dict, Mapping):
    raise UserInputError(f'state_dict must be a mapping, got {type(state_dict).__name__}')
  sd, d = _validated(
    state_dict, _torch_shapes, ('fc1.weight', 'fc2.weight'), 0, 'the state_dict', image_size
  )
  params = {
    name: {'kernel': sd[f'{name}.weight'].transpose(2, 3, 1, 0), 'bias': sd[f'{name}.bias']}
    for name, _, _ in _CONVS
  }
  # (D, C*Hp*Wp) in C-H-W order -> (Hp*Wp*C, D) in H-W-C order.
  fc1 = sd['fc1.weight'].reshape(d, _LAST_CHANNELS, hp, wp).transpose(2, 3, 1, 0)
  params['fc1'] = {'kernel': fc1.reshape(-1, d), 'bias': sd['fc1.bias']}
  params['fc2'] = {'kernel': sd['fc2.weight'].T, 'bias': sd['fc2.bias']}
  return {
    name: {p: np.ascontiguousarray(a) for p, a in leaves.items()} for name, leaves in params.items()
  }


def _flax_shapes(d: int, k: int, hp: int, wp: int) -> dict[str, tuple[int, ...]]:
  shapes: dict[str, tuple[int, ...]] = {}
  for name, i, o in _CONVS:
    shapes[f'{name}/kernel'] = (3, 3, i, o)
    shapes[f'{name}/bias'] = (o,)
  shapes.update(
    {
      'fc1/kernel': (hp * wp * _LAST_CHANNELS, d),
      'fc1/bias': (d,),
      'fc2/kernel': (d, k),
      'fc2/bias': (k,),
    }
  )
  return shapes


def _flatten(params: Mapping[str, Any]) -> dict[str, Any]:
  """{'conv1': {'kernel': a}} -> {'conv1/kernel': a}; leaves at depth 1 kept as is."""
  flat = {}
  for name, sub in params.items():
    if isinstance(sub, Mapping):
      flat.update({f'{name}/{p}': v for p, v in sub.items()})
    else:
      flat[name] = sub
  return flat


def cnn_params_to_torch(
  params: Mapping[str, Any], image_size: int | tuple[int, int] = 48
) -> dict[str, np.ndarray]:
  """Converts `cnn.CNN` parameters into a PyTorch `MY_NET` state_dict (the inverse).

  Args:
    params: the Flax `params` tree (not the whole variables dict): conv kernels
      (3, 3, I, O), fc1 kernel (F, D) with rows in H-W-C order, fc2 kernel (D, K),
      and the biases, as JAX or NumPy arrays.
    image_size: the (square) side or (height, width) of the network's input images.

  Returns:
    {'conv1.weight': (32, 3, 3, 3), 'conv1.bias': (32,), ..., 'fc1.weight': (D, F)
    in C-H-W input order, 'fc1.bias', 'fc2.weight': (K, D), 'fc2.bias'} of
    contiguous, writable float32 NumPy arrays, in MY_NET's registration order, ready
    for `{k: torch.from_numpy(v) ...}` and `load_state_dict`. Converting float32
    parameters there and back gives them back bit for bit.

  Raises:
    UserInputError: a missing or unexpected parameter, or a shape that does not fit
      the seed CNN at `image_size` (the message names the parameter path).
  """
  hp, wp = _pooled_size(image_size)
  if not isinstance(params, Mapping):
    raise UserInputError(f'params must be a mapping, got {type(params).__name__}')
  flat = _flatten(params)
  flat, d = _validated(
    flat, _flax_shapes, ('fc1/kernel', 'fc2/kernel'), 1, 'the params tree', image_size
  )
  sd = {}
  for name, _, _ in _CONVS:
    sd[f'{name}.weight'] = flat[f'{name}/kernel'].transpose(3, 2, 0, 1)
    sd[f'{name}.bias'] = flat[f'{name}/bias']
  # (Hp*Wp*C, D) in H-W-C order -> (D, C*Hp*Wp) in C-H-W order.
  fc1 = flat['fc1/kernel'].reshape(hp, wp, _LAST_CHANNELS, d).transpose(3, 2, 0, 1)
  sd['fc1.weight'] = fc1.reshape(d, -1)
  sd['fc1.bias'] = flat['fc1/bias']
  sd['fc2.weight'] = flat['fc2/kernel'].T
  sd['fc2.bias'] = flat['fc2/bias']
  return {key: np.ascontiguousarray(a) for key, a in sd.items()}
