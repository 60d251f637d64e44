"""Offline sequence-to-sequence tasks, generated here, seeded and deterministic.

Both need attention to be solved (each output token depends on input tokens at
positions that move with the input's length):
  reverse:  'hello'     -> 'olleh'
  addition: '123+4567'  -> '4690'   (operands of 1 to `num_digits` digits)

Inputs are drawn without repetition (but see `equal_lengths`). The default split
('stratified') holds out strings, not lengths: each input length (reverse) or operand-length pattern
(addition, e.g. 2-digit + 3-digit) gives the test set a share proportional to its
number of drawn inputs and keeps most of them in training (`research.data.holdout`),
so every test length is also a training length and no test input is in training.
The 'length' split (reverse only) tests on lengths disjoint from training ones:
length generalisation. Its training strings can give every length the same share
(`equal_lengths`): drawn distinct, lengths 1 and 2 would be 26 and 676 of 40,000
strings, too rare to be learnt.

Token ids are those of `research.data.tokenizers` (a strict `CharTokenizer`):
sources are padded with PAD_ID; targets end with EOS_ID, then PAD_ID.
"""

import dataclasses
import itertools
import string

import numpy as np

from research.data import holdout
from research.data import shard
from research.data import tokenizers
from research.errors import UserInputError

TASKS = ('reverse', 'addition')
SPLITS = ('stratified', 'length')


@dataclasses.dataclass
class Seq2SeqDataset:
  """Token arrays of one split.

  Attributes:
    name: task name.
    inputs: int32 (N, S) source tokens, PAD_ID-padded.
    targets: int32 (N, T) target tokens followed by EOS_ID, then PAD_ID-padded.
    vocab: the tokenizer shared by sources and targets.
  """

  name: str
  inputs: np.ndarray
  targets: np.ndarray
  vocab: tokenizers.Tokenizer

  def __len__(self) -> int:
    return len(self.inputs)

  def arrays(self) -> dict[str, np.ndarray]:
    """What the drivers gather batches from."""
    return {'inputs': self.inputs, 'targets': self.targets}

  def rows(self, part: slice) -> 'Seq2SeqDataset':
    """The examples `part` selects, same vocabulary."""
    return dataclasses.replace(self, inputs=self.inputs[part], targets=self.targets[part])

  def process_shard(self) -> 'Seq2SeqDataset':
    """This process's contiguous, equal share (all of it in a one-process run)."""
    return self.rows(shard.process_slice(len(self)))

  def num_target_tokens(self) -> int:
    """Real target tokens (EOS included) of the split."""
    return int((self.targets != tokenizers.PAD_ID).sum())


def encode_pairs(
  pairs: list[tuple[str, str]],
  vocab: tokenizers.Tokenizer,
  max_input_length: int,
  max_target_length: int,
) -> tuple[np.ndarray, np.ndarray]:
  """Pads (source, target) texts to int32 arrays.

  Returns:
    int32 (N, max_input_length) sources cut to that length, and int32
    (N, max_target_length) targets cut to max_target_length - 1, then EOS_ID;
    both padded with PAD_ID.
  """
  inputs = np.full((len(pairs), max_input_length), tokenizers.PAD_ID, np.int32)
  targets = np.full((len(pairs), max_target_length), tokenizers.PAD_ID, np.int32)
  for n, (src, tgt) in enumerate(pairs):
    s = vocab.encode(src)[:max_input_length]
    t = np.append(vocab.encode(tgt)[: max_target_length - 1], tokenizers.EOS_ID)
    inputs[n, : len(s)] = s
    targets[n, : len(t)] = t
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
    split: 'stratified' (held-out inputs drawn like the training ones, every test
      length also in training) or 'length' (reverse only: test strings have
      lengths test_min_length..test_max_length, disjoint from min_length..max_length).
    test_min_length: split 'length': shortest test string (0 with 'stratified').
    test_max_length: split 'length': longest test string (0 with 'stratified').
    equal_lengths: split 'length': every training length gets the same number of
      strings (num_train / number of lengths, the first lengths one more); a length
      with fewer distinct strings than that repeats each of them equally often
      (within one). False draws distinct strings of uniformly drawn lengths.
  """

  name: str = 'reverse'
  num_train: int = 20_000
  num_test: int = 1_000
  seed: int = 0
  min_length: int = 1
  max_length: int = 16
  num_letters: int = 26
  num_digits: int = 3
  split: str = 'stratified'
  test_min_length: int = 0
  test_max_length: int = 0
  equal_lengths: bool = False

  def lengths(self) -> tuple[int, int]:
    """(max_input_length, max_target_length) of both splits; targets have room for
    EOS."""
    if self.name == 'reverse':
      longest = max(self.max_length, self.test_max_length)
      return longest, longest + 1
    return 2 * self.num_digits + 1, self.num_digits + 2

  def vocab(self) -> tokenizers.CharTokenizer:
    """The task's characters; encoding any other character is an error."""
    if self.name == 'reverse':
      return tokenizers.CharTokenizer(string.ascii_lowercase[: self.num_letters], strict=True)
    return tokenizers.CharTokenizer(string.digits + '+', strict=True)


