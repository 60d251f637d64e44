"""The seed's CNN image classifier ("MY_NET").

Dimension key: B batch, H height, W width, C channels, F flattened features,
D hidden width (512), K classes.

Layer arithmetic for a 48x48x3 input and 10 classes (parameters):
conv1 896, conv2 18,496, conv3 73,856, fc1 9,437,696, fc2 5,130.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from research.models import layers


@dataclasses.dataclass(frozen=True)
class CNNConfig:
  """Hyperparameters of the seed's CNN.

  Attributes:
    num_classes: size of the output layer.
    hidden_dim: width of the first dense layer (the seed uses 512).
    dropout_rate: dropout before each dense layer (the seed uses 0.5).
    dtype: compute dtype of convolutions and matmuls; parameters stay float32 and the
      logits are returned in float32.
    conv_parts: the convolutions run on this many equal, interleaved parts of the
      batch, each an independent computation, and the dense layers on the whole
      batch (same values as 1). XLA:CPU runs one convolution on one core but
      independent ones concurrently, so the parts keep every core busy while fc1's
      matmuls stay large; on GPU/TPU 1 is right (`research.platform_policy.batch_parts`
      chooses it where a config asks for automatic parts). A batch that is not a
      multiple of it runs whole.
  """

  num_classes: int = 10
  hidden_dim: int = 512
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32
  conv_parts: int = 1


class CNN(nn.Module):
  """conv1-ReLU-conv2-ReLU-pool-conv3-ReLU-pool-dropout-fc1-ReLU-dropout-fc2.

  Input images must have height and width divisible by 4 (two 2x2 pools).
  """

  config: CNNConfig

  @nn.compact
  def __call__(self, x_BxHxWxC: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Classifies a batch of images.

    Args:
      x_BxHxWxC: float images, already normalised.
      train: enables dropout (needs a 'dropout' PRNG stream).

    Returns:
      float32 logits of shape (B, num_classes).
    """
    cfg = self.config
    convs = [
      layers.Conv3x3(features, dtype=cfg.dtype, name=f'conv{i}')
      for i, features in ((1, 32), (2, 64), (3, 128))
    ]

    def conv_features(x):
      x = nn.relu(convs[0](x))
      x = layers.max_pool2(nn.relu(convs[1](x)))
      return layers.max_pool2(nn.relu(convs[2](x))).reshape(x.shape[0], -1)

    x = x_BxHxWxC.astype(cfg.dtype)
    k = cfg.conv_parts
    if k > 1 and x.shape[0] % k == 0:
      # Part i holds examples i, i + k, ... (the batch's sharding over devices is kept).
      x_NxKxHxWxC = x.reshape((x.shape[0] // k, k) + x.shape[1:])
      x_NxKxF = jnp.stack([conv_features(x_NxKxHxWxC[:, i]) for i in range(k)], axis=1)
      x_BxF = x_NxKxF.reshape(x.shape[0], -1)
    else:
      x_BxF = conv_features(x)
    x_BxF = nn.Dropout(cfg.dropout_rate, deterministic=not train)(x_BxF)
    h_BxD = nn.relu(nn.Dense(cfg.hidden_dim, dtype=cfg.dtype, name='fc1')(x_BxF))
    h_BxD = nn.Dropout(cfg.dropout_rate, deterministic=not train)(h_BxD)
    logits_BxK = nn.Dense(cfg.num_classes, dtype=cfg.dtype, name='fc2')(h_BxD)
    return logits_BxK.astype(jnp.float32)
