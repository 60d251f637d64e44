"""Character corpora: the deterministic split, loaders, the bigram."""

import math

import numpy as np
import pytest

from research.data import text
from research.data import tokenizers
from research.errors import UserInputError


def test_split_is_deterministic_contiguous_and_starts_validation_on_a_line():
  corpus = ''.join(f'line {i}\n' for i in range(100))
  train, val = text.split_text(corpus, 0.1)
  assert train + val == corpus
  assert (train, val) == text.split_text(corpus, 0.1)
  assert train.endswith('\n') and val.startswith('line ')
  assert 0.08 < len(val) / len(corpus) < 0.12


def test_split_rejects_what_cannot_be_split():
  with pytest.raises(UserInputError, match='too short'):
    text.split_text('a', 0.1)
  with pytest.raises(UserInputError, match='validation_fraction'):
    text.split_text('abc\ndef', 1.5)


def test_text_file_corpus_builds_the_vocab_from_training_text_only(tmp_path):
  path = tmp_path / 'tiny.txt'
  path.write_text('abcab\n' * 50 + 'xyz\n' * 5, encoding='utf-8')
  corpus = text.load_corpus('ignored', text_file=str(path))
  assert set(corpus.vocab.chars) == set('abc\n')
  assert (corpus.validation == tokenizers.UNK_ID).sum() == 15  # x, y, z of 5 lines.
  assert len(corpus.train) + len(corpus.validation) == 320


def test_missing_file_and_unknown_data_set_are_user_errors(tmp_path):
  with pytest.raises(UserInputError, match='cannot read'):
    text.load_corpus('x', text_file=str(tmp_path / 'missing.txt'))
  with pytest.raises(UserInputError, match='unknown data set'):
    text.load_corpus('no_such_text_set', data_dir=str(tmp_path))


def test_bigram_baseline():
  vocab_size = 4
  cyclic = np.array([1, 2, 3] * 200, np.int32)
  assert text.bigram_bits_per_char(cyclic, cyclic, vocab_size, 1e-6) < 1e-3
  noise = np.random.default_rng(0).integers(0, vocab_size, 100_000).astype(np.int32)
  assert abs(text.bigram_bits_per_char(noise, noise[:5000], vocab_size) - 2.0) < 0.02
  assert math.isclose(text.bits_per_char(math.log(2)), 1.0)


def test_pydoc_topics_ship_with_python():
  prose = text.pydoc_topics_text()
  assert len(prose) > 300_000 and 'return' in prose


def test_offline_builder_splits_the_pydoc_text(tmp_path):
  corpus = text.load_corpus('text_offline', data_dir=str(tmp_path))
  train, val = text.split_text(text.pydoc_topics_text())
  assert corpus.vocab == tokenizers.CharTokenizer.from_text(train)
  np.testing.assert_array_equal(corpus.validation, corpus.vocab.encode(val))
  assert len(corpus.train) == len(train) and corpus.version == '1.0.0'


def test_tiny_shakespeare_path_with_mock_data():
  from research.data import tfds_io  # pylint: disable=g-import-not-at-top

  tfds = tfds_io.import_tfds()
  with tfds.testing.mock_data(num_examples=2):
    corpus = text.load_corpus('tiny_shakespeare', validation_split='test')
  assert corpus.name == 'tiny_shakespeare' and corpus.vocab.size > 1
  assert len(corpus.train) > 1 and len(corpus.validation) > 1
