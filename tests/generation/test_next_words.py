"""Next-word prediction by beam search over a character LM, against enumeration."""

import itertools

import jax
import numpy as np
import pytest

from research.data import tokenizers
from research.generation import next_words
from research.models import rnn

VOCAB = tokenizers.CharTokenizer.from_text('ab .')  # Letters a, b; boundaries ' ', '.'.


def _model_and_params(seed):
  model = rnn.CharLM(rnn.CharLMConfig(vocab_size=VOCAB.size, embed_dim=4, hidden_dim=8))
  params = model.init(jax.random.key(seed), np.zeros((1, 3), np.int32), train=False)['params']
  # Larger weights: sharper, more distinct word probabilities than at initialisation.
  return model, jax.tree.map(lambda p: 3.0 * p, params)


def _enumerated(model, params, prompt, max_len):
  """P(word, then a non-letter) of every letter string up to max_len, in one run."""
  words = [''.join(w) for n in range(1, max_len + 1) for w in itertools.product('ab', repeat=n)]
  tokens = np.zeros((len(words), len(prompt) + max_len), np.int32)  # PAD after the word.
  for row, word in enumerate(words):
    ids = VOCAB.encode(prompt + word)
    tokens[row, : len(ids)] = ids
  logits, _ = model.apply({'params': params}, tokens, train=False)
  logits = np.asarray(logits, np.float64)
  p = np.exp(logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))
  ends = [VOCAB.encode(' ')[0], VOCAB.encode('.')[0], tokenizers.EOS_ID]
  probs = {}
  for row, word in enumerate(words):
    at = len(prompt) - 1 + np.arange(len(word))
    letters = p[row, at, tokens[row, at + 1]].prod()
    probs[word] = letters * p[row, len(prompt) + len(word) - 1, ends].sum()
  return sorted(probs.items(), key=lambda kv: -kv[1])


@pytest.mark.parametrize('seed', [0, 1])
def test_exhaustive_beam_equals_enumerating_every_word(seed):
  model, params = _model_and_params(seed)
  # 14 strings of 1-3 letters; a beam of 8 holds every unfinished string.
  got = next_words.next_words(
    model, params, VOCAB, 'ab a', num_words=5, beam_size=8, max_word_length=3
  )
  want = _enumerated(model, params, 'ab a ', 3)[:5]
  assert [w for w, _ in got] == [w for w, _ in want]
  np.testing.assert_allclose([p for _, p in got], [p for _, p in want], rtol=1e-4)


def test_probabilities_are_a_part_of_one_and_ranked():
  model, params = _model_and_params(2)
  got = next_words.next_words(
    model, params, VOCAB, 'b.', num_words=14, beam_size=8, max_word_length=3
  )
  assert len(got) == 14
  probs = [p for _, p in got]
  assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0


def test_a_narrow_beam_still_returns_real_words_and_rejects_empty_prompts():
  model, params = _model_and_params(0)
  got = next_words.next_words(
    model, params, VOCAB, 'a', num_words=3, beam_size=2, max_word_length=4
  )
  assert len(got) == 3 and all(set(w) <= {'a', 'b'} for w, _ in got)
  with pytest.raises(ValueError, match='non-empty prompt'):
    next_words.next_words(model, params, VOCAB, '', num_words=3)
