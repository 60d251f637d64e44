"""Generated seq2seq tasks and the tfds translation path (on mock data)."""

import collections

import numpy as np
import pytest

from research.data import holdout
from research.data import seq2seq_tasks
from research.data import tokenizers
from research.data import translation
from research.errors import UserInputError

EOS, PAD = tokenizers.EOS_ID, tokenizers.PAD_ID


def _make(**kw):
  return seq2seq_tasks.make_task(
    seq2seq_tasks.TaskConfig(**(dict(num_train=300, num_test=50) | kw))
  )


@pytest.mark.parametrize('name', seq2seq_tasks.TASKS)
def test_tasks_are_deterministic_and_the_test_set_is_held_out(name):
  train, test = _make(name=name)
  train2, test2 = _make(name=name)
  np.testing.assert_array_equal(train.inputs, train2.inputs)
  np.testing.assert_array_equal(test.targets, test2.targets)
  other, _ = _make(name=name, seed=1)
  assert not np.array_equal(train.inputs, other.inputs)
  assert (len(train), len(test)) == (300, 50)
  seen = {r.tobytes() for r in train.inputs}
  assert not any(r.tobytes() in seen for r in test.inputs)
  assert train.inputs.dtype == train.targets.dtype == np.int32


def test_reverse_targets_are_reversed_inputs_then_eos_then_padding():
  train, _ = _make(name='reverse', min_length=2, max_length=9, num_letters=5)
  assert train.inputs.shape == (300, 9) and train.targets.shape == (300, 10)
  for src, tgt in zip(train.inputs, train.targets, strict=True):
    n = int((src != PAD).sum())
    assert 2 <= n <= 9 and (src[n:] == PAD).all()
    np.testing.assert_array_equal(tgt[:n], src[:n][::-1])
    assert tgt[n] == EOS and (tgt[n + 1 :] == PAD).all()
  assert set(train.vocab.decode(train.inputs[0])) <= set('abcde')


def test_addition_targets_are_the_sums():
  train, test = _make(name='addition', num_digits=4)
  assert train.inputs.shape[1] == 9 and train.targets.shape[1] == 6
  for src, tgt in zip(test.inputs, test.targets, strict=True):
    a, b = train.vocab.decode(src).split('+')
    assert train.vocab.decode(tgt) == str(int(a) + int(b))
    assert len(a) <= 4 and len(b) <= 4


def _strata(name, pairs):
  """Per stratum: reverse by input length, addition by operand lengths."""
  key = (
    (lambda src: len(src))
    if name == 'reverse'
    else (lambda src: tuple(len(p) for p in src.split('+')))
  )
  return collections.Counter(key(src) for src, _ in pairs)


@pytest.mark.parametrize(
  'name, kw',
  [
    # 3 + 9 + 27 + 81 strings of lengths 1-4: lengths 1 and 2 saturate early, so
    # the first drawn strings are mostly short ones.
    ('reverse', dict(min_length=1, max_length=4, num_letters=3, num_train=90, num_test=24)),
    ('addition', dict(num_digits=2, num_train=300, num_test=60)),
  ],
)
def test_stratified_split_holds_out_strings_not_lengths(name, kw):
  cfg = seq2seq_tasks.TaskConfig(name=name, **kw)
  train, test = seq2seq_tasks.split_pairs(cfg)
  assert (len(train), len(test)) == (cfg.num_train, cfg.num_test)
  assert not {s for s, _ in train} & {s for s, _ in test}
  train_n, test_n = _strata(name, train), _strata(name, test)
  total = len(train) + len(test)
  for key in train_n | test_n:  # Proportional share, most of each in training.
    pool = train_n[key] + test_n[key]
    assert test_n[key] < train_n[key], (key, test_n[key], train_n[key])
    assert abs(test_n[key] - cfg.num_test * pool / total) < 1, (key, test_n, train_n)
  lengths = lambda pairs: {len(s) for s, _ in pairs}
  assert lengths(test) <= lengths(train)
  assert seq2seq_tasks.split_pairs(cfg) == (train, test)  # Deterministic.


# Reversal tested on lengths 6-7 only.
LENGTH_SPLIT = dict(name='reverse', split='length', test_min_length=6, test_max_length=7)


def test_length_split_tests_on_unseen_lengths_only():
  train, test = _make(
    num_letters=4, min_length=2, max_length=4, num_train=100, num_test=30, **LENGTH_SPLIT
  )
  assert train.inputs.shape[1] == test.inputs.shape[1] == 7  # Padded to the longest.
  assert train.targets.shape[1] == test.targets.shape[1] == 8
  length = lambda d: set((d.inputs != 0).sum(-1).tolist())
  assert length(train) == {2, 3, 4} and length(test) == {6, 7}
  for src, tgt in zip(test.inputs, test.targets, strict=True):
    n = int((src != 0).sum())
    np.testing.assert_array_equal(tgt[:n], src[:n][::-1])
    assert tgt[n] == EOS