def _check(cfg: TaskConfig) -> None:
  if cfg.name not in TASKS:
    raise UserInputError(f'unknown task {cfg.name!r}: use one of {TASKS}')
  if cfg.num_train < 1 or cfg.num_test < 1:
    raise UserInputError(
      f'num_train and num_test must be >= 1, got {cfg.num_train} and {cfg.num_test}'
    )
  if cfg.name == 'reverse' and not (
    1 <= cfg.min_length <= cfg.max_length and 1 <= cfg.num_letters <= 26
  ):
    raise UserInputError(
      'reverse needs 1 <= min_length <= max_length and '
      f'1 <= num_letters <= 26, got {cfg.min_length}, '
      f'{cfg.max_length}, {cfg.num_letters}'
    )
  if cfg.name == 'addition' and not 1 <= cfg.num_digits <= 9:
    raise UserInputError(f'num_digits must be in 1..9, got {cfg.num_digits}')


def _check_split(cfg: TaskConfig) -> None:
  if cfg.split not in SPLITS:
    raise UserInputError(f'unknown split {cfg.split!r}: use one of {SPLITS}')
  test_range = (cfg.test_min_length, cfg.test_max_length)
  if cfg.split == 'stratified':
    if test_range != (0, 0) or cfg.equal_lengths:
      raise UserInputError(
        f'test_min_length and test_max_length ({test_range}) and equal_lengths '
        f"({cfg.equal_lengths}) apply to split='length' only: leave them 0 and False "
        "with 'stratified'"
      )
    return
  if cfg.name != 'reverse':
    raise UserInputError(
      f"split='length' is for the reverse task, not {cfg.name!r}: use split='stratified'"
    )
  if not 1 <= cfg.test_min_length <= cfg.test_max_length:
    raise UserInputError(
      f'the length split needs 1 <= test_min_length <= test_max_length, got {test_range}'
    )
  if cfg.test_min_length <= cfg.max_length and cfg.min_length <= cfg.test_max_length:
    raise UserInputError(
      f'test lengths {cfg.test_min_length}..{cfg.test_max_length} overlap the '
      f'training lengths {cfg.min_length}..{cfg.max_length}: the length split '
      'needs them disjoint'
    )


