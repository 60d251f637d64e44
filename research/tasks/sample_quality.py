"""Sample quality through a trained classifier: prompt accuracy and Fréchet distance.

It judges the images of the DDPM task (`research.tasks.ddpm`): whether a sample
shows the class it was prompted with, and how far its features lie from real ones.

Dimension key: N images, F feature width, K classes.

The classifier is the seed's CNN (`research.models.cnn`); its features are the
ReLU'd fc1 activations, and the Fréchet distance between two feature sets is
that of Gaussians fitted to them (as FID does with Inception features):
|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

from research.data import augment


def make_classifier_fn(
  model, params: Any, preprocessing: augment.ImagePreprocessing, feature_layer: str = 'fc1'
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
  """A jitted images -> (logits (N, K), features (N, F)) function of a trained CNN.

  Args:
    model: a `research.models.cnn.CNN` (any module with a Dense named `feature_layer`).
    params: its trained parameters.
    preprocessing: the evaluation normalisation it was trained with.
    feature_layer: the Dense layer whose ReLU'd output is the feature vector.
  """

  def fn(images_u8):
    x = augment.preprocess(images_u8, preprocessing)
    logits, state = model.apply(
      {'params': params},
      x,
      train=False,
      capture_intermediates=lambda mdl, _: mdl.name == feature_layer,
    )
    features = state['intermediates'][feature_layer]['__call__'][0]
    return logits, jax.nn.relu(features.astype(jnp.float32))

  return jax.jit(fn)


def classify(
  classifier_fn, images_u8: np.ndarray, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
  """Predicted classes int (N,) and features float64 (N, F) of uint8 images."""
  preds, feats = [], []
  for i in range(0, len(images_u8), batch_size):
    logits, f = jax.device_get(classifier_fn(images_u8[i : i + batch_size]))
    preds.append(np.argmax(logits, -1))
    feats.append(f)
  return np.concatenate(preds), np.concatenate(feats).astype(np.float64)


def prompt_accuracy(predicted: np.ndarray, prompted: np.ndarray) -> float:
  """Share of samples the classifier assigns to the class they were prompted with."""
  predicted, prompted = np.asarray(predicted), np.asarray(prompted)
  if predicted.shape != prompted.shape or not predicted.size:
    raise ValueError(f'need equal, non-empty shapes, got {predicted.shape} and {prompted.shape}')
  return float(np.mean(predicted == prompted))


def gaussian_stats(features_NxF: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean (F,) and covariance (F, F) of the features (float64)."""
  f = np.asarray(features_NxF, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f'need at least 2 feature vectors (N, F), got shape {f.shape}')
  return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(
  mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray, eps: float = 1e-6
) -> float:
  """Fréchet distance of N(mu_a, cov_a) and N(mu_b, cov_b); mu (F,), cov (F, F) float64.

  A feature constant in either set (a ReLU unit that never fires) has a zero row
  and column in that covariance, so it adds nothing to tr((S_a S_b)^(1/2)): the
  square root is taken over the features that vary in both sets only, which is
  exact and keeps the matrix regular when the rest is full rank. A product still
  near-singular (fewer samples than varying features) gets `eps` added to the
  diagonals, as in the reference FID code.
  """
  diff = mu_a - mu_b
  varies = _varies_in_both(np.diag(cov_a), np.diag(cov_b))
  a, b = cov_a[np.ix_(varies, varies)], cov_b[np.ix_(varies, varies)]
  covmean = linalg.sqrtm(a @ b)
  if not np.isfinite(covmean).all():
    offset = np.eye(a.shape[0]) * eps
    covmean = linalg.sqrtm((a + offset) @ (b + offset))
  covmean = np.real(covmean)
  return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


def varying_features(features_a: np.ndarray, features_b: np.ndarray) -> int:
  """How many of the F features vary in both sets (N_a, F), (N_b, F): the side of the
  matrix whose square root the Fréchet distance takes (its covariances are full rank
  only while this is below min(N_a, N_b))."""
  return int(np.sum(_varies_in_both(np.var(features_a, 0), np.var(features_b, 0))))


def _varies_in_both(variance_a: np.ndarray, variance_b: np.ndarray) -> np.ndarray:
  """bool (F,): the features with a non-zero variance in both sets."""
  return (variance_a > 0) & (variance_b > 0)


def feature_frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two feature sets (N_a, F), (N_b, F)."""
  return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))
