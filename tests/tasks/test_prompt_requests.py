"""What the DDPM's judge asks for, and how it scores attribute requests."""

import numpy as np

from research.data import glyph_attributes as ga
from research.data import prompt_grammar as pg
from research.tasks import prompt_requests as pr

NAMES = pg.class_names('mnist_offline', [str(i) for i in range(10)], numerals=True)
GRAMMAR = pg.PromptGrammar(NAMES, ('a {attributes} {name}',), ('thickness', 'slant'))


def test_class_requests_cycle_through_templates_and_name_forms():
  req = pr.class_requests(NAMES, ('draw a {attributes} {name}', '{name}, {attributes}'), 4, 2)
  assert len(req) == 40 and req.asked.shape == (40, 2) and not req.asked.any()
  np.testing.assert_array_equal(req.classes, np.repeat(np.arange(10), 4))
  assert req.prompts[28:32] == ['draw a seven', 'draw a 7', 'seven', '7']


def test_attribute_requests_name_one_word_at_a_time():
  req = pr.attribute_requests(GRAMMAR, 0, 3)
  assert len(req) == 2 * 10 * 2 * 3
  for prompt, k, asked in zip(req.prompts, req.classes, req.asked):
    assert (asked > 0).sum() == 1
    a = int(np.flatnonzero(asked)[0])
    word = ga.WORDS[GRAMMAR.attributes[a]][asked[a] - 1]
    assert prompt == f'a {word} {NAMES[k][0]}'
  assert {p for p in req.prompts if p.endswith(' seven')} == {
    'a thin seven',
    'a thick seven',
    'a upright seven',
    'a slanted seven',
  }


def _bar(width: int, shift: float) -> np.ndarray:
  img = np.zeros((28, 28, 1), np.uint8)
  for dy in range(-9, 10):
    x0 = int(round(14 - width / 2 - shift * dy))
    img[14 + dy, x0 : x0 + width] = 255
  return img


def test_attribute_report_scores_samples_that_follow_and_that_defy_the_words():
  # Training images of every class: widths 1..5 and shifts -0.2..0.4.
  train = np.stack([_bar(w, s) for w in (1, 2, 3, 4, 5) for s in (-0.2, 0.1, 0.4)] * 10)
  labels = np.repeat(np.arange(10), 15)
  thresholds = ga.fit_thresholds(ga.measure(train, GRAMMAR.attributes), labels, 10)
  req = pr.attribute_requests(GRAMMAR, 0, 2)
  # Samples that do as asked: thin -> width 1, thick -> 5, upright -> shift 0, slanted -> 0.4.
  follow = {(0, 1): _bar(1, 0.1), (0, 2): _bar(5, 0.1), (1, 1): _bar(3, 0.0), (1, 2): _bar(3, 0.4)}
  defy = {(0, 1): _bar(5, 0.1), (0, 2): _bar(1, 0.1), (1, 1): _bar(3, 0.4), (1, 2): _bar(3, -0.2)}
  for samples, want in ((follow, 1.0), (defy, 0.0)):
    images = np.stack([samples[(int(np.argmax(a > 0)), int(a.max()))] for a in req.asked])
    report = pr.attribute_report(images, req, GRAMMAR, thresholds)
    assert set(report) == {'thickness', 'slant'}
    for name in report:
      assert report[name]['agreement'] == want, (name, report)
  assert report['thickness']['mean_thin'] > report['thickness']['mean_thick']
