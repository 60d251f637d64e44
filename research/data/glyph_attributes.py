"""Measured attributes of handwritten glyphs: stroke thickness, size and slant.

Dimension key: N images, H height, W width, C channels, A attributes, K classes.

Each attribute is one number per image, computed from its pixels (NumPy, no
model), so prompts can name it ("a thick, slanted seven") and samples asked for
it can be checked:

  thickness  ink mass / half the perimeter of the inked region: a stroke of
             width w and length l has ink w l and perimeter 2 (l + w) (2 l for a
             closed loop), so this is the stroke width in pixels (w l / (l + w)
             for a bar), whatever the glyph's size. The perimeter is counted in
             pixel sides, a staircase on curves (4 / pi too long for a circle),
             so curved strokes read thinner: compare within a class.
  size       bounding-box area of the inked pixels. MNIST scales every digit
             to a 20-pixel box, so for it this is mostly the glyph's width.
  slant      horizontal shift per pixel of height from the image moments,
             -mu11 / mu02: 0 upright, > 0 the top leans right.

Words name the low and the high third of each attribute within a class (a
thick one is thick for a one): `fit_thresholds` takes per-class tertiles (and
the median) on the training images, and `levels` labels each image 1 (low
third), 2 (high third) or 0 (middle, never named).
"""

import dataclasses

import numpy as np

# Attribute -> (word for the low third, word for the high third).
WORDS = {
  'thickness': ('thin', 'thick'),
  'size': ('small', 'large'),
  'slant': ('upright', 'slanted'),
}
_INK = 0.5  # A pixel is ink above this share of full intensity.


def check_names(names) -> None:
  """Raises ValueError naming an unknown attribute."""
  for n in names:
    if n not in WORDS:
      raise ValueError(f'unknown attribute {n!r}: use any of {tuple(WORDS)}')


def _gray(images_NxHxWxC: np.ndarray) -> np.ndarray:
  """float32 (N, H, W) in [0, 1]: ink intensity (the mean over channels)."""
  return np.asarray(images_NxHxWxC, np.float32).mean(-1) / 255.0


def _thickness(p: np.ndarray) -> np.ndarray:
  ink = p > _INK
  padded = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
  centre = padded[:, 1:-1, 1:-1]
  # Pixel sides between ink and background: the inked region's perimeter.
  perimeter = sum(
    (centre & ~padded[:, 1 + dy : padded.shape[1] - 1 + dy, 1 + dx : padded.shape[2] - 1 + dx]).sum(
      (1, 2)
    )
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
  )
  return p.sum((1, 2)) / np.maximum(perimeter / 2.0, 1.0)


def _extent(any_NxS) -> np.ndarray:
  """Span from the first to the last True along axis 1 (0 where none)."""
  s = any_NxS.shape[1]
  first = np.argmax(any_NxS, 1)
  last = s - 1 - np.argmax(any_NxS[:, ::-1], 1)
  return np.where(any_NxS.any(1), last - first + 1, 0)


def _size(p: np.ndarray) -> np.ndarray:
  ink = np.asarray(p > _INK)
  return (_extent(ink.any(2)) * _extent(ink.any(1))).astype(np.float32)


def _slant(p: np.ndarray) -> np.ndarray:
  _, h, w = p.shape
  y, x = np.mgrid[:h, :w].astype(np.float32)
  mass = np.maximum(p.sum((1, 2)), 1e-6)
  cx = (p * x).sum((1, 2)) / mass
  cy = (p * y).sum((1, 2)) / mass
  dx, dy = x - cx[:, None, None], y - cy[:, None, None]
  mu11 = (p * dx * dy).sum((1, 2))
  mu02 = np.maximum((p * dy * dy).sum((1, 2)), 1e-6)
  # Rows grow downwards: a top leaning right has x falling as y grows, mu11 < 0.
  return -mu11 / mu02


_MEASURES = {'thickness': _thickness, 'size': _size, 'slant': _slant}


def measure(images_NxHxWxC: np.ndarray, names) -> np.ndarray:
  """float32 (N, A): attribute `names[a]` of each uint8 image, dark background."""
  check_names(names)
  p = _gray(images_NxHxWxC)
  if not names:
    return np.zeros((len(p), 0), np.float32)
  return np.stack([_MEASURES[n](p) for n in names], -1).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """Per-class cut points of each attribute, float32 (K, A) each."""

  low: np.ndarray  # Upper end of the low third.
  median: np.ndarray
  high: np.ndarray  # Lower end of the high third.


def fit_thresholds(values_NxA: np.ndarray, labels_N: np.ndarray, num_classes: int) -> Thresholds:
  """Tertiles and medians of each attribute within each class; a class without
  images (a small split) takes those of all the images."""
  pooled = np.quantile(values_NxA, [1 / 3, 1 / 2, 2 / 3], axis=0)
  cuts = []
  for k in range(num_classes):
    v = values_NxA[labels_N == k]
    cuts.append(np.quantile(v, [1 / 3, 1 / 2, 2 / 3], axis=0) if len(v) else pooled)
  low, median, high = np.stack(cuts, 1).astype(np.float32)
  return Thresholds(low, median, high)


def levels(values_NxA: np.ndarray, labels_N: np.ndarray, thresholds: Thresholds) -> np.ndarray:
  """int32 (N, A): 1 in the class's low third, 2 in its high third, else 0."""
  lab = np.asarray(labels_N)
  low = values_NxA < thresholds.low[lab]
  high = values_NxA > thresholds.high[lab]
  return np.where(low, 1, np.where(high, 2, 0)).astype(np.int32)


def agreement(
  values_NxA: np.ndarray, labels_N: np.ndarray, asked_NxA: np.ndarray, thresholds: Thresholds
) -> np.ndarray:
  """float (A,): share of images on the asked side of their class's median.

  asked_NxA holds 1 (asked for the low word), 2 (the high word) or 0 (not asked,
  left out). Chance is 0.5; NaN for an attribute never asked.
  """
  median = thresholds.median[np.asarray(labels_N)]
  right = np.where(asked_NxA == 1, values_NxA < median, values_NxA > median)
  asked = asked_NxA > 0
  with np.errstate(invalid='ignore'):
    return (right & asked).sum(0) / asked.sum(0)
