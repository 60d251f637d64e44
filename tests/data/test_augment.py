"""On-device preprocessing and augmentation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from research.data import augment

IMAGES = jax.random.uniform(jax.random.key(0), (4, 12, 12, 1))


def test_zero_rotation_is_the_identity():
  chex.assert_trees_all_close(augment.rotate(IMAGES, jnp.zeros(4)), IMAGES, atol=1e-6)


def test_quarter_turn_matches_numpy():
  turned = augment.rotate(IMAGES, jnp.full(4, np.pi / 2))
  expected = np.rot90(np.asarray(IMAGES), k=1, axes=(1, 2))
  # Same pixels up to the direction convention of the angle.
  alt = np.rot90(np.asarray(IMAGES), k=-1, axes=(1, 2))
  err = min(np.abs(turned - expected).max(), np.abs(turned - alt).max())
  assert err < 1e-4


def test_augment_keeps_shape_and_range_and_depends_on_the_key():
  cfg = augment.ImagePreprocessing(max_rotation_deg=10, brightness=0.2, contrast=0.2)
  a = augment.augment(IMAGES, jax.random.key(1), cfg)
  b = augment.augment(IMAGES, jax.random.key(2), cfg)
  chex.assert_shape(a, IMAGES.shape)
  assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
  assert not np.allclose(a, b)
  chex.assert_trees_all_equal(a, augment.augment(IMAGES, jax.random.key(1), cfg))


def test_examples_get_their_own_random_parameters():
  cfg = augment.ImagePreprocessing(brightness=0.2)
  same = jnp.broadcast_to(IMAGES[:1], (4, 12, 12, 1)) * 0.5
  out = augment.augment(same, jax.random.key(3), cfg)
  assert len({round(float(x), 5) for x in out.mean(axis=(1, 2, 3))}) == 4


def test_preprocess_normalises_and_repeats_gray_to_rgb():
  cfg = augment.ImagePreprocessing(mean=(0.5,), std=(0.25,), channels=3)
  u8 = jnp.array([0, 255], jnp.uint8).reshape(1, 1, 2, 1)
  out = augment.preprocess(u8, cfg)
  chex.assert_shape(out, (1, 1, 2, 3))
  np.testing.assert_allclose(out[0, 0, :, 0], [-2.0, 2.0])
  np.testing.assert_allclose(out[..., 0], out[..., 2])


def test_contrast_factor_one_and_brightness_one_are_identity():
  out = augment.jitter_brightness_contrast(IMAGES, jnp.ones(4), jnp.ones(4))
  chex.assert_trees_all_close(out, IMAGES, atol=1e-6)
