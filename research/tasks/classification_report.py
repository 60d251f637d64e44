"""End-of-training classification report: sklearn metrics and a confusion-matrix PNG.

sklearn (with the scipy and pandas it loads) is imported on first use, as matplotlib
is: it adds seconds to the start of every process that imports a family, and only
a run that writes its report needs it.
"""

import io
from typing import Sequence

import numpy as np

from research.train import files


def report(
  labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str]
) -> tuple[str, np.ndarray]:
  """Per-class precision / recall / F1 and the confusion matrix.

  Args:
    labels: int (N,) true classes.
    predictions: int (N,) predicted classes.
    class_names: a name per class (K names).

  Returns:
    sklearn's text report, and the int64 (K, K) confusion matrix with rows true
    and columns predicted classes.
  """
  from sklearn import metrics  # pylint: disable=g-import-not-at-top

  k = len(class_names)
  text = metrics.classification_report(
    labels,
    predictions,
    labels=np.arange(k),
    target_names=list(class_names),
    digits=4,
    zero_division=0,
  )
  return text, metrics.confusion_matrix(labels, predictions, labels=np.arange(k))


def confusion_matrix_png(
  matrix: np.ndarray, class_names: Sequence[str], title: str = 'Confusion matrix'
) -> bytes:
  """The (K, K) matrix drawn as an annotated heat map, encoded as PNG bytes."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from sklearn import metrics  # pylint: disable=g-import-not-at-top

  k = len(class_names)
  size = max(5.0, 0.45 * k + 2)
  fig, ax = plt.subplots(figsize=(size, size * 0.9))
  try:
    display = metrics.ConfusionMatrixDisplay(matrix, display_labels=list(class_names))
    display.plot(
      ax=ax,
      cmap='Blues',
      colorbar=True,
      include_values=k <= 20,
      xticks_rotation='vertical' if k > 10 else 'horizontal',
    )
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=120)
  finally:
    plt.close(fig)
  return buffer.getvalue()


def save_confusion_matrix_png(
  matrix: np.ndarray, class_names: Sequence[str], path: str, title: str = 'Confusion matrix'
) -> str:
  """Draws the (K, K) matrix (see `confusion_matrix_png`) and writes it to `path`,
  a local path or a URL (through etils.epath). Returns `path`."""
  return files.write_bytes(path, confusion_matrix_png(matrix, class_names, title))
