"""Character-level text corpora: loading, splitting, and a bigram baseline.

A corpus is a train and a validation text. It comes from a tfds data set whose
splits hold 'text' features (tfds's `tiny_shakespeare`, or the offline
`text_offline`, see `research.data.text_offline`), or from any UTF-8 text file,
split the same deterministic way as `text_offline`.

The corpus is encoded by a `research.data.tokenizers.CharTokenizer` built from
the training text only; characters it has not seen get `UNK_ID`.
"""

import dataclasses
import math
import os

import numpy as np

from research.data import tfds_io
from research.data import tokenizers
from research.errors import UserInputError

VALIDATION_FRACTION = 0.1


def pydoc_topics_text() -> str:
  """The prose of `pydoc_data.topics` (ships with CPython), topics in sorted order."""
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top

  return '\n\n'.join(topics.topics[k].strip('\n') for k in sorted(topics.topics)) + '\n'


def split_text(text: str, validation_fraction: float = VALIDATION_FRACTION) -> tuple[str, str]:
  """Deterministic contiguous split: the tail is validation, cut at a line start.

  Returns:
    (train, validation), which concatenate back to `text`.

  Raises:
    UserInputError: if either part would be empty.
  """
  if not 0 < validation_fraction < 1:
    raise UserInputError(f'validation_fraction must be in (0, 1), got {validation_fraction}')
  cut = int(len(text) * (1 - validation_fraction))
  line_start = text.find('\n', cut)
  if 0 <= line_start < len(text) - 1:
    cut = line_start + 1
  if cut <= 0 or cut >= len(text):
    raise UserInputError(
      f'text of {len(text)} characters is too short to split into train and validation'
    )
  return text[:cut], text[cut:]


@dataclasses.dataclass(frozen=True)
class TextCorpus:
  """A character corpus, encoded.

  Attributes:
    train: int32 (N_train,) ids of the training text.
    validation: int32 (N_val,) ids of the validation text.
    vocab: the character tokenizer, built from the training text.
    name: data set name (tfds name or the file's path).
    version: tfds version, or the file's size and mtime.
  """

  train: np.ndarray
  validation: np.ndarray
  vocab: tokenizers.CharTokenizer
  name: str
  version: str


def _tfds_text(name: str, split: str, data_dir: str | None) -> tuple[str, str]:
  tfds = tfds_io.import_tfds()
  builder = tfds_io.get_builder(name, data_dir)
  if 'text' not in builder.info.features:
    raise UserInputError(
      f'data set {name!r} has no "text" feature: use a character '
      "text data set such as 'tiny_shakespeare' or 'text_offline'"
    )
  builder.download_and_prepare()
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except (ValueError, KeyError) as e:
    known = ', '.join(builder.info.splits) or 'see the tfds catalog'
    raise UserInputError(f'data set {name!r} has no split {split!r} ({known}): {e}') from None
  parts = [ex['text'].decode('utf-8') for ex in tfds.as_numpy(ds)]
  return ''.join(parts), str(builder.info.version)


def read_text_file(path: str) -> str:
  """The UTF-8 text of `path` (invalid bytes replaced), or UserInputError."""
  try:
    with open(os.path.expanduser(path), encoding='utf-8', errors='replace') as f:
      return f.read()
  except OSError as e:
    raise UserInputError(f'cannot read text file {path!r}: {e.strerror or e}') from None


def load_corpus(
  name: str,
  *,
  train_split: str = 'train',
  validation_split: str = 'validation',
  text_file: str = '',
  data_dir: str | None = None,
) -> TextCorpus:
  """Loads and encodes a corpus.

  Args:
    name: tfds data set with a 'text' feature ('text_offline', 'tiny_shakespeare').
    train_split: its training split (slicing allowed).
    validation_split: its validation split.
    text_file: if set, read this UTF-8 file instead of tfds, split by `split_text`.
    data_dir: tfds data directory (None: tfds's default).

  Raises:
    UserInputError: for an unknown data set, split or file, or an empty split.
  """
  if text_file:
    train, validation = split_text(read_text_file(text_file))
    stat = os.stat(os.path.expanduser(text_file))
    name, version = os.path.abspath(text_file), f'{stat.st_size}B@{int(stat.st_mtime)}'
  else:
    train, version = _tfds_text(name, train_split, data_dir)
    validation, _ = _tfds_text(name, validation_split, data_dir)
  for split, t in (('training', train), ('validation', validation)):
    if len(t) < 2:
      raise UserInputError(
        f'the {split} text of {name!r} has {len(t)} characters; it needs at least 2'
      )
  vocab = tokenizers.CharTokenizer.from_text(train)
  return TextCorpus(
    train=vocab.encode(train),
    validation=vocab.encode(validation),
    vocab=vocab,
    name=name,
    version=version,
  )


def bigram_bits_per_char(
  train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int, smoothing: float = 1.0
) -> float:
  """Bits per character of an add-`smoothing` bigram model counted on `train_ids`.

  Scores every character of `eval_ids` after the first given the one before it,
  which is what the language model's loss scores too.
  """
  counts_VxV = np.full((vocab_size, vocab_size), smoothing, np.float64)
  np.add.at(counts_VxV, (train_ids[:-1], train_ids[1:]), 1.0)
  log_p_VxV = np.log2(counts_VxV / counts_VxV.sum(axis=1, keepdims=True))
  return float(-log_p_VxV[eval_ids[:-1], eval_ids[1:]].mean())


def bits_per_char(loss_nats: float) -> float:
  """A mean cross-entropy in nats per character, in bits per character."""
  return loss_nats / math.log(2)
