"""Sample-quality measures: Fréchet distance, prompt accuracy, CNN features."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import linalg as scipy_linalg

from research.data import augment
from research.models import cnn
from research.tasks import sample_quality


def test_frechet_distance_of_identical_sets_is_zero():
  f = np.random.default_rng(0).normal(size=(500, 4))
  assert abs(sample_quality.feature_frechet_distance(f, f)) < 1e-6


def test_frechet_distance_closed_form_for_diagonal_gaussians():
  mu_a, mu_b = np.array([0.0, 1.0]), np.array([2.0, -1.0])
  var_a, var_b = np.array([1.0, 4.0]), np.array([9.0, 1.0])
  got = sample_quality.frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
  want = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_frechet_distance_grows_with_a_shift():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3))
  near = sample_quality.feature_frechet_distance(a, b)
  far = sample_quality.feature_frechet_distance(a, b + 2.0)
  assert near < 0.05 and abs(far - 12.0) < 0.5


def test_prompt_accuracy():
  assert sample_quality.prompt_accuracy(np.array([1, 2, 3, 3]), np.array([1, 2, 0, 3])) == 0.75
  with pytest.raises(ValueError):
    sample_quality.prompt_accuracy(np.array([1]), np.array([1, 2]))


def test_classifier_fn_gives_logits_and_fc1_features():
  model = cnn.CNN(cnn.CNNConfig(hidden_dim=16))
  params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False)['params']
  fn = sample_quality.make_classifier_fn(model, params, augment.ImagePreprocessing())
  images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), np.uint8)
  pred, feats = sample_quality.classify(fn, images, batch_size=2)
  chex.assert_shape(pred, (5,))
  chex.assert_shape(feats, (5, 16))
  assert (feats >= 0).all()  # ReLU'd fc1 activations.
  logits = model.apply(
    {'params': params},
    augment.preprocess(jnp.asarray(images), augment.ImagePreprocessing()),
    train=False,
  )
  np.testing.assert_array_equal(pred, np.argmax(logits, -1))


def test_frechet_distance_drops_dead_features_exactly_and_without_warning():
  # Features 2 and 4 never fire in one of the sets (dead ReLU units): the square root
  # is taken over the others, which must equal the closed form of a full-rank case.
  rng = np.random.default_rng(2)
  n, f = 300, 6
  a = rng.normal(size=(n, f)) @ rng.normal(size=(f, f))
  b = rng.normal(size=(n, f)) @ rng.normal(size=(f, f)) + 0.5
  a[:, 2] = 0.0
  b[:, 4] = 1.5
  mu_a, cov_a = sample_quality.gaussian_stats(a)
  mu_b, cov_b = sample_quality.gaussian_stats(b)
  keep = [0, 1, 3, 5]
  sa, sb = cov_a[np.ix_(keep, keep)], cov_b[np.ix_(keep, keep)]
  root_a = scipy_linalg.sqrtm(sa)
  want = (
    np.sum((mu_a - mu_b) ** 2)
    + np.trace(cov_a)
    + np.trace(cov_b)
    - 2.0 * np.trace(np.real(scipy_linalg.sqrtm(root_a @ sb @ root_a)))
  )
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    got = sample_quality.frechet_distance(mu_a, cov_a, mu_b, cov_b)
  np.testing.assert_allclose(got, want, rtol=1e-9)
  assert sample_quality.varying_features(a, b) == 4
