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
  """

  num_classes: int = 10
  hidden_dim: int = 512
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32


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
    x = x_BxHxWxC.astype(cfg.dtype)
    x = nn.relu(layers.Conv3x3(32, dtype=cfg.dtype, name='conv1')(x))
    x = nn.relu(layers.Conv3x3(64, dtype=cfg.dtype, name='conv2')(x))
    x = layers.max_pool2(x)
    x = nn.relu(layers.Conv3x3(128, dtype=cfg.dtype, name='conv3')(x))
    x_BxF = layers.max_pool2(x).reshape(x.shape[0], -1)
    x_BxF = nn.Dropout(cfg.dropout_rate, deterministic=not train)(x_BxF)
    h_BxD = nn.relu(nn.Dense(cfg.hidden_dim, dtype=cfg.dtype, name='fc1')(x_BxF))
    h_BxD = nn.Dropout(cfg.dropout_rate, deterministic=not train)(h_BxD)
    logits_BxK = nn.Dense(cfg.num_classes, dtype=cfg.dtype, name='fc2')(h_BxD)
    return logits_BxK.astype(jnp.float32)
