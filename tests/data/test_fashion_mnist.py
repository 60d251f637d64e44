"""Fashion-MNIST from idx files: the reader, its errors, the CNN data path, baselines.

Every test builds tiny idx.gz files in tmp_path: the Debian package is not needed.
"""

import gzip
import json
import os

import chex
import numpy as np
import pytest

from experiments.cnn.configs import fashion_mnist as fashion_config
from research.data import augment
from research.data import fashion_mnist
from research.errors import UserInputError
from research.families import cnn


def idx_bytes(array: np.ndarray) -> bytes:
  """The idx encoding of a uint8 array: magic 0x0000 08 ndim, big-endian dims, data."""
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, '>u4').tobytes()
  return header + array.astype(np.uint8).tobytes()


def write_gz(path, data: bytes) -> None:
  with gzip.open(path, 'wb') as f:
    f.write(data)


def write_release(directory, sizes=(('train', 12), ('test', 6)), seed=0):
  """Writes the four idx.gz files of a tiny Fashion-MNIST; returns {split: arrays}."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  arrays = {}
  for split, n in sizes:
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    image_file, label_file = fashion_mnist.FILES[split]
    write_gz(os.path.join(directory, image_file), idx_bytes(images))
    write_gz(os.path.join(directory, label_file), idx_bytes(labels))
    arrays[split] = images, labels
  return arrays


def one_line_error(call, *match):
  with pytest.raises(UserInputError) as e:
    call()
  message = str(e.value)
  assert '\n' not in message, message
  for m in match:
    assert m in message, message
  return message


def test_images_and_labels_round_trip_exactly(tmp_path):
  written = write_release(tmp_path)
  for split, (images, labels) in written.items():
    got_images, got_labels = fashion_mnist.read_split(split, str(tmp_path))
    assert got_images.dtype == np.uint8 and got_images.shape == images.shape
    assert np.issubdtype(got_labels.dtype, np.integer)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize('cut', ['data', 'gzip'])
def test_a_truncated_file_is_rejected_in_one_line(tmp_path, cut):
  write_release(tmp_path)
  path = os.path.join(tmp_path, fashion_mnist.FILES['train'][0])
  if cut == 'data':  # A whole gzip stream of too few pixels.
    write_gz(path, idx_bytes(np.zeros((12, 28, 28), np.uint8))[:-100])
    match = 'truncated idx file'
  else:  # A download cut off inside the gzip stream.
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[: len(data) // 2])
    match = 'unreadable gzip'
  one_line_error(lambda: fashion_mnist.read_split('train', str(tmp_path)), path, match)


def test_a_wrong_magic_number_is_rejected_in_one_line(tmp_path):
  write_release(tmp_path)
  path = os.path.join(tmp_path, fashion_mnist.FILES['test'][1])
  labels = idx_bytes(np.zeros(6, np.uint8))
  write_gz(path, b'\x00\x00\x09\x01' + labels[4:])  # Type 0x09 (signed bytes).
  one_line_error(
    lambda: fashion_mnist.read_split('test', str(tmp_path)), path, 'magic number 0x00000901'
  )


def test_a_missing_directory_names_the_package(tmp_path):
  one_line_error(
    lambda: fashion_mnist.read_split('train', str(tmp_path / 'absent')),
    'apt-get install dataset-fashion-mnist',
    fashion_mnist.ENV_VARIABLE,
  )


def test_the_cnn_data_path_yields_48x48_rgb_inputs(tmp_path, monkeypatch):
  written = write_release(tmp_path / 'idx')
  monkeypatch.setenv(fashion_mnist.ENV_VARIABLE, str(tmp_path / 'idx'))
  c = fashion_config.get_config()
  c.data_dir = str(tmp_path / 'tfds')
  c.data_cache_dir = str(tmp_path / 'cache')
  train, test = cnn.train_and_test(c, None)
  assert (len(train), len(test)) == (12, 6) and train.name == 'fashion_mnist_offline'
  assert train.num_classes == 10 and train.class_names == fashion_mnist.CLASS_NAMES
  chex.assert_shape(train.image, (12, 48, 48, 1))
  # The prepared data is in tfds's own order: compare labels as multisets.
  np.testing.assert_array_equal(np.sort(test.label), np.sort(written['test'][1]))
  inputs = augment.preprocess(train.image, cnn.preprocessing(c, train=False))
  chex.assert_shape(inputs, (12, 48, 48, 3))
  chex.assert_tree_all_finite(inputs)
  assert os.listdir(tmp_path / 'cache')  # Later runs read the resized splits from here.


def test_the_cnn_data_path_without_the_files_names_the_package(tmp_path, monkeypatch):
  monkeypatch.setenv(fashion_mnist.ENV_VARIABLE, str(tmp_path / 'absent'))
  c = fashion_config.get_config()
  c.data_dir = str(tmp_path / 'tfds')
  c.data_cache_dir = ''
  one_line_error(lambda: cnn.train_and_test(c, None), 'apt-get install dataset-fashion-mnist')


# The package's benchmark/baselines.json (the scikit-learn runner's grid) and a few
# rows of its README's table of submitted results, in their formats.
BASELINES_JSON = {
  'common': {},
  'classifiers': {
    'SVC': [{'C': [1.0, 10.0]}, {'kernel': ['linear', 'rbf']}],
    'MLPClassifier': [{'activation': ['relu'], 'hidden_layer_sizes': ['(100,)']}],
  },
}
README = """
| Classifier | Preprocessing | Fashion test accuracy | MNIST test accuracy | Submitter| Code |
| --- | --- | --- | --- | --- |--- |
|2 Conv+pooling | None | 0.876 | - | [K](https://x) | [:link:](https://y) |
|3 Conv+BN+pooling|None|0.921|0.992|[G](https://g)|[:link:](https://h)|
|CNN with optional shortcuts| standardization | 0.947 |-| [k](https://d) | [:link:](https://e)|
|ResNet18 | Normalization | 0.949 | 0.979 |[K](https://k)| [:link:](https://l)|
|GRU+SVM | None| 0.888 | 0.965 | [A](https://a) | [:link:](https://b)|
|Human Performance| Crowd-sourced | 0.835 | - | Leo  | - |
"""


def test_baselines_keep_the_published_cnns(tmp_path):
  (tmp_path / 'benchmark').mkdir()
  (tmp_path / 'benchmark' / 'baselines.json').write_text(json.dumps(BASELINES_JSON))
  with gzip.open(tmp_path / 'README.md.gz', 'wt') as f:
    f.write(README)
  grid = fashion_mnist.json_baselines(str(tmp_path / 'benchmark' / 'baselines.json'))
  assert [b.classifier for b in grid] == ['SVC', 'MLPClassifier']
  assert all(b.accuracy is None for b in grid)
  rows = fashion_mnist.convnet_baselines(str(tmp_path))
  assert [(b.classifier, b.preprocessing, b.accuracy) for b in rows] == [
    ('CNN with optional shortcuts', 'standardization', 0.947),
    ('3 Conv+BN+pooling', '', 0.921),
    ('2 Conv+pooling', '', 0.876),
  ]
  lines = fashion_mnist.comparison_lines(0.9, rows)
  assert len(lines) == 5 and lines[3].split()[:2] == ['90.00%', 'ours:']
  assert fashion_mnist.convnet_baselines(str(tmp_path / 'absent')) == []
  assert 'dataset-fashion-mnist' in fashion_mnist.comparison_lines(0.9, [])[0]


def test_a_baselines_file_of_another_structure_is_rejected(tmp_path):
  path = tmp_path / 'baselines.json'
  path.write_text(json.dumps({'results': []}))
  one_line_error(lambda: fashion_mnist.json_baselines(str(path)), "'classifiers'")
