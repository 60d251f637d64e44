"""Tokenizers of every text model: characters, UTF-8 bytes, prompt words and corpus words.

One convention for all of them. The first `NUM_SPECIAL` ids are shared (defined in
`research.models.special_tokens`, which the models read too):

  PAD_ID 0  padding; losses and the prompt encoder mask it out.
  BOS_ID 1  beginning of sequence: the seq2seq decoder's first input.
  EOS_ID 2  end of sequence: ends seq2seq targets and prompts.
  UNK_ID 3  a character or word outside the vocabulary.

A tokenizer's own symbols follow, symbol i having id NUM_SPECIAL + i. `encode`
returns int32 ids of the symbols only (no BOS or EOS; callers add them where
their format needs them). `decode` reads ids up to the first EOS, drops PAD and
BOS, and prints UNK (and any id past the vocabulary) as U+FFFD.

`VocabularyTokenizer` (a word-level corpus such as the Penn Treebank) differs in
two ways, because its texts are many sentences and mark rare words themselves:
the words `<eos>` and `<unk>` are EOS_ID and UNK_ID, and `decode` reads past EOS,
writing it as a newline and UNK as `<unk>`.
"""

import collections
import dataclasses
import re
from typing import Iterable, Protocol, Sequence

import numpy as np

from research.errors import UserInputError
from research.models.special_tokens import BOS_ID
from research.models.special_tokens import EOS_ID
from research.models.special_tokens import NUM_SPECIAL
from research.models.special_tokens import PAD_ID
from research.models.special_tokens import UNK_ID

UNK_TEXT = '\ufffd'  # How UNK_ID decodes.
EOS_WORD = '<eos>'  # A corpus's end of sentence (a newline): EOS_ID.
UNK_WORD = '<unk>'  # A corpus's own mark of a rare word: UNK_ID.


class Tokenizer(Protocol):
  """Text <-> int32 token ids under the convention above."""

  @property
  def size(self) -> int:
    """V: the number of ids, special ids included."""

  def encode(self, text: str) -> np.ndarray:
    """int32 (len,) ids of `text`."""

  def decode(self, ids: Iterable[int]) -> str:
    """The text of `ids` up to the first EOS."""


def _symbols(ids: Iterable[int], size: int) -> list[int]:
  """Symbol indices (id - NUM_SPECIAL) of `ids` up to the first EOS, PAD and BOS
  dropped; -1 for UNK_ID and for ids >= `size`."""
  out = []
  for i in np.asarray(ids).reshape(-1).tolist():
    if i == EOS_ID:
      break
    if i in (PAD_ID, BOS_ID):
      continue
    out.append(i - NUM_SPECIAL if NUM_SPECIAL <= i < size else -1)
  return out


def _id_table(symbols: Sequence[str], what: str) -> dict[str, int]:
  """{symbol: NUM_SPECIAL + index}; `what` names the symbols in the error.

  Raises:
    ValueError: if a symbol repeats.
  """
  if len(set(symbols)) != len(symbols):
    raise ValueError(f'{what} repeat in {symbols!r}')
  return {x: NUM_SPECIAL + i for i, x in enumerate(symbols)}


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
  """Characters <-> ids: chars[i] has id NUM_SPECIAL + i.

  Attributes:
    chars: the known characters, each once.
    strict: encoding an unknown character raises UserInputError (naming it)
      instead of giving UNK_ID.
  """

  chars: str
  strict: bool = False
  _ids: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    object.__setattr__(self, '_ids', _id_table(self.chars, 'characters'))

  @classmethod
  def from_text(cls, text: str, *, strict: bool = False) -> 'CharTokenizer':
    """The sorted distinct characters of `text` (e.g. a training split)."""
    return cls(''.join(sorted(set(text))), strict=strict)

  @property
  def size(self) -> int:
    """V = len(chars) + NUM_SPECIAL."""
    return len(self.chars) + NUM_SPECIAL

  def encode(self, text: str) -> np.ndarray:
    """int32 (len(text),) ids; unknown characters give UNK_ID (or raise if strict).

    Raises:
      UserInputError: if `strict` and `text` has a character outside `chars`.
    """
    if self.strict:
      unknown = next((c for c in text if c not in self._ids), None)
      if unknown is not None:
        raise UserInputError(f'character {unknown!r} is not in the vocabulary {self.chars!r}')
    return np.fromiter((self._ids.get(c, UNK_ID) for c in text), np.int32, len(text))

  def decode(self, ids: Iterable[int]) -> str:
    """The text of int ids up to the first EOS (PAD, BOS dropped; UNK as U+FFFD)."""
    return ''.join(self.chars[s] if s >= 0 else UNK_TEXT for s in _symbols(ids, self.size))


