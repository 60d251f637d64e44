"""Fashion-MNIST as NumPy arrays, read offline from the Debian package's idx files.

`apt-get install dataset-fashion-mnist` puts the four gzip idx files of the original
release (60,000 train and 10,000 test images, 28x28 gray, 10 classes) under
/usr/share/datasets/fashion-mnist. NumPy only (no TensorFlow):
`fashion_mnist_offline` builds the tfds data set from these arrays.

The package's documentation also carries the data set's benchmarks, which the CNN
report prints beside its own test accuracy (`convnet_baselines`).
"""

import dataclasses
import gzip
import json
import os
import re
import zlib

import numpy as np

from research.errors import UserInputError

DEFAULT_DIRECTORY = '/usr/share/datasets/fashion-mnist'
# Another directory of the four files (e.g. a copy of the upstream release); read only
# when the tfds data set is first prepared.
ENV_VARIABLE = 'RESEARCH_FASHION_MNIST_DIR'
PACKAGE = 'dataset-fashion-mnist'
DOC_DIRECTORY = '/usr/share/doc/dataset-fashion-mnist'

# The tfds names under which a run trains on Fashion-MNIST (the report compares).
NAMES = ('fashion_mnist', 'fashion_mnist_offline')
FILES = {
  'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
  'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
CLASS_NAMES = (
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
)
_UBYTE = 0x08  # The idx type code of unsigned bytes, the only one the release uses.


def directory() -> str:
  """$RESEARCH_FASHION_MNIST_DIR if set, else the Debian package's directory."""
  return os.environ.get(ENV_VARIABLE) or DEFAULT_DIRECTORY


def read_idx(path: str, ndim: int) -> np.ndarray:
  """Reads a gzip idx file of unsigned bytes.

  The idx header is a big-endian magic number (two zero bytes, the type code 0x08,
  the number of dimensions), then each dimension as a big-endian uint32.

  Args:
    path: a .gz idx file.
    ndim: dimensions expected (3 for images, 1 for labels).

  Returns:
    uint8 array of the header's shape.

  Raises:
    UserInputError: one line naming the file, for a file that is not gzip, a wrong
      magic number, or data shorter or longer than the header says.
  """
  try:
    with gzip.open(path, 'rb') as f:
      data = f.read()
  # A cut-off download ends the gzip stream early (EOFError); a file that is not gzip
  # raises BadGzipFile (an OSError) or zlib.error.
  except (EOFError, OSError, zlib.error) as e:
    raise UserInputError(f'{path}: unreadable gzip idx file ({type(e).__name__}: {e})') from None
  magic = int.from_bytes(data[:4], 'big')
  if len(data) < 4 or magic != (_UBYTE << 8 | ndim):
    raise UserInputError(
      f'{path}: not an idx file of {ndim}-d unsigned bytes: magic number '
      f'0x{magic:08x}, expected 0x{_UBYTE << 8 | ndim:08x}'
    )
  header = 4 + 4 * ndim
  if len(data) < header:
    raise UserInputError(f'{path}: truncated idx file: {len(data)} bytes, header needs {header}')
  shape = tuple(int(d) for d in np.frombuffer(data, '>u4', ndim, offset=4))
  size = int(np.prod(shape))
  if len(data) - header != size:
    raise UserInputError(
      f'{path}: {"truncated" if len(data) - header < size else "overlong"} idx file: '
      f'shape {shape} needs {size} bytes of data, found {len(data) - header}'
    )
  return np.frombuffer(data, np.uint8, size, offset=header).reshape(shape)


def read_split(split: str, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Reads the 'train' (60,000) or 'test' (10,000) split.

  Args:
    split: 'train' or 'test'.
    source: directory of the four idx .gz files (None: `directory()`).

  Returns:
    images uint8 (N, 28, 28) and labels int64 (N,) in [0, 10).

  Raises:
    UserInputError: the directory or a file is missing (naming the package to
      install), a file is malformed, or images and labels disagree.
  """
  if split not in FILES:
    raise UserInputError(f'Fashion-MNIST has splits {sorted(FILES)}, not {split!r}')
  source = source or directory()
  paths = [os.path.join(source, name) for name in FILES[split]]
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise UserInputError(
      f'Fashion-MNIST not found: no {missing[0]}; install it with '
      f'`apt-get install {PACKAGE}` or set ${ENV_VARIABLE} to a directory of its idx .gz files'
    )
  images, labels = read_idx(paths[0], 3), read_idx(paths[1], 1)
  if images.shape[1:] != (28, 28) or len(labels) != len(images):
    raise UserInputError(
      f'{source}: {split} images {images.shape} and labels {labels.shape} do not '
      'match as (N, 28, 28) and (N,)'
    )
  if labels.size and labels.max() >= len(CLASS_NAMES):
    raise UserInputError(f'{paths[1]}: labels must lie in [0, 10), got max {labels.max()}')
  return images, labels.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Baseline:
  """A published Fashion-MNIST result.

  Attributes:
    classifier: the model as its submitter names it ('2 Conv+pooling', 'SVC').
    preprocessing: what was done to the images first ('' when not given).
    accuracy: Fashion-MNIST test accuracy in [0, 1], None when the source gives none.
  """

  classifier: str
  preprocessing: str = ''
  accuracy: float | None = None


def is_convnet(classifier: str) -> bool:
  """Whether a classifier's name describes a hand-built CNN ('3 Conv+BN', 'CNN ...').

  Named architectures (ResNet18, WRN-28-10, VGG16, ...) are convolutional too but
  far larger than the seed's CNN, so they are not its comparison.
  """
  return re.search(r'\bconv|\bcnn\b', classifier, re.IGNORECASE) is not None


def json_baselines(path: str) -> list[Baseline]:
  """The classifiers of the package's benchmark/baselines.json.

  The file is the scikit-learn benchmark runner's search space: {'common': {...},
  'classifiers': {name: [{parameter: [values]}, ...]}}. It names classifiers and
  their parameter grids only: no accuracies and no neural networks.

  Returns:
    one `Baseline` per classifier, accuracy None, preprocessing the grid as text.

  Raises:
    UserInputError: if the file is not JSON of that structure.
  """
  with open(path, encoding='utf-8') as f:
    try:
      content = json.load(f)
    except json.JSONDecodeError as e:
      raise UserInputError(f'{path}: not JSON ({e})') from None
  grids = content.get('classifiers') if isinstance(content, dict) else None
  if not isinstance(grids, dict):
    raise UserInputError(f"{path}: expected an object with a 'classifiers' object")
  return [
    Baseline(name, preprocessing='grid ' + json.dumps(grid, separators=(',', ':')))
    for name, grid in grids.items()
  ]


def readme_baselines(text: str) -> list[Baseline]:
  """The submitted-benchmark table of the package's README (Markdown).

  Rows are '|classifier|preprocessing|Fashion test accuracy|MNIST test accuracy|...';
  rows whose accuracy is not a number are skipped.

  Returns:
    a `Baseline` per row, in the table's order.
  """
  rows = []
  for line in text.splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) < 3 or not re.fullmatch(r'0?\.\d+|1(\.0*)?', cells[2]):
      continue
    preprocessing = '' if cells[1] in ('None', '-') else cells[1]
    rows.append(Baseline(cells[0], preprocessing, float(cells[2])))
  return rows


def convnet_baselines(doc_directory: str = DOC_DIRECTORY) -> list[Baseline]:
  """The convolutional networks among the package's published Fashion-MNIST results.

  Reads benchmark/baselines.json (which lists none: it is the scikit-learn
  runner's grid) and the README's table of submitted results, and keeps rows
  that give an accuracy and describe a hand-built CNN (`is_convnet`).

  Args:
    doc_directory: the package's documentation directory.

  Returns:
    the rows, best accuracy first; empty when the package is not installed.
  """
  rows = []
  json_path = os.path.join(doc_directory, 'benchmark', 'baselines.json')
  if os.path.isfile(json_path):
    rows += json_baselines(json_path)
  readme = os.path.join(doc_directory, 'README.md.gz')
  if os.path.isfile(readme):
    with gzip.open(readme, 'rt', encoding='utf-8') as f:
      rows += readme_baselines(f.read())
  kept = [r for r in rows if r.accuracy is not None and is_convnet(r.classifier)]
  return sorted(kept, key=lambda r: -(r.accuracy or 0.0))


def comparison_lines(accuracy: float, baselines: list[Baseline]) -> list[str]:
  """Report lines: our test accuracy beside the published convolutional networks.

  Args:
    accuracy: our test accuracy in [0, 1].
    baselines: from `convnet_baselines`.
  """
  if not baselines:
    return [
      f'Fashion-MNIST: no published CNN results to compare with (install {PACKAGE} '
      f'for its README table under {DOC_DIRECTORY})'
    ]
  lines = [
    'Fashion-MNIST test accuracy beside the CNNs of the data set README '
    "(submitted results, untested by its maintainers; 'ours' is this run):"
  ]
  rows = [('ours: this run (seed CNN, 48x48)', "the config's augment section", accuracy)]
  rows += [(b.classifier, b.preprocessing or 'none', b.accuracy or 0.0) for b in baselines]
  for name, preprocessing, value in sorted(rows, key=lambda r: -r[2]):
    lines.append(f'  {100 * value:6.2f}%  {name[:45]:45s}  {preprocessing[:60]}')
  return lines
