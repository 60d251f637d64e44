"""The prepared-data cache: a truncated entry is detected, logged and rebuilt."""

import logging
import os

import numpy as np

from research.data import image_classification
from research.data import tfds_io


def _no_tensorflow():
  raise AssertionError('TensorFlow imported for a cached split')


def test_a_truncated_entry_is_logged_and_rebuilt(offline_data_dir, tmp_path, monkeypatch, caplog):
  load = lambda: image_classification.load_image_classification(
    'mnist_offline', 'test[:20]', image_size=8, data_dir=offline_data_dir, cache_dir=str(tmp_path)
  )
  first = load()
  (entry,) = [p for p in tmp_path.iterdir() if p.suffix == '.npz']
  with open(entry, 'r+b') as f:
    f.truncate(os.path.getsize(entry) // 2)  # A copy or a write cut short.
  with caplog.at_level(logging.WARNING):
    again = load()
  np.testing.assert_array_equal(again.image, first.image)
  np.testing.assert_array_equal(again.label, first.label)
  assert any(
    'unreadable' in r.getMessage() and entry.name in r.getMessage() for r in caplog.records
  )
  monkeypatch.setattr(tfds_io, 'import_tensorflow', _no_tensorflow)
  np.testing.assert_array_equal(load().image, first.image)  # Rebuilt: read from the cache.
