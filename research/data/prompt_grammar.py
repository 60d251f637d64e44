"""Free-form image prompts: templates x class names x measured attributes.

Dimension key: B batch, K classes, F name forms per class, T templates,
A attributes, P = A! attribute orders, R prompts in the table, L prompt length.

A prompt is a template ('a handwritten {attributes} {name}') filled with one of
the class's names ('seven' or '7') and the words of some of the image's
measured attributes ('thick slanted', in any order). Every combination is one
row of a token table, so training draws a fresh prompt per example inside the
jitted step (`sample_rows`): which name, which template, which attributes are
named (in a share `describe_rate` of prompts, each measured one with probability
`attribute_rate`) and in which order.

Prompts the model never saw (paraphrase templates, words outside the training
vocabulary) go through the same `WordTokenizer`: unknown words become UNK_ID,
and training replaces words by UNK_ID at `unknown_word_rate` so that an
unknown word is something the model has learnt to read past.
"""

import dataclasses
import itertools
import math
import re
import string
from typing import Sequence

import jax
import jax.numpy as jnp

from research.data import glyph_attributes
from research.data import tokenizers

DIGIT_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')


def class_names(dataset: str, names: Sequence[str], numerals: bool) -> tuple[tuple[str, ...], ...]:
  """(K, F) names per class: ('seven', '7') for MNIST-like digits (just the word
  unless `numerals`), else the data set's class name in lower-case words."""
  if dataset.startswith('mnist') and len(names) == 10:
    return tuple((w, str(i)) if numerals else (w,) for i, w in enumerate(DIGIT_WORDS))
  return tuple((n.replace('_', ' ').lower(),) for n in names)


def fill(template: str, name: str, attribute_words: Sequence[str]) -> str:
  """The template with '{name}' and '{attributes}' filled, spaces tidied."""
  text = template.format(name=name, attributes=' '.join(attribute_words))
  text = re.sub(r'\s+([,.])', r'\1', ' '.join(text.split()))
  return text.strip(' ,')


def check_template(template: str) -> None:
  """Raises ValueError unless the template has exactly the fields name, attributes."""
  try:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
  except ValueError as e:
    raise ValueError(f'template {template!r}: {e}') from None
  if fields != {'name', 'attributes'}:
    raise ValueError(
      f'template {template!r} must use exactly the fields {{name}} and {{attributes}}, '
      f'found {sorted(fields)}'
    )


@dataclasses.dataclass(frozen=True)
class PromptGrammar:
  """The prompts training draws from, as an enumerable table.

  Attributes:
    names: (K, F) name forms per class (every class the same number F).
    templates: T templates, each with '{name}' and '{attributes}'.
    attributes: A attribute names of `glyph_attributes.WORDS` (any may be named).
  """

  names: tuple[tuple[str, ...], ...]
  templates: tuple[str, ...]
  attributes: tuple[str, ...] = ()

  def __post_init__(self):
    if len({len(n) for n in self.names}) != 1:
      raise ValueError(f'every class needs the same number of names, got {self.names}')
    if not self.templates:
      raise ValueError('need at least one template')
    for t in self.templates:
      check_template(t)
    glyph_attributes.check_names(self.attributes)

  @property
  def shape(self) -> tuple[int, int, int, int, int]:
    """(K, F, T, 3 ** A, P): the table's axes (3 levels per attribute: unnamed,
    low, high; P orders of the named words)."""
    a = len(self.attributes)
    return len(self.names), len(self.names[0]), len(self.templates), 3**a, math.factorial(a)

  def render(
    self, k: int, form: int, template: int, levels: Sequence[int], order: Sequence[int]
  ) -> str:
    """One prompt: class k's name `form` in `template`, naming attribute a's low
    (levels[a] = 1) or high (2) word, in `order` (a permutation of range(A))."""
    words = [glyph_attributes.WORDS[self.attributes[a]][levels[a] - 1] for a in order if levels[a]]
    return fill(self.templates[template], self.names[k][form], words)

  def prompts(self) -> list[str]:
    """All R = K F T 3^A P prompts in table order (row-major over `shape`)."""
    a = len(self.attributes)
    k, f, t, _, _ = self.shape
    out: list[str] = []
    for kk, ff, tt in itertools.product(range(k), range(f), range(t)):
      for code in range(3**a):
        lv = [(code // 3**i) % 3 for i in range(a)]
        out.extend(self.render(kk, ff, tt, lv, o) for o in itertools.permutations(range(a)))
    return out

  def rows(self, labels_B, forms_B, templates_B, levels_BxA, orders_B):
    """int32 (B,) table rows of the given choices (NumPy or traced jax arrays)."""
    _, f, t, c, p = self.shape
    code = (levels_BxA * (3 ** jnp.arange(len(self.attributes)))).sum(-1)
    return (((labels_B * f + forms_B) * t + templates_B) * c + code) * p + orders_B

  def sample_rows(
    self,
    rng: jax.Array,
    labels_B: jax.Array,
    levels_BxA: jax.Array,
    describe_rate: float,
    attribute_rate: float,
  ) -> jax.Array:
    """int32 (B,) random rows for images of classes `labels_B` whose attributes
    measure `levels_BxA` (0 middle, 1 low, 2 high): a uniform name form, template
    and word order. A share `describe_rate` of prompts may name attributes, each
    measured one with probability `attribute_rate`; the rest name none, whatever
    the image, so an attribute-free prompt stands for every image of its class
    (naming every measured attribute at rate r alone would leave attribute-free
    prompts to the typical images: a fraction (1 - r)^3 of those extreme in all
    three attributes, against all of those extreme in none)."""
    _, f, t, _, p = self.shape
    b = labels_B.shape[0]
    kf, kt, kd, ka, ko = jax.random.split(rng, 5)
    describe = jax.random.bernoulli(kd, describe_rate, (b, 1))
    named = describe & jax.random.bernoulli(ka, attribute_rate, levels_BxA.shape)
    return self.rows(
      labels_B,
      jax.random.randint(kf, (b,), 0, f),
      jax.random.randint(kt, (b,), 0, t),
      jnp.where(named, levels_BxA, 0),
      jax.random.randint(ko, (b,), 0, p),
    )


def hide_words(rng: jax.Array, tokens_BxL: jax.Array, rate: float) -> jax.Array:
  """Tokens with each word (not PAD/BOS/EOS) replaced by UNK_ID with probability `rate`."""
  is_word = tokens_BxL >= tokenizers.NUM_SPECIAL
  hide = jax.random.bernoulli(rng, rate, tokens_BxL.shape) & is_word
  return jnp.where(hide, tokenizers.UNK_ID, tokens_BxL)


def unknown_words(tokenizer: tokenizers.WordTokenizer, prompts: Sequence[str]) -> list[str]:
  """The sorted distinct words of `prompts` outside the tokenizer's vocabulary."""
  known = set(tokenizer.words)
  return sorted({w for p in prompts for w in tokenizers.split_words(p) if w not in known})