def _distinct_pairs(
  cfg: TaskConfig, wanted: int, lengths: tuple[int, int], stream: tuple[int, ...]
) -> list[tuple[str, str]]:
  """`wanted` pairs with distinct inputs (reverse: of lengths `lengths`), drawn
  from the numpy stream (seed, task, *stream)."""
  rng = np.random.default_rng([cfg.seed, TASKS.index(cfg.name), *stream])
  letters = string.ascii_lowercase[: cfg.num_letters]
  seen, pairs = set(), []
  for _ in range(20 * wanted):  # Gives up on task spaces too small for `wanted`.
    if cfg.name == 'reverse':
      src, tgt = _reverse_example(rng, *lengths, letters)
    else:
      src, tgt = _addition_example(rng, cfg.num_digits)
    if src not in seen:
      seen.add(src)
      pairs.append((src, tgt))
      if len(pairs) == wanted:
        return pairs
  where = f' of lengths {lengths[0]}..{lengths[1]}' if cfg.name == 'reverse' else ''
  raise UserInputError(
    f'the {cfg.name} task has fewer than {wanted} distinct inputs'
    f'{where} with these settings: ask for fewer examples or '
    'longer inputs'
  )


def _strings_of_length(rng, letters: str, n: int, count: int) -> list[str]:
  """`count` strings of n letters: distinct random ones, or, when there are no more
  than `count` of them, every one repeated in turn."""
  space = len(letters) ** n
  if space <= count:
    every = [''.join(s) for s in itertools.product(letters, repeat=n)]
    return [every[i % space] for i in range(count)]
  drawn: dict[str, None] = {}  # Ordered, unlike a set: the result is deterministic.
  while len(drawn) < count:
    drawn.setdefault(''.join(rng.choice(list(letters), n)), None)
  return list(drawn)


def _equal_length_pairs(cfg: TaskConfig, stream: tuple[int, ...]) -> list[tuple[str, str]]:
  """cfg.num_train reversal pairs, the same number at each training length (see
  `TaskConfig.equal_lengths`), shuffled; from the numpy stream (seed, task, *stream)."""
  rng = np.random.default_rng([cfg.seed, TASKS.index(cfg.name), *stream])
  letters = string.ascii_lowercase[: cfg.num_letters]
  lengths = range(cfg.min_length, cfg.max_length + 1)
  base, extra = divmod(cfg.num_train, len(lengths))
  sources = [
    s
    for i, n in enumerate(lengths)
    for s in _strings_of_length(rng, letters, n, base + (i < extra))
  ]
  return [(sources[i], sources[i][::-1]) for i in rng.permutation(len(sources))]


def _stratum(name: str, src: str):
  """What the stratified split keeps in training: the input length (reverse), the
  operand lengths (addition), which fix the input length."""
  return len(src) if name == 'reverse' else tuple(len(p) for p in src.split('+'))


def split_pairs(cfg: TaskConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
  """(train, test) (source, target) texts of a checked config (see the module
  docstring for the splits); deterministic given `cfg.seed`."""
  train_lengths = (cfg.min_length, cfg.max_length)
  if cfg.split == 'length':
    return (
      _equal_length_pairs(cfg, ())
      if cfg.equal_lengths
      else _distinct_pairs(cfg, cfg.num_train, train_lengths, ()),
      _distinct_pairs(cfg, cfg.num_test, (cfg.test_min_length, cfg.test_max_length), (1,)),
    )
  pairs = _distinct_pairs(cfg, cfg.num_train + cfg.num_test, train_lengths, ())
  train, test = holdout.stratified_split(
    [_stratum(cfg.name, src) for src, _ in pairs],
    cfg.num_test,
    [cfg.seed, TASKS.index(cfg.name), 2],
  )
  return [pairs[i] for i in train], [pairs[i] for i in test]


def make_task(cfg: TaskConfig) -> tuple[Seq2SeqDataset, Seq2SeqDataset]:
  """The (train, test) splits of the task; same config, same arrays. Both splits
  are padded to `cfg.lengths()`.

  Raises:
    UserInputError: for an unknown task or split, bad sizes or test lengths, or
      too small a task space.
  """
  _check(cfg)
  _check_split(cfg)
  train, test = split_pairs(cfg)
  vocab = cfg.vocab()
  max_in, max_out = cfg.lengths()
  split = lambda p: Seq2SeqDataset(cfg.name, *encode_pairs(p, vocab, max_in, max_out), vocab)
  return split(train), split(test)