@dataclasses.dataclass(frozen=True)
class ByteTokenizer:
  """UTF-8 bytes <-> ids: byte b has id NUM_SPECIAL + b. Nothing is unknown, so
  no tokenizer has to be trained or downloaded."""

  @property
  def size(self) -> int:
    """V = 256 + NUM_SPECIAL."""
    return 256 + NUM_SPECIAL

  def encode(self, text: str) -> np.ndarray:
    """int32 (number of UTF-8 bytes of `text`,) ids."""
    return np.frombuffer(text.encode('utf-8'), np.uint8).astype(np.int32) + NUM_SPECIAL

  def decode(self, ids: Iterable[int]) -> str:
    """The text of int ids up to the first EOS; bytes that do not form UTF-8 (such
    as a multi-byte character cut by truncation) and UNK become U+FFFD."""
    unk = UNK_TEXT.encode('utf-8')
    return b''.join(bytes([s]) if s >= 0 else unk for s in _symbols(ids, self.size)).decode(
      'utf-8', errors='replace'
    )


def split_words(prompt: str) -> list[str]:
  """Lower-case words (runs of letters, digits or apostrophes) of a prompt."""
  return re.findall(r"[a-z0-9']+", prompt.lower())


@dataclasses.dataclass(frozen=True)
class WordTokenizer:
  """Prompt words <-> ids: words[i] has id NUM_SPECIAL + i.

  Attributes:
    words: the known words (as `split_words` gives them), each once.
  """

  words: tuple[str, ...]
  _ids: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    object.__setattr__(self, '_ids', _id_table(self.words, 'words'))

  @classmethod
  def from_prompts(cls, prompts: Sequence[str]) -> 'WordTokenizer':
    """The sorted distinct words of `prompts`."""
    return cls(tuple(sorted({w for p in prompts for w in split_words(p)})))

  @property
  def size(self) -> int:
    """V = len(words) + NUM_SPECIAL."""
    return len(self.words) + NUM_SPECIAL

  def encode(self, text: str) -> np.ndarray:
    """int32 (number of words,) ids of the words of `text`; unknown ones UNK_ID."""
    words = split_words(text)
    return np.fromiter((self._ids.get(w, UNK_ID) for w in words), np.int32, len(words))

  def decode(self, ids: Iterable[int]) -> str:
    """The words of int ids up to the first EOS, space-separated (UNK as U+FFFD)."""
    return ' '.join(self.words[s] if s >= 0 else UNK_TEXT for s in _symbols(ids, self.size))

  def encode_batch(self, prompts: Sequence[str], max_length: int) -> np.ndarray:
    """Each prompt's word ids, then EOS_ID, then PAD_ID up to `max_length`.

    Returns:
      int32 (len(prompts), max_length).

    Raises:
      ValueError: for a prompt with no word at all, or of more than
        max_length - 1 words (one place is EOS's).
    """
    out = np.full((len(prompts), max_length), PAD_ID, np.int32)
    for n, prompt in enumerate(prompts):
      ids = self.encode(prompt)
      if not len(ids):
        raise ValueError(f'prompt {prompt!r} has no words')
      if len(ids) + 1 > max_length:
        raise ValueError(
          f'prompt {prompt!r} has {len(ids)} words; at most '
          f'{max_length - 1} fit in max_length {max_length} (which '
          'includes the end token)'
        )
      out[n, : len(ids) + 1] = np.append(ids, EOS_ID)
    return out


def corpus_words(text: str) -> list[str]:
  """The words of a corpus text: each newline is one EOS_WORD, then split on
  whitespace (the reading of Zaremba et al.'s PTB reader), so n lines give n
  EOS_WORDs."""
  return text.replace('\n', f' {EOS_WORD} ').split()


