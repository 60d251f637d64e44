"""The loss function of image classification (see `research.train.steps`)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from research.data import augment
from research.train import steps


def make_prepare_fn(preprocessing: augment.ImagePreprocessing) -> steps.PrepareFn:
  """The first half of the loss: uint8 images -> normalised (augmented) model inputs.

  Returns:
    prepare(batch, rng, train) -> the batch with 'image' replaced by float32 (B, H, W,
    preprocessing.channels) model inputs, augmented with the first of `rng`'s two
    split keys when `train`.
  """

  def prepare(batch, rng, train):
    aug_rng = jax.random.split(rng)[0] if train else None
    return dict(batch, image=augment.preprocess(batch['image'], preprocessing, aug_rng))

  return prepare


def make_model_loss_fn(model: nn.Module) -> steps.LossFn:
  """The second half: softmax cross-entropy of the model on prepared images.

  Args:
    model: a Flax module called as `model.apply(vars, x, train=...)`, returning
      (B, K) float32 logits and using a 'dropout' PRNG stream (the second of `rng`'s
      two split keys) in training.

  Returns:
    loss_fn(params, batch, rng, train) -> (metrics, outputs) where batch holds 'image'
    float32 (B, H, W, C) model inputs, 'label' int32 (B,), 'mask' float32 (B,);
    metrics holds 'loss' and 'accuracy' (sum, count) pairs; outputs holds
    'prediction' int32 (B,).
  """

  def loss_fn(params, batch, rng, train):
    rngs = {'dropout': jax.random.split(rng)[1]} if train else {}
    logits_BxK = model.apply({'params': params}, batch['image'], train=train, rngs=rngs)
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


def make_loss_fn(model: nn.Module, preprocessing: augment.ImagePreprocessing) -> steps.SplitLoss:
  """Softmax cross-entropy on integer labels, with on-device augmentation.

  Args:
    model: see `make_model_loss_fn`.
    preprocessing: normalisation and training augmentation.

  Returns:
    a `SplitLoss` (`make_prepare_fn`, then `make_model_loss_fn`), called as
    loss_fn(params, batch, rng, train) -> (metrics, outputs) where batch holds
    'image' uint8 (B, H, W, C), 'label' int32 (B,), 'mask' float32 (B,); metrics
    holds 'loss' and 'accuracy' (sum, count) pairs; outputs holds 'prediction'
    int32 (B,).
  """
  return steps.SplitLoss(make_prepare_fn(preprocessing), make_model_loss_fn(model))
