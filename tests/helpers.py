"""Tiny CNN set-ups shared by the training-core tests."""

import jax
import jax.numpy as jnp
import numpy as np

from research.data import augment
from research.models import cnn
from research.tasks import classification
from research.train import optimizers
from research.train import state as state_lib

SIZE = 8  # Image side: the CNN pools twice, so fc1 sees 128 * 2 * 2 features.


def tiny_classifier(dropout_rate=0.5, augmentation=True, optimizer=None):
  """(model, loss_fn, state) for a 16-wide CNN on 8x8 images with 10 classes."""
  model = cnn.CNN(cnn.CNNConfig(hidden_dim=16, dropout_rate=dropout_rate))
  prep = augment.ImagePreprocessing(
      max_rotation_deg=10.0 if augmentation else 0.0,
      brightness=0.2 if augmentation else 0.0, contrast=0.2 if augmentation else 0.0)
  loss_fn = classification.make_loss_fn(model, prep)
  tx = optimizers.make_optimizer(optimizer or optimizers.OptimizerConfig())
  init = lambda rng: model.init({'params': rng}, jnp.zeros((1, SIZE, SIZE, 3)),
                                train=False)['params']
  state = state_lib.init_train_state(init, model.apply, tx, jax.random.key(0))
  return model, loss_fn, state


def tiny_data(n=32, seed=0):
  """n random uint8 grayscale images with labels in [0, 10)."""
  rng = np.random.default_rng(seed)
  return {'image': rng.integers(0, 256, (n, SIZE, SIZE, 1), dtype=np.uint8),
          'label': rng.integers(0, 10, n).astype(np.int32)}
