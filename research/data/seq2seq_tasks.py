"""Offline sequence-to-sequence tasks, generated here, seeded and deterministic.

Both need attention to be solved (each output token depends on input tokens at
positions that move with the input's length):
  reverse:  'hello'     -> 'olleh'
  addition: '123+4567'  -> '4690'   (operands of 1 to `num_digits` digits)

Examples are drawn without repetition and the first `num_test` go to the held-out
test set, so no test input is ever seen in training.

Token ids: 0 padding, 1 beginning of sequence (decoder start), 2 end of sequence,
then the characters. Sources are padded with 0; targets end with EOS, then 0.
"""

import dataclasses
import string

import numpy as np

from research.data import shard
from research.errors import UserInputError

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
NUM_SPECIAL = 3
TASKS = ('reverse', 'addition')


class CharVocab:
  """Characters <-> token ids, after the three special ids."""

  def __init__(self, chars: str):
    self.chars = chars
    self._ids = {c: i + NUM_SPECIAL for i, c in enumerate(chars)}

  @property
  def size(self) -> int:
    return len(self.chars) + NUM_SPECIAL

  def encode(self, text: str) -> list[int]:
    try:
      return [self._ids[c] for c in text]
    except KeyError as e:
      raise UserInputError(f'character {e.args[0]!r} is not in the vocabulary '
                           f'{self.chars!r}') from None

  def decode(self, ids) -> str:
    """Text of `ids` up to the first EOS, special ids dropped."""
    out = []
    for i in np.asarray(ids).tolist():
      if i == EOS_ID:
        break
      if i >= NUM_SPECIAL:
        out.append(self.chars[i - NUM_SPECIAL])
    return ''.join(out)


@dataclasses.dataclass
class Seq2SeqDataset:
  """Token arrays of one split.

  Attributes:
    name: task name.
    inputs: int32 (N, S) source tokens, 0-padded.
    targets: int32 (N, T) target tokens followed by EOS, then 0-padded.
    vocab: shared by sources and targets (`encode`, `decode`, `size`).
  """
  name: str
  inputs: np.ndarray
  targets: np.ndarray
  vocab: object

  def __len__(self) -> int:
    return len(self.inputs)

  def arrays(self) -> dict[str, np.ndarray]:
    """What the drivers gather batches from."""
    return {'inputs': self.inputs, 'targets': self.targets}

  def process_shard(self) -> 'Seq2SeqDataset':
    """This process's contiguous, equal share (all of it in a one-process run)."""
    part = shard.process_slice(len(self))
    return dataclasses.replace(self, inputs=self.inputs[part], targets=self.targets[part])

  def num_target_tokens(self) -> int:
    """Real target tokens (EOS included) of the split."""
    return int((self.targets != PAD_ID).sum())


def encode_pairs(pairs: list[tuple[str, str]], vocab, max_input_length: int,
                 max_target_length: int) -> tuple[np.ndarray, np.ndarray]:
  """Pads (source, target) texts to int32 arrays. Sources are cut to
  `max_input_length` tokens, targets to `max_target_length` - 1, then EOS."""
  inputs = np.zeros((len(pairs), max_input_length), np.int32)
  targets = np.zeros((len(pairs), max_target_length), np.int32)
  for n, (src, tgt) in enumerate(pairs):
    s = vocab.encode(src)[:max_input_length]
    t = vocab.encode(tgt)[:max_target_length - 1] + [EOS_ID]
    inputs[n, :len(s)] = s
    targets[n, :len(t)] = t
  return inputs, targets


def _reverse_example(rng, min_length, max_length, letters):
  length = rng.integers(min_length, max_length + 1)
  src = ''.join(rng.choice(list(letters), length))
  return src, src[::-1]


def _addition_example(rng, num_digits):
  a, b = (int(rng.integers(0, 10 ** rng.integers(1, num_digits + 1))) for _ in range(2))
  return f'{a}+{b}', str(a + b)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """What to generate.

  Attributes:
    name: 'reverse' or 'addition'.
    num_train: training examples.
    num_test: held-out test examples (inputs never in the training set).
    seed: generator seed.
    min_length: reverse: shortest string.
    max_length: reverse: longest string.
    num_letters: reverse: alphabet size (the first letters of a-z).
    num_digits: addition: longest operand.
  """
  name: str = 'reverse'
  num_train: int = 20_000
  num_test: int = 1_000
  seed: int = 0
  min_length: int = 1
  max_length: int = 16
  num_letters: int = 26
  num_digits: int = 3

  def lengths(self) -> tuple[int, int]:
    """(max_input_length, max_target_length); targets have room for EOS."""
    if self.name == 'reverse':
      return self.max_length, self.max_length + 1
    return 2 * self.num_digits + 1, self.num_digits + 2

  def vocab(self) -> CharVocab:
    if self.name == 'reverse':
      return CharVocab(string.ascii_lowercase[:self.num_letters])
    return CharVocab(string.digits + '+')


def _check(cfg: TaskConfig) -> None:
  if cfg.name not in TASKS:
    raise UserInputError(f'unknown task {cfg.name!r}: use one of {TASKS}')
  if cfg.num_train < 1 or cfg.num_test < 1:
    raise UserInputError(f'num_train and num_test must be >= 1, got {cfg.num_train} '
                         f'and {cfg.num_test}')
  if cfg.name == 'reverse' and not (1 <= cfg.min_length <= cfg.max_length
                                    and 1 <= cfg.num_letters <= 26):
    raise UserInputError('reverse needs 1 <= min_length <= max_length and '
                         f'1 <= num_letters <= 26, got {cfg.min_length}, '
                         f'{cfg.max_length}, {cfg.num_letters}')
  if cfg.name == 'addition' and not 1 <= cfg.num_digits <= 9:
    raise UserInputError(f'num_digits must be in 1..9, got {cfg.num_digits}')


def _distinct_pairs(cfg: TaskConfig) -> list[tuple[str, str]]:
  rng = np.random.default_rng([cfg.seed, TASKS.index(cfg.name)])
  letters = string.ascii_lowercase[:cfg.num_letters]
  wanted = cfg.num_train + cfg.num_test
  seen, pairs = set(), []
  for _ in range(20 * wanted):  # Gives up on task spaces too small for `wanted`.
    if cfg.name == 'reverse':
      src, tgt = _reverse_example(rng, cfg.min_length, cfg.max_length, letters)
    else:
      src, tgt = _addition_example(rng, cfg.num_digits)
    if src not in seen:
      seen.add(src)
      pairs.append((src, tgt))
      if len(pairs) == wanted:
        return pairs
  raise UserInputError(f'the {cfg.name} task has fewer than {wanted} distinct inputs '
                       'with these settings: ask for fewer examples or longer inputs')


def make_task(cfg: TaskConfig) -> tuple[Seq2SeqDataset, Seq2SeqDataset]:
  """The (train, test) splits of the task; same config, same arrays.

  Raises:
    UserInputError: for an unknown task, bad sizes, or too small a task space.
  """
  _check(cfg)
  pairs = _distinct_pairs(cfg)
  vocab = cfg.vocab()
  max_in, max_out = cfg.lengths()
  split = lambda p: Seq2SeqDataset(cfg.name, *encode_pairs(p, vocab, max_in, max_out),
                                   vocab)
  return split(pairs[cfg.num_test:]), split(pairs[:cfg.num_test])