def test_equal_lengths_give_each_training_length_one_share_repeating_short_strings():
  kw = dict(num_letters=3, min_length=1, max_length=4, num_train=102, num_test=30, **LENGTH_SPLIT)
  cfg = seq2seq_tasks.TaskConfig(equal_lengths=True, **kw)
  train, test = seq2seq_tasks.split_pairs(cfg)
  # 102 = 4 x 25 + 2: the first two lengths get one more. 3 and 9 strings of
  # lengths 1 and 2 repeat, each 26 // 3 or 26 // 9 times or once more; lengths 3
  # and 4 (27 and 81 strings) are drawn distinct.
  assert collections.Counter(len(s) for s, _ in train) == {1: 26, 2: 26, 3: 25, 4: 25}
  for n, repeats in ((1, {8, 9}), (2, {2, 3}), (3, {1}), (4, {1})):
    per_string = collections.Counter(s for s, _ in train if len(s) == n)
    assert set(per_string.values()) == repeats, (n, per_string)
  assert len(collections.Counter(s for s, _ in train if len(s) == 2)) == 9
  assert all(t == s[::-1] for s, t in train)
  assert len({len(s) for s, _ in train[:10]}) > 1  # Shuffled, not grouped by length.
  assert seq2seq_tasks.split_pairs(cfg) == (train, test)  # Deterministic.
  assert test == seq2seq_tasks.split_pairs(seq2seq_tasks.TaskConfig(**kw))[1]


def test_test_quotas_are_proportional_and_keep_most_of_each_stratum_in_training():
  sizes = {1: 1, 2: 2, 3: 3, 4: 14, 5: 30}  # 50 examples.
  assert holdout.test_quotas(sizes, 10) == {1: 0, 2: 0, 3: 1, 4: 3, 5: 6}
  # Caps: 0, 0, 1, 6, 14: a share taken from a capped stratum goes elsewhere.
  assert holdout.test_quotas(sizes, 21) == {1: 0, 2: 0, 3: 1, 4: 6, 5: 14}
  with pytest.raises(UserInputError, match='keeping most of every stratum'):
    holdout.test_quotas(sizes, 22)
  strata = [5, 4, 5, 1, 5, 4, 5, 5, 4]  # Caps: 5 -> 2, 4 -> 1, 1 -> 0.
  train, test = holdout.stratified_split(strata, 3, [0])
  assert sorted(np.concatenate([train, test]).tolist()) == list(range(9))
  assert sorted(test.tolist()) == test.tolist()
  assert sorted(strata[i] for i in test) == [4, 5, 5]


def test_bad_settings_are_rejected():
  with pytest.raises(UserInputError, match='unknown task'):
    _make(name='sort')
  with pytest.raises(UserInputError, match='distinct'):
    _make(name='addition', num_digits=1, num_train=500)
  with pytest.raises(UserInputError, match='overlap the training lengths 1..16'):
    _make(split='length', test_min_length=16, test_max_length=24)
  with pytest.raises(UserInputError, match="apply to split='length' only"):
    _make(test_min_length=17, test_max_length=24)
  with pytest.raises(UserInputError, match=r"equal_lengths \(True\) apply to split='length'"):
    _make(equal_lengths=True)
  with pytest.raises(UserInputError, match='for the reverse task'):
    _make(name='addition', split='length', test_min_length=9, test_max_length=9)
  with pytest.raises(UserInputError, match='test_min_length <= test_max_length'):
    _make(split='length', test_min_length=24, test_max_length=17)
  with pytest.raises(UserInputError, match='unknown split'):
    _make(split='random')
  with pytest.raises(UserInputError, match='than 50 distinct inputs of lengths 1..2'):
    _make(
      split='length',
      num_letters=3,
      min_length=3,
      max_length=6,
      test_min_length=1,
      test_max_length=2,
    )  # 3 + 9 strings to test on.
  with pytest.raises(UserInputError, match='keeping most of every stratum'):
    _make(num_train=40, num_test=60)
  with pytest.raises(UserInputError, match="'z' is not in the vocabulary"):
    seq2seq_tasks.TaskConfig(name='reverse', num_letters=3).vocab().encode('abz')


def test_bleu_is_standard():
  pytest.importorskip('sacrebleu')
  assert translation.corpus_bleu(
    ['the cat sat on the mat'], ['the cat sat on the mat']
  ) == pytest.approx(100.0)
  assert translation.corpus_bleu(['a b c d'], ['w x y z']) < 1.0


def test_translation_split_loads_from_tfds_mock_data():
  tfds = pytest.importorskip('tensorflow_datasets')
  cfg = translation.TranslationConfig(max_input_length=12, max_target_length=10)
  with tfds.testing.mock_data(num_examples=6):
    data, refs = translation.load_split(cfg, 'validation')
  assert len(data) == len(refs) == 6
  assert data.inputs.shape == (6, 12) and data.targets.shape == (6, 10)
  assert data.inputs.dtype == np.int32
  for tgt, ref in zip(data.targets, refs, strict=True):  # Truncated to 9 bytes + EOS.
    assert data.vocab.decode(tgt) == data.vocab.decode(data.vocab.encode(ref)[:9])
