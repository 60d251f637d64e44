"""The loss function of image classification (see `research.train.steps`)."""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from research.data import augment


def make_loss_fn(model: nn.Module, preprocessing: augment.ImagePreprocessing) -> Callable:
  """Softmax cross-entropy on integer labels, with on-device augmentation.

  Args:
    model: a Flax module called as `model.apply(vars, x, train=...)`, returning
      (B, K) float32 logits and using a 'dropout' PRNG stream in training.
    preprocessing: normalisation and training augmentation.

  Returns:
    loss_fn(params, batch, rng, train) -> (metrics, outputs) where batch holds
    'image' uint8 (B, H, W, C), 'label' int32 (B,), 'mask' float32 (B,); metrics
    holds 'loss' and 'accuracy' (sum, count) pairs; outputs holds 'prediction'
    int32 (B,).
  """

  def loss_fn(params, batch, rng, train):
    if train:
      aug_rng, dropout_rng = jax.random.split(rng)
      x = augment.preprocess(batch['image'], preprocessing, aug_rng)
      rngs = {'dropout': dropout_rng}
    else:
      x = augment.preprocess(batch['image'], preprocessing)
      rngs = {}
    logits_BxK = model.apply({'params': params}, x, train=train, rngs=rngs)
    losses_B = optax.softmax_cross_entropy_with_integer_labels(logits_BxK, batch['label'])
    prediction_B = jnp.argmax(logits_BxK, axis=-1).astype(jnp.int32)
    mask_B = batch['mask']
    count = mask_B.sum()
    metrics = {
      'loss': ((losses_B * mask_B).sum(), count),
      'accuracy': (((prediction_B == batch['label']) * mask_B).sum(), count),
    }
    return metrics, {'prediction': prediction_B}

  return loss_fn
