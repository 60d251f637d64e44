"""Generated seq2seq tasks and the tfds translation path (on mock data)."""

import numpy as np
import pytest

from research.data import seq2seq_tasks
from research.data import tokenizers
from research.data import translation
from research.errors import UserInputError

EOS, PAD = tokenizers.EOS_ID, tokenizers.PAD_ID


def _make(**kw):
  return seq2seq_tasks.make_task(seq2seq_tasks.TaskConfig(
      **(dict(num_train=300, num_test=50) | kw)))


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
  for src, tgt in zip(train.inputs, train.targets):
    n = int((src != PAD).sum())
    assert 2 <= n <= 9 and (src[n:] == PAD).all()
    np.testing.assert_array_equal(tgt[:n], src[:n][::-1])
    assert tgt[n] == EOS and (tgt[n + 1:] == PAD).all()
  assert set(train.vocab.decode(train.inputs[0])) <= set('abcde')


def test_addition_targets_are_the_sums():
  train, test = _make(name='addition', num_digits=4)
  assert train.inputs.shape[1] == 9 and train.targets.shape[1] == 6
  for src, tgt in zip(test.inputs, test.targets):
    a, b = train.vocab.decode(src).split('+')
    assert train.vocab.decode(tgt) == str(int(a) + int(b))
    assert len(a) <= 4 and len(b) <= 4


def test_bad_settings_are_rejected():
  with pytest.raises(UserInputError, match='unknown task'):
    _make(name='sort')
  with pytest.raises(UserInputError, match='distinct'):
    _make(name='addition', num_digits=1, num_train=500)
  with pytest.raises(UserInputError, match="'z' is not in the vocabulary"):
    seq2seq_tasks.TaskConfig(name='reverse', num_letters=3).vocab().encode('abz')


def test_bleu_is_standard():
  pytest.importorskip('sacrebleu')
  assert translation.corpus_bleu(['the cat sat on the mat'],
                                 ['the cat sat on the mat']) == pytest.approx(100.0)
  assert translation.corpus_bleu(['a b c d'], ['w x y z']) < 1.0


def test_translation_split_loads_from_tfds_mock_data():
  tfds = pytest.importorskip('tensorflow_datasets')
  cfg = translation.TranslationConfig(max_input_length=12, max_target_length=10)
  with tfds.testing.mock_data(num_examples=6):
    data, refs = translation.load_split(cfg, 'validation')
  assert len(data) == len(refs) == 6
  assert data.inputs.shape == (6, 12) and data.targets.shape == (6, 10)
  assert data.inputs.dtype == np.int32
  for tgt, ref in zip(data.targets, refs):  # Truncated to 9 bytes + EOS.
    assert data.vocab.decode(tgt) == data.vocab.decode(data.vocab.encode(ref)[:9])
