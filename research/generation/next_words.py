"""The likeliest next words after a prompt, under a character-level language model.

The seed's example of a language model is a next-word prediction ("The cat sat on
the" -> "mat"). A character model gives a word's probability as a product: each of
its letters in turn, then any character that is not a letter (the word ends). A beam
search over letters finds the likeliest words without enumerating the vocabulary of
all letter strings. It is its own search, not `decoding.beam_search`: a word ends at
any of many boundary characters (their probabilities summed, not one EOS id), and
every finished word is kept for the ranking, not only the best sequence.

Dimension key: K beam size, V vocabulary size, H hidden width.
"""

from typing import Any

import flax.linen as nn
import jax
import numpy as np

from research.data import tokenizers


def _letter_and_boundary_ids(vocab: tokenizers.CharTokenizer) -> tuple[np.ndarray, np.ndarray]:
  """Ids of the letters, and of what ends a word (every other character, and EOS)."""
  ids = np.arange(tokenizers.NUM_SPECIAL, vocab.size)
  letter = np.array([vocab.chars[i - tokenizers.NUM_SPECIAL].isalpha() for i in ids], bool)
  return ids[letter], np.append(ids[~letter], tokenizers.EOS_ID)


def next_words(
  model: nn.Module,
  params: Any,
  vocab: tokenizers.CharTokenizer,
  prompt: str,
  *,
  num_words: int = 5,
  beam_size: int = 32,
  max_word_length: int = 16,
) -> list[tuple[str, float]]:
  """The `num_words` likeliest words to follow `prompt`, with their probabilities.

  A word is a run of letters (`str.isalpha`) that the model then ends with a
  non-letter; its probability is P(letters | prompt) * P(non-letter | prompt, letters).
  If the prompt ends with a letter, a space is appended first (the next word, not the
  end of the current one). The search keeps the `beam_size` likeliest unfinished
  words per letter, for at most `max_word_length` letters, and stops early once no
  unfinished word can beat the words found; with a beam as large as the number of
  candidate strings it is exhaustive.

  Args:
    model: a `research.models.rnn.CharLM` (called with `carry=`).
    params: its parameters.
    vocab: the corpus's character tokenizer.
    prompt: non-empty text.
    num_words: how many words to return.
    beam_size: K, unfinished words kept per step.
    max_word_length: longest word considered, in letters.

  Returns:
    [(word, probability)], likeliest first, at most `num_words` long.
  """
  if not prompt:
    raise ValueError('next_words needs a non-empty prompt')
  if prompt[-1].isalpha():
    prompt += ' '
  letters_L, boundary = _letter_and_boundary_ids(vocab)
  apply = jax.jit(
    lambda tokens, carry: model.apply({'params': params}, tokens, train=False, carry=carry)
  )
  logits, carry = apply(vocab.encode(prompt)[None], None)
  # Every beam starts as the empty word; copies other than the first are impossible.
  carry = jax.tree.map(lambda c: np.repeat(c, beam_size, axis=0), carry)
  logp_K = np.full(beam_size, -np.inf)
  logp_K[0] = 0.0
  words_K = [''] * beam_size
  logits_KxV = np.repeat(np.asarray(logits[:, -1]), beam_size, axis=0)
  found: dict[str, float] = {}
  for _ in range(max_word_length + 1):
    logits_KxV = logits_KxV.astype(np.float64)
    next_KxV = logits_KxV - np.logaddexp.reduce(logits_KxV, axis=1, keepdims=True)
    end_K = logp_K + np.logaddexp.reduce(next_KxV[:, boundary], axis=1)
    for k in range(beam_size):
      if words_K[k] and np.isfinite(end_K[k]):
        found[words_K[k]] = max(found.get(words_K[k], -np.inf), end_K[k])
    best = sorted(found.values(), reverse=True)[:num_words]
    if len(words_K[0]) == max_word_length or (len(best) == num_words and logp_K.max() < best[-1]):
      break
    grow_KxL = logp_K[:, None] + next_KxV[:, letters_L]
    top = np.argsort(-grow_KxL, axis=None)[:beam_size]
    beam_K, letter_K = np.unravel_index(top, grow_KxL.shape)
    logp_K = grow_KxL[beam_K, letter_K]
    words_K = [
      words_K[b] + vocab.chars[letters_L[i] - tokenizers.NUM_SPECIAL]
      for b, i in zip(beam_K, letter_K, strict=True)
    ]
    carry = jax.tree.map(lambda c, rows=beam_K: c[rows], carry)
    logits, carry = apply(letters_L[letter_K][:, None].astype(np.int32), carry)
    logits_KxV = np.asarray(logits[:, 0])
  ranked = sorted(found.items(), key=lambda item: -item[1])[:num_words]
  return [(word, float(np.exp(logp))) for word, logp in ranked]
