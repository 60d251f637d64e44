"""Attribute measures on drawn strokes whose width, length and slant are known."""

import numpy as np
import pytest

from research.data import glyph_attributes as ga


def _stroke(width: int, half_length: int = 8, shift: float = 0.0, side: int = 28) -> np.ndarray:
  """uint8 (side, side, 1): a stroke through the centre, `width` pixels wide and
  2 * half_length + 1 tall, its top moved right by `shift` pixels per pixel of height."""
  img = np.zeros((side, side, 1), np.uint8)
  c = side // 2
  for dy in range(-half_length, half_length + 1):
    x0 = int(round(c - width / 2 - shift * dy))
    img[c + dy, x0 : x0 + width] = 255
  return img


def test_thickness_is_the_stroke_width_whatever_the_length():
  for width in (1, 2, 4):
    bars = np.stack([_stroke(width, 4), _stroke(width, 10)])
    lengths = np.array([9, 21])
    # A bar's ink over half its perimeter: w l / (l + w), near w when l >> w.
    np.testing.assert_allclose(
      ga.measure(bars, ('thickness',))[:, 0], width * lengths / (lengths + width), rtol=1e-6
    )
  slanted = ga.measure(np.stack([_stroke(w, 10, 0.3) for w in (1, 2, 3, 4, 5)]), ('thickness',))
  assert np.all(np.diff(slanted[:, 0]) > 0.5)
  # A ring has no ends, but its perimeter counted in pixel sides is a staircase,
  # 4 / pi longer than the circle on average: pi / 4 of its width.
  y, x = np.mgrid[:28, :28]
  for width in (2, 4):
    r = np.hypot(y - 13.5, x - 13.5)
    ring = ((r <= 11) & (r > 11 - width)).astype(np.uint8)[..., None] * 255
    assert abs(ga.measure(ring[None], ('thickness',))[0, 0] - np.pi / 4 * width) < 0.1 * width


def test_size_is_the_bounding_box_area():
  values = ga.measure(np.stack([_stroke(3, 4), _stroke(3, 8), _stroke(6, 8)]), ('size',))[:, 0]
  np.testing.assert_allclose(values, [3 * 9, 3 * 17, 6 * 17])


def test_slant_is_the_horizontal_shift_per_pixel_of_height_top_right_positive():
  shifts = (-0.4, 0.0, 0.25, 0.5)
  values = ga.measure(np.stack([_stroke(2, 10, s) for s in shifts]), ('slant',))[:, 0]
  np.testing.assert_allclose(values, shifts, atol=0.05)


def test_measure_orders_columns_as_named_and_rejects_unknown_names():
  imgs = np.stack([_stroke(2, 6, 0.3), _stroke(4, 9)])
  both = ga.measure(imgs, ('slant', 'size'))
  np.testing.assert_allclose(both[:, 0], ga.measure(imgs, ('slant',))[:, 0])
  np.testing.assert_allclose(both[:, 1], ga.measure(imgs, ('size',))[:, 0])
  assert ga.measure(imgs, ()).shape == (2, 0)
  with pytest.raises(ValueError, match="unknown attribute 'colour'"):
    ga.measure(imgs, ('colour',))


def test_levels_name_the_low_and_high_third_within_each_class():
  # Class 0 measures 0..8, class 1 measures 100..108: the same ranks, other scales.
  values = np.concatenate([np.arange(9.0), 100 + np.arange(9.0)])[:, None]
  labels = np.repeat([0, 1], 9)
  th = ga.fit_thresholds(values, labels, 2)
  np.testing.assert_allclose(th.median[:, 0], [4, 104])
  expected = [1, 1, 1, 0, 0, 0, 2, 2, 2]
  np.testing.assert_array_equal(ga.levels(values, labels, th)[:, 0], expected * 2)
  # A class without images (a small split) takes the tertiles of all images.
  np.testing.assert_allclose(ga.fit_thresholds(values, labels, 3).median[2, 0], 54)


def test_agreement_counts_samples_on_the_asked_side_of_their_class_median():
  # Class 0 measures 0..9 (median 4.5), class 1 100..109 (median 104.5).
  values = np.concatenate([np.arange(10.0), 100 + np.arange(10.0)])[:, None]
  th = ga.fit_thresholds(values, np.repeat([0, 1], 10), 2)
  samples = np.array([[1.0], [9.0], [2.0], [8.0], [5.0], [101.0], [108.0]])
  labels = np.array([0, 0, 0, 0, 0, 1, 1])
  # Right, right, wrong, wrong, not asked; class 1: right, right.
  asked = np.array([[1], [2], [2], [1], [0], [1], [2]])
  np.testing.assert_allclose(ga.agreement(samples, labels, asked, th), [4 / 6])
  asked_right = np.array([[1], [2], [1], [2], [0], [1], [2]])
  np.testing.assert_allclose(ga.agreement(samples, labels, asked_right, th), [1.0])
