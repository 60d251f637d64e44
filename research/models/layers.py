"""Convolution and pooling building blocks tuned for XLA.

Dimension key: B batch, H height, W width, C input channels, O output channels.

Their CPU paths are chosen by `research.platform_policy.on_cpu` (the reasons are
listed there); every other platform gets XLA's own convolution and autodiff.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from research import platform_policy


def _pool_windows(x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
  """(B, H, W, C) -> (B, H // 2, 2, W // 2, 2, C): the 2x2 windows (odd edges dropped)."""
  b, h, w, c = x_BxHxWxC.shape
  x = x_BxHxWxC[:, : h // 2 * 2, : w // 2 * 2, :]
  return x.reshape(b, h // 2, 2, w // 2, 2, c)


def _max_pool2_autodiff(x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
  return _pool_windows(x_BxHxWxC).max(axis=(2, 4))


@jax.custom_vjp
def max_pool2_split_ties(x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
  """`max_pool2` with a hand-written gradient that suits XLA:CPU.

  The same values and the same gradient as JAX's autodiff of the windowed max: each
  window's output cotangent goes to its maximal inputs, split evenly among ties.
  Autodiff counts the ties with a reduction over the window axes (slow on XLA:CPU);
  here the four window positions are compared and added as plain elementwise work.

  Returns:
    array of shape (B, H // 2, W // 2, C) and the input's dtype.
  """
  return _max_pool2_autodiff(x_BxHxWxC)


def _split_ties_fwd(x):
  y = _max_pool2_autodiff(x)
  return y, (x, y)


def _split_ties_bwd(residuals, g_BxPxQxC):
  x, y = residuals
  b, h, w, c = x.shape
  windows = _pool_windows(x)
  hits = [(windows[:, :, i, :, j] == y).astype(g_BxPxQxC.dtype) for i in (0, 1) for j in (0, 1)]
  share = g_BxPxQxC / (hits[0] + hits[1] + hits[2] + hits[3])
  rows = [jnp.stack([hits[2 * i] * share, hits[2 * i + 1] * share], axis=3) for i in (0, 1)]
  dx = jnp.stack(rows, axis=2).reshape(b, h // 2 * 2, w // 2 * 2, c)
  return (jnp.pad(dx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool2_split_ties.defvjp(_split_ties_fwd, _split_ties_bwd)


def max_pool2(x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
  """2x2 max pooling with stride 2 (floor on odd sizes), any dtype.

  Written as a reshape and a max, which XLA:CPU differentiates faster than
  `reduce_window`; on CPU its gradient is `max_pool2_split_ties`'s, elsewhere JAX's
  autodiff (`platform_policy.on_cpu`).

  Returns:
    array of shape (B, H // 2, W // 2, C) and the input's dtype.
  """
  return platform_policy.on_cpu(max_pool2_split_ties, _max_pool2_autodiff, x_BxHxWxC)


_DIMS = ('NHWC', 'HWIO', 'NHWC')


def _conv(x, kernel):
  return jax.lax.conv_general_dilated(
    x, kernel, window_strides=(1, 1), padding='SAME', dimension_numbers=_DIMS
  )


@jax.custom_vjp
def conv3x3_rgb_padded(x_BxHxWx3: jnp.ndarray, kernel_3x3x3xO: jnp.ndarray) -> jnp.ndarray:
  """`conv3x3` of a 3-channel input whose forward pads the channels to 4 with zeros.

  Same values (a zero channel adds nothing) and the same gradients: the backward is
  XLA's own, of the unpadded convolution. XLA:CPU's convolution kernels run a
  3-channel forward much slower than a 4-channel one, while the padded kernel
  gradient is slower than the unpadded one, hence only the forward.

  Returns:
    array of shape (B, H, W, O) in the promoted dtype of the inputs.
  """
  one_more = (0, 1)
  x = jnp.pad(x_BxHxWx3, ((0, 0), (0, 0), (0, 0), one_more))
  return _conv(x, jnp.pad(kernel_3x3x3xO, ((0, 0), (0, 0), one_more, (0, 0))))


def _rgb_padded_fwd(x, kernel):
  return conv3x3_rgb_padded(x, kernel), (x, kernel)


def _rgb_padded_bwd(residuals, g):
  _, vjp = jax.vjp(_conv, *residuals)  # XLA drops the unused forward.
  return vjp(g)


conv3x3_rgb_padded.defvjp(_rgb_padded_fwd, _rgb_padded_bwd)


def conv3x3(x_BxHxWxC: jnp.ndarray, kernel_3x3xCxO: jnp.ndarray) -> jnp.ndarray:
  """3x3 convolution, stride 1, zero padding 1 ('SAME'), NHWC / HWIO.

  XLA's own convolution and gradient, left to each platform's kernels, except that
  on CPU a 3-channel (RGB) input takes `conv3x3_rgb_padded` (`platform_policy.on_cpu`).

  Args:
    x_BxHxWxC: input, any float dtype.
    kernel_3x3xCxO: kernel, any float dtype.

  Returns:
    array of shape (B, H, W, O) in the promoted dtype of the inputs.
  """
  if x_BxHxWxC.shape[-1] != 3:
    return _conv(x_BxHxWxC, kernel_3x3xCxO)
  return platform_policy.on_cpu(conv3x3_rgb_padded, _conv, x_BxHxWxC, kernel_3x3xCxO)


class Conv3x3(nn.Module):
  """3x3 'same' convolution with bias; parameters named like `nn.Conv`'s.

  Attributes:
    features: output channels O.
    dtype: compute dtype; parameters are float32.
    kernel_init: initializer of the (3, 3, C, O) kernel.
  """

  features: int
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
    """Returns the (B, H, W, O) convolution of `x_BxHxWxC` in `dtype`."""
    c = x_BxHxWxC.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (3, 3, c, self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
    y = conv3x3(x_BxHxWxC.astype(self.dtype), kernel.astype(self.dtype))
    return y + bias.astype(self.dtype)
