"""The prompt grammar: its table, the draws training makes from it, and tokenisation."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.data import prompt_grammar as pg
from research.data import tokenizers
from research.data.tokenizers import EOS_ID
from research.data.tokenizers import PAD_ID
from research.data.tokenizers import UNK_ID

NAMES = pg.class_names('mnist_offline', [str(i) for i in range(10)], numerals=True)
TEMPLATES = ('a {attributes} {name}', 'the number {name}, {attributes}')
ATTRS = ('thickness', 'size', 'slant')
GRAMMAR = pg.PromptGrammar(NAMES, TEMPLATES, ATTRS)


def test_class_names_are_words_and_numerals_for_digits_else_the_class_name():
  assert NAMES[7] == ('seven', '7') and len(NAMES) == 10
  assert pg.class_names('mnist', [str(i) for i in range(10)], numerals=False)[3] == ('three',)
  assert pg.class_names('cifar10', ['Airplane', 'pickup_truck'], True) == (
    ('airplane',),
    ('pickup truck',),
  )


def test_fill_tidies_empty_attributes_and_commas():
  assert pg.fill('the number {name}, {attributes}', '7', ()) == 'the number 7'
  assert pg.fill('a {attributes} {name}', 'two', ('thick', 'slanted')) == 'a thick slanted two'
  assert pg.fill('{attributes} {name}', 'two', ()) == 'two'


def test_templates_must_have_both_fields():
  with pytest.raises(ValueError, match='exactly the fields'):
    pg.PromptGrammar(NAMES, ('a {name}',))
  with pytest.raises(ValueError, match='exactly the fields'):
    pg.PromptGrammar(NAMES, ('a {attributes} {name} {colour}',))
  with pytest.raises(ValueError, match="unknown attribute 'colour'"):
    pg.PromptGrammar(NAMES, TEMPLATES, ('colour',))


def test_table_rows_are_the_rendered_choices():
  prompts = GRAMMAR.prompts()
  assert GRAMMAR.shape == (10, 2, 2, 27, 6) and len(prompts) == 10 * 2 * 2 * 27 * 6
  rng = np.random.default_rng(0)
  for _ in range(200):
    k, f, t, o = rng.integers(10), rng.integers(2), rng.integers(2), rng.integers(6)
    levels = rng.integers(0, 3, 3)
    order = list(itertools.permutations(range(3)))[o]
    row = GRAMMAR.rows(np.array([k]), np.array([f]), np.array([t]), levels[None], np.array([o]))
    assert prompts[int(row[0])] == GRAMMAR.render(k, f, t, levels, order)
  assert GRAMMAR.render(7, 1, 1, [2, 0, 1], (2, 0, 1)) == 'the number 7, upright thick'


def _drawn_prompts(labels, levels, rate, n_keys=1, seed=0, describe=1.0):
  prompts = GRAMMAR.prompts()
  out = []
  for i in range(n_keys):
    rows = jax.jit(GRAMMAR.sample_rows, static_argnums=(3, 4))(
      jax.random.key(seed + i), jnp.asarray(labels), jnp.asarray(levels), describe, rate
    )
    out += [prompts[int(r)] for r in rows]
  return out


def test_drawn_prompts_name_the_class_and_only_the_measured_attributes():
  labels = np.arange(10).repeat(20)
  levels = np.random.default_rng(1).integers(0, 3, (200, 3))
  prompts = _drawn_prompts(labels, levels, 0.5, n_keys=3)
  named_any = 0
  for prompt, k, lv in zip(prompts, np.tile(labels, 3), np.tile(levels, (3, 1)), strict=True):
    words = prompt.replace(',', '').split()
    assert NAMES[k][0] in words or NAMES[k][1] in words, prompt
    for a, attr in enumerate(ATTRS):
      low, high = pg.glyph_attributes.WORDS[attr]
      assert (low in words) <= (lv[a] == 1) and (high in words) <= (lv[a] == 2), (prompt, lv)
      named_any += low in words or high in words
  # Each measured attribute is named about half the time.
  measured = 3 * (levels > 0).sum()
  assert 0.4 < named_any / measured < 0.6
  # Every name form, template and word order turns up.
  assert any('7' in p.split() for p in prompts) and any('seven' in p.split() for p in prompts)
  assert any(p.startswith('the number') for p in prompts) and any(
    p.startswith('a ') for p in prompts
  )


def test_attribute_rate_zero_names_none_and_one_names_every_measured_attribute():
  labels, levels = np.arange(10), np.full((10, 3), 2)
  words = {w for pair in pg.glyph_attributes.WORDS.values() for w in pair}
  assert not any(
    words & set(p.replace(',', '').split()) for p in _drawn_prompts(labels, levels, 0.0)
  )
  for p in _drawn_prompts(labels, levels, 1.0):
    assert {'thick', 'large', 'slanted'} <= set(p.replace(',', '').split()), p


def test_a_grammar_without_attributes_draws_names_and_templates():
  grammar = pg.PromptGrammar(
    (('cat',), ('dog',)), ('a {attributes} {name}', 'the {name}{attributes}')
  )
  assert grammar.shape == (2, 1, 2, 1, 1) and grammar.prompts() == [
    'a cat',
    'the cat',
    'a dog',
    'the dog',
  ]
  rows = grammar.sample_rows(
    jax.random.key(0), jnp.array([1] * 20), jnp.zeros((20, 0), int), 0.5, 0.5
  )
  assert {grammar.prompts()[int(r)] for r in rows} == {'a dog', 'the dog'}


def test_attribute_free_prompts_stand_for_typical_and_extreme_images_alike():
  # 1,000 images in the middle third of every attribute, 1,000 in an extreme third of all.
  labels = np.zeros(2000, int)
  levels = np.concatenate([np.zeros((1000, 3), int), np.full((1000, 3), 2)])
  words = {w for pair in pg.glyph_attributes.WORDS.values() for w in pair}
  prompts = _drawn_prompts(labels, levels, 0.5, describe=0.5)
  bare = np.array([not words & set(p.replace(',', '').split()) for p in prompts])
  assert bare[:1000].all()
  # Half never describe, half name none of three at rate 0.5: 0.5 + 0.5 / 8 = 0.5625.
  assert abs(bare[1000:].mean() - 0.5625) < 0.05


def test_hide_words_replaces_words_only():
  tokens = jnp.array([[4, 5, 6, EOS_ID, PAD_ID], [7, EOS_ID, PAD_ID, PAD_ID, PAD_ID]])
  all_hidden = pg.hide_words(jax.random.key(0), tokens, 1.0)
  np.testing.assert_array_equal(
    all_hidden, [[UNK_ID] * 3 + [EOS_ID, PAD_ID], [UNK_ID, EOS_ID, PAD_ID, PAD_ID, PAD_ID]]
  )
  np.testing.assert_array_equal(pg.hide_words(jax.random.key(0), tokens, 0.0), tokens)
  some = pg.hide_words(jax.random.key(1), jnp.tile(tokens, (50, 1)), 0.3)
  share = float((some == UNK_ID).sum()) / (50 * 4)
  assert 0.2 < share < 0.4


def test_paraphrases_tokenise_known_words_and_read_unknown_ones_as_unk():
  tok = tokenizers.WordTokenizer.from_prompts(GRAMMAR.prompts())
  assert pg.unknown_words(tok, ['please draw a thick, slanted 7', 'the number seven']) == [
    'draw',
    'please',
  ]
  a, b = tok.encode_batch(['please draw a thick, slanted 7', 'a thick slanted 7'], 8)
  np.testing.assert_array_equal(a[2:6], b[:4])
  assert list(a[:2]) == [UNK_ID, UNK_ID] and tok.decode(b) == 'a thick slanted 7'
