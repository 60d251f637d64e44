"""The 3x3 convolution as im2col matmuls: a CPU lowering measured and dropped.

Dimension key: B batch, H height, W width, C input channels, O output channels.

`conv3x3_im2col` has `research.models.layers.conv3x3`'s values and gradients; in
training its forward and kernel gradient are matmuls of im2col patches, its input
gradient XLA's convolution with the flipped kernel. No model uses it: the `im2col`
lever (`benchmarks/levers.py`) puts it in place of every 3x3 convolution, and
`benchmarks/conv_lowering_ab.py` times it against XLA's convolutions (the figures are
in docs/performance.md).
"""

import jax
import jax.numpy as jnp

from research import platform_policy
from research.models import layers

conv = layers._conv  # pylint: disable=protected-access  # XLA's 'SAME' NHWC/HWIO conv.


def _patches_BxHxWx9C(x_BxHxWxC):
  """im2col: the 3x3 neighbourhood of every pixel, zero padded, (dy, dx, c) order."""
  _, h, w, _ = x_BxHxWxC.shape
  xp = jnp.pad(x_BxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return jnp.concatenate(
    [xp[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)], axis=-1
  )


def kernel_grad(x_BxHxWxC: jnp.ndarray, g_BxHxWxO: jnp.ndarray, num_chunks: int = 4) -> jnp.ndarray:
  """d(loss)/d(kernel) as batched matmuls of im2col patches with the output grad.

  XLA:CPU lowers the autodiff kernel gradient to an HxW-window convolution that runs
  far below its matmul rate at large H*W. Here the batch is cut into `num_chunks`
  chunks, each chunk's (rows x 9C)^T (rows x O) product is one matmul that uses every
  core, and the per-chunk (9C, O) results are summed (contracting over the chunk axis
  inside the einsum instead is slower). Below 8,192 rows (e.g. 8x8 feature maps)
  XLA's own gradient is faster and is used.

  Args:
    x_BxHxWxC: the convolution's input.
    g_BxHxWxO: the cotangent of its output.
    num_chunks: batch chunks (1 where they do not divide B).

  Returns:
    the (3, 3, C, O) kernel gradient in the promoted dtype of the inputs.
  """
  b, h, w, c = x_BxHxWxC.shape
  o = g_BxHxWxO.shape[-1]
  if b * h * w < 8192:
    zeros = jnp.zeros((3, 3, c, o), jnp.result_type(x_BxHxWxC, g_BxHxWxO))
    _, vjp = jax.vjp(lambda k: conv(x_BxHxWxC, k), zeros)
    return vjp(g_BxHxWxO)[0]
  n = num_chunks if b % num_chunks == 0 else 1
  patches = _patches_BxHxWx9C(x_BxHxWxC).reshape(n, -1, 9 * c)
  dk = jnp.einsum('nmk,nmo->nko', patches, g_BxHxWxO.reshape(n, -1, o)).sum(axis=0)
  return dk.reshape(3, 3, c, o)


def conv_im2col(x_BxHxWxC: jnp.ndarray, kernel_3x3xCxO: jnp.ndarray) -> jnp.ndarray:
  """The convolution as one (B*H*W, 9C) x (9C, O) matmul of im2col patches.

  The patches cost a pass over 9x the input (XLA:CPU writes the nine shifted copies,
  then concatenates them). The input gradient as such a matmul, or as a matmul then
  col2im, is no faster than XLA's convolution, so `conv3x3_im2col` keeps XLA's there.

  Returns:
    array of shape (B, H, W, O) in the promoted dtype of the inputs.
  """
  b, h, w, c = x_BxHxWxC.shape
  o = kernel_3x3xCxO.shape[-1]
  patches = _patches_BxHxWx9C(x_BxHxWxC).reshape(b * h * w, 9 * c)
  return (patches @ kernel_3x3xCxO.reshape(9 * c, o)).reshape(b, h, w, o)


@jax.custom_vjp
def conv3x3_im2col(x_BxHxWxC: jnp.ndarray, kernel_3x3xCxO: jnp.ndarray) -> jnp.ndarray:
  """`layers.conv3x3` with im2col matmuls in training, on every platform.

  Same values and gradients as `lax.conv_general_dilated` (up to float summation
  order). Differentiated (a train step), the forward is an im2col matmul
  (`conv_im2col`), the input gradient a convolution with the flipped kernel and the
  kernel gradient an im2col matmul (`kernel_grad`). Not differentiated (an
  evaluation), it is XLA's convolution.

  Returns:
    array of shape (B, H, W, O) in the promoted dtype of the inputs.
  """
  return conv(x_BxHxWxC, kernel_3x3xCxO)


def _conv3x3_fwd(x, kernel):
  return conv_im2col(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, g):
  x, kernel = residuals
  # Correlating with the spatially flipped, in/out-swapped kernel is the transpose
  # of the convolution. XLA drops it where x needs no gradient (the first layer).
  dx = conv(g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3)).astype(x.dtype)
  return dx, kernel_grad(x, g).astype(kernel.dtype)


conv3x3_im2col.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def conv3x3_im2col_on_cpu(x_BxHxWxC: jnp.ndarray, kernel_3x3xCxO: jnp.ndarray) -> jnp.ndarray:
  """`conv3x3_im2col` in programs lowered for CPU, XLA's convolution elsewhere.

  Gated as the library gates its CPU paths (`platform_policy.on_cpu`), so a program
  lowered for an accelerator keeps XLA's convolution.

  Returns:
    array of shape (B, H, W, O) in the promoted dtype of the inputs.
  """
  return platform_policy.on_cpu(conv3x3_im2col, conv, x_BxHxWxC, kernel_3x3xCxO)
