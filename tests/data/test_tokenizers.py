"""The one token convention: character, byte and prompt-word tokenizers."""

import numpy as np
import pytest

from research.data import tokenizers
from research.data.tokenizers import BOS_ID
from research.data.tokenizers import EOS_ID
from research.data.tokenizers import NUM_SPECIAL
from research.data.tokenizers import PAD_ID
from research.data.tokenizers import UNK_ID
from research.errors import UserInputError


def test_special_ids_are_distinct_and_come_first():
  assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID, NUM_SPECIAL) == (0, 1, 2, 3, 4)


def test_chars_round_trip_after_the_special_ids():
  tok = tokenizers.CharTokenizer.from_text('hello world')
  assert tok.chars == ' dehlorw' and tok.size == 8 + NUM_SPECIAL
  ids = tok.encode('hello')
  assert ids.dtype == np.int32 and ids.shape == (5,)
  np.testing.assert_array_equal(ids, [NUM_SPECIAL + tok.chars.index(c) for c in 'hello'])
  assert tok.decode(ids) == 'hello'
  assert tok.decode(tok.encode(' world')) == ' world'


def test_unknown_chars_become_unk_or_raise_when_strict():
  tok = tokenizers.CharTokenizer('hel')
  ids = tok.encode('help!')
  np.testing.assert_array_equal(ids[3:], [UNK_ID, UNK_ID])
  assert tok.decode(ids) == 'hel\ufffd\ufffd'
  assert tok.decode([tok.size, NUM_SPECIAL]) == '\ufffdh'  # Past the vocabulary.
  strict = tokenizers.CharTokenizer('hel', strict=True)
  np.testing.assert_array_equal(strict.encode('hell'), tok.encode('hell'))
  with pytest.raises(UserInputError, match="'p' is not in the vocabulary 'hel'"):
    strict.encode('help')


def test_decode_stops_at_eos_and_drops_pad_and_bos():
  tok = tokenizers.CharTokenizer('ab')
  a, b = tok.encode('ab')
  assert tok.decode([BOS_ID, a, PAD_ID, b, EOS_ID, a, a]) == 'ab'
  assert tok.decode(np.array([[a, b], [EOS_ID, b]], np.int32)) == 'ab'
  assert tok.decode([EOS_ID, a]) == ''


def test_repeated_symbols_are_rejected():
  with pytest.raises(ValueError, match='repeat'):
    tokenizers.CharTokenizer('aba')
  with pytest.raises(ValueError, match='repeat'):
    tokenizers.WordTokenizer(('a', 'a'))


def test_bytes_round_trip_after_the_special_ids():
  tok = tokenizers.ByteTokenizer()
  text = 'olá, mundo'
  ids = tok.encode(text)
  assert ids.dtype == np.int32 and tok.size == 256 + NUM_SPECIAL
  np.testing.assert_array_equal(ids, np.frombuffer(text.encode(), np.uint8) + NUM_SPECIAL)
  assert tok.decode(np.append(ids, [EOS_ID, 77, PAD_ID])) == text
  assert tok.decode(tok.encode('\x00\xff')) == '\x00\xff'  # Bytes 0 and 255 too.


def test_bytes_cut_inside_a_character_decode_to_the_replacement_char():
  tok = tokenizers.ByteTokenizer()
  ids = tok.encode('olá')  # 'á' is two bytes.
  assert len(ids) == 4
  assert tok.decode(np.append(ids[:3], EOS_ID)) == 'ol\ufffd'


def test_split_words_and_the_prompt_vocabulary():
  assert tokenizers.split_words("A dog's  BALL, 2.") == ['a', "dog's", 'ball', '2']
  tok = tokenizers.WordTokenizer.from_prompts(['A cat', 'a dog.'])
  assert tok.words == ('a', 'cat', 'dog') and tok.size == 3 + NUM_SPECIAL
  assert tok.decode(tok.encode('a dog cat')) == 'a dog cat'


def test_prompt_batch_is_words_then_eos_then_padding():
  tok = tokenizers.WordTokenizer(('a', 'cat', 'dog'))
  a, cat, dog = NUM_SPECIAL, NUM_SPECIAL + 1, NUM_SPECIAL + 2
  out = tok.encode_batch(['a Dog', 'a cow', 'cat'], 4)
  assert out.dtype == np.int32 and out.shape == (3, 4)
  np.testing.assert_array_equal(
    out, [[a, dog, EOS_ID, PAD_ID], [a, UNK_ID, EOS_ID, PAD_ID], [cat, EOS_ID, PAD_ID, PAD_ID]]
  )
  assert [tok.decode(row) for row in out] == ['a dog', 'a \ufffd', 'cat']


def test_prompts_too_long_or_without_words_are_rejected():
  tok = tokenizers.WordTokenizer(('a', 'cat', 'dog'))
  assert tok.encode_batch(['a cat'], 3).shape == (1, 3)  # Two words + EOS fit.
  with pytest.raises(ValueError, match='at most 2'):
    tok.encode_batch(['a cat dog'], 3)
  with pytest.raises(ValueError, match='no words'):
    tok.encode_batch(['...'], 3)