@dataclasses.dataclass(frozen=True)
class VocabularyTokenizer:
  """A fixed corpus vocabulary's words <-> ids: words[i] has id NUM_SPECIAL + i.

  EOS_WORD is EOS_ID and UNK_WORD is UNK_ID; any other word not in `words` is
  UNK_ID too.

  Attributes:
    words: the known words, each once, without EOS_WORD and UNK_WORD.
  """

  words: tuple[str, ...]
  _ids: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    bad = next((w for w in self.words if w in (EOS_WORD, UNK_WORD) or w.split() != [w]), None)
    if bad is not None:
      raise ValueError(
        f'vocabulary word {bad!r} is not allowed: words are non-empty, without '
        f'whitespace, and not {EOS_WORD!r} or {UNK_WORD!r} (they have ids of their own)'
      )
    ids = _id_table(self.words, 'words')
    ids.update({EOS_WORD: EOS_ID, UNK_WORD: UNK_ID})
    object.__setattr__(self, '_ids', ids)

  @classmethod
  def from_words(
    cls, train_words: Iterable[str], max_size: int | None = None
  ) -> 'VocabularyTokenizer':
    """The words of a training corpus by descending count, ties alphabetical.

    Args:
      train_words: the corpus's words (e.g. `corpus_words` of its training text);
        EOS_WORD and UNK_WORD are left out.
      max_size: if set, keep only the most frequent words so that `size` is at
        most this.

    Raises:
      ValueError: if `max_size` < NUM_SPECIAL.
    """
    if max_size is not None and max_size < NUM_SPECIAL:
      raise ValueError(f'max_size must be at least NUM_SPECIAL = {NUM_SPECIAL}, got {max_size}')
    counts = collections.Counter(train_words)
    for special in (EOS_WORD, UNK_WORD):
      counts.pop(special, None)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    if max_size is not None:
      words = words[: max_size - NUM_SPECIAL]
    return cls(tuple(words))

  @property
  def size(self) -> int:
    """V = len(words) + NUM_SPECIAL."""
    return len(self.words) + NUM_SPECIAL

  def encode_words(self, words: Sequence[str]) -> np.ndarray:
    """int32 (len(words),) ids; EOS_WORD gives EOS_ID, UNK_WORD and unknown words UNK_ID."""
    return np.fromiter((self._ids.get(w, UNK_ID) for w in words), np.int32, len(words))

  def encode(self, text: str) -> np.ndarray:
    """int32 (len(corpus_words(text)),) ids of a corpus text, a newline giving EOS_ID."""
    return self.encode_words(corpus_words(text))

  def decode(self, ids: Iterable[int]) -> str:
    """The words of int ids, space-separated, each EOS_ID a newline (read past,
    not stopped at); PAD and BOS dropped; UNK_ID and ids past the vocabulary as
    UNK_WORD. `encode` inverts it."""

    def word(i: int) -> str:
      return self.words[i - NUM_SPECIAL] if NUM_SPECIAL <= i < self.size else UNK_WORD

    ids = np.asarray(ids).reshape(-1).tolist()
    parts = ['\n' if i == EOS_ID else word(i) for i in ids if i not in (PAD_ID, BOS_ID)]
    # Words hold no whitespace, so these spaces are the ones around newlines.
    return ' '.join(parts).replace(' \n', '\n').replace('\n ', '\n')


def to_record(tokenizer: Tokenizer) -> dict:
  """A JSON-serialisable description of a tokenizer (a run manifest keeps it, so
  a trained model is read back without its data); `from_record` inverts it."""
  if isinstance(tokenizer, CharTokenizer):
    return {'kind': 'chars', 'chars': tokenizer.chars, 'strict': tokenizer.strict}
  if isinstance(tokenizer, ByteTokenizer):
    return {'kind': 'bytes'}
  if isinstance(tokenizer, WordTokenizer):
    return {'kind': 'words', 'words': list(tokenizer.words)}
  if isinstance(tokenizer, VocabularyTokenizer):
    return {'kind': 'vocabulary', 'words': list(tokenizer.words)}
  raise TypeError(f'no record for a {type(tokenizer).__name__}')


def from_record(record: dict) -> Tokenizer:
  """The tokenizer `to_record` described.

  Raises:
    ValueError: for a record of an unknown kind.
  """
  kind = record.get('kind')
  if kind == 'chars':
    return CharTokenizer(record['chars'], strict=bool(record.get('strict', False)))
  if kind == 'bytes':
    return ByteTokenizer()
  if kind == 'words':
    return WordTokenizer(tuple(record['words']))
  if kind == 'vocabulary':
    return VocabularyTokenizer(tuple(record['words']))
  raise ValueError(
    f"unknown tokenizer kind {kind!r}: expected 'chars', 'bytes', 'words' or 'vocabulary'"
  )
