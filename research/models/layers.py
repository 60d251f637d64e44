"""Convolution and pooling building blocks tuned for XLA.

Dimension key: B batch, H height, W width, C input channels, O output channels.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _pool_windows(x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
  """(B, H, W, C) -> (B, H // 2, 2, W // 2, 2, C): the 2x2 windows (odd edges dropped)."""
  b, h, w, c = x_BxHxWxC.shape
  x = x_BxHxWxC[:, : h // 2 * 2, : w // 2 * 2, :]
  return x.reshape(b, h // 2, 2, w // 2, 2, c)


def _max_pool2_autodiff(x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
  return _pool_windows(x_BxHxWxC).max(axis=(2, 4))


@jax.custom_vjp
def max_pool2_split_ties(x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
  """`max_pool2` with a hand-written gradient that is faster on XLA:CPU.

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
  `reduce_window`; on CPU its gradient is `max_pool2_split_ties`'s (the seed CNN's
  train step on 2 cores: 140.1 against 148.4 ms, medians of 7 interleaved
  repetitions), elsewhere JAX's autodiff (chosen by `lax.platform_dependent`, resolved
  when the program is lowered).

  Returns:
    array of shape (B, H // 2, W // 2, C) and the input's dtype.
  """
  return jax.lax.platform_dependent(
    x_BxHxWxC, cpu=max_pool2_split_ties, default=_max_pool2_autodiff
  )


_DIMS = ('NHWC', 'HWIO', 'NHWC')


def _conv(x, kernel):
  return jax.lax.conv_general_dilated(
    x, kernel, window_strides=(1, 1), padding='SAME', dimension_numbers=_DIMS
  )


def _patches_BxHxWx9C(x_BxHxWxC):
  """im2col: the 3x3 neighbourhood of every pixel, zero padded, (dy, dx, c) order."""
  _, h, w, _ = x_BxHxWxC.shape
  xp = jnp.pad(x_BxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return jnp.concatenate(
    [xp[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)], axis=-1
  )


def _kernel_grad(x_BxHxWxC, g_BxHxWxO, num_chunks: int = 4):
  """d(loss)/d(kernel) as batched matmuls of im2col patches with the output grad.

  XLA:CPU lowers the autodiff kernel gradient to an HxW-window convolution that runs
  at a fraction of the matmul rate at large H*W. Here the batch is cut into
  `num_chunks` chunks, each chunk's (rows x 9C)^T (rows x O) product is one matmul
  that uses every core, and the per-chunk (9C, O) results are summed. (Contracting
  over the chunk axis inside the einsum instead was 2-3x slower.) Below 8,192 rows
  (e.g. 8x8 feature maps) XLA's own gradient is faster and is used.
  """
  b, h, w, c = x_BxHxWxC.shape
  o = g_BxHxWxO.shape[-1]
  if b * h * w < 8192:
    _, vjp = jax.vjp(
      lambda k: _conv(x_BxHxWxC, k), jnp.zeros((3, 3, c, o), jnp.result_type(x_BxHxWxC, g_BxHxWxO))
    )
    return vjp(g_BxHxWxO)[0]
  n = num_chunks if b % num_chunks == 0 else 1
  patches = _patches_BxHxWx9C(x_BxHxWxC).reshape(n, -1, 9 * c)
  dk = jnp.einsum('nmk,nmo->nko', patches, g_BxHxWxO.reshape(n, -1, o)).sum(axis=0)
  return dk.reshape(3, 3, c, o)


def _conv_im2col(x_BxHxWxC, kernel_3x3xCxO):
  """The convolution as one (B*H*W, 9C) x (9C, O) matmul of im2col patches.

  The patches cost a pass over 9x the input (XLA:CPU writes the nine shifted copies,
  then concatenates them). As a matmul the input gradient was 15% slower in the seed
  CNN's train step, as a matmul then col2im no faster.
  """
  b, h, w, c = x_BxHxWxC.shape
  o = kernel_3x3xCxO.shape[-1]
  patches = _patches_BxHxWx9C(x_BxHxWxC).reshape(b * h * w, 9 * c)
  return (patches @ kernel_3x3xCxO.reshape(9 * c, o)).reshape(b, h, w, o)


@jax.custom_vjp
def conv3x3_im2col(x_BxHxWxC: jnp.ndarray, kernel_3x3xCxO: jnp.ndarray) -> jnp.ndarray:
  """`conv3x3` with im2col matmuls in training, on every platform.

  Same values and gradients as `lax.conv_general_dilated` (up to float summation
  order). Differentiated (a train step), the forward is an im2col matmul
  (`_conv_im2col`), the input gradient a convolution with the flipped kernel and
  the kernel gradient an im2col matmul (`_kernel_grad`). Not differentiated (an
  evaluation), it is XLA's convolution. It once measured 8% faster in the seed CNN's
  train step; re-measured (jaxlib 0.10.2, whose CPU program runs XLA's convolutions
  as YNNPACK fusions) it no longer pays: `conv3x3(..., im2col_on_cpu=True)` opts in
  on CPU, and `benchmarks/conv_lowering_ab.py` keeps the A/B.

  Returns:
    array of shape (B, H, W, O) in the promoted dtype of the inputs.
  """
  return _conv(x_BxHxWxC, kernel_3x3xCxO)


def _conv3x3_fwd(x, kernel):
  return _conv_im2col(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, g):
  x, kernel = residuals
  # Correlating with the spatially flipped, in/out-swapped kernel is the transpose
  # of the convolution. XLA drops it where x needs no gradient (the first layer).
  dx = _conv(g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3)).astype(x.dtype)
  return dx, _kernel_grad(x, g).astype(kernel.dtype)


conv3x3_im2col.defvjp(_conv3x3_fwd, _conv3x3_bwd)


@jax.custom_vjp
def conv3x3_rgb_padded(x_BxHxWx3: jnp.ndarray, kernel_3x3x3xO: jnp.ndarray) -> jnp.ndarray:
  """`conv3x3` of a 3-channel input whose forward pads the channels to 4 with zeros.

  Same values (a zero channel adds nothing) and the same gradients: the backward is
  XLA's own, of the unpadded convolution. On 2 CPU cores XLA:CPU's (YNNPACK)
  forward of a 3-channel input took 2.35 ms for 8 48x48 images against 0.63 ms
  padded to 4 channels (15.3 / 7.4 ms at batch 64), while the padded kernel gradient
  was slower (0.61 / 11.5 ms against 0.47 / 6.6), hence only the forward.

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


def conv3x3(
  x_BxHxWxC: jnp.ndarray, kernel_3x3xCxO: jnp.ndarray, im2col_on_cpu: bool = False
) -> jnp.ndarray:
  """3x3 convolution, stride 1, zero padding 1 ('SAME'), NHWC / HWIO.

  XLA's own convolution and gradient, left to each platform's kernels, except on
  CPU: a 3-channel (RGB) input takes `conv3x3_rgb_padded` there. With
  `im2col_on_cpu`, CPU programs take `conv3x3_im2col` instead (forward and kernel
  gradient as matmuls in training) while every other platform (cuda, rocm, tpu)
  keeps XLA's convolution: the choice is made in the traced program
  (`lax.platform_dependent`) and resolved when it is lowered, so one jitted function
  serves every backend and a module lowered for one platform holds only that
  platform's path (see tests/test_lowering.py). Off by default: in the seed CNN's
  train step on 2 CPU cores im2col measured 311 ms against 310 ms for XLA's
  convolutions on an idle machine and 12% slower beside another job; the DDPM U-Net's
  step 19% slower (benchmarks/conv_lowering_ab.py).

  Args:
    x_BxHxWxC: input, any float dtype.
    kernel_3x3xCxO: kernel, any float dtype.
    im2col_on_cpu: take `conv3x3_im2col` on CPU.

  Returns:
    array of shape (B, H, W, O) in the promoted dtype of the inputs.
  """
  if im2col_on_cpu:
    cpu = conv3x3_im2col
  elif x_BxHxWxC.shape[-1] == 3:
    cpu = conv3x3_rgb_padded
  else:
    return _conv(x_BxHxWxC, kernel_3x3xCxO)
  return jax.lax.platform_dependent(x_BxHxWxC, kernel_3x3xCxO, cpu=cpu, default=_conv)


class Conv3x3(nn.Module):
  """3x3 'same' convolution with bias; parameters named like `nn.Conv`'s.

  Attributes:
    features: output channels O.
    dtype: compute dtype; parameters are float32.
    kernel_init: initializer of the (3, 3, C, O) kernel.
    im2col_on_cpu: `conv3x3`'s choice of the CPU lowering.
  """

  features: int
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  im2col_on_cpu: bool = False

  @nn.compact
  def __call__(self, x_BxHxWxC: jnp.ndarray) -> jnp.ndarray:
    """Returns the (B, H, W, O) convolution of `x_BxHxWxC` in `dtype`."""
    c = x_BxHxWxC.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (3, 3, c, self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
    y = conv3x3(x_BxHxWxC.astype(self.dtype), kernel.astype(self.dtype), self.im2col_on_cpu)
    return y + bias.astype(self.dtype)
