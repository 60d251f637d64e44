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
  for prompt, k, asked in zip(req.prompts, req.classes, req.asked, strict=True):
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
  # Training images: widths 1..3 in even classes, 3..5 in odd ones; shifts -0.2..0.4.
  train = np.stack(
    [_bar(w + 2 * (k % 2), s) for k in range(10) for w in (1, 2, 3) for s in (-0.2, 0.1, 0.4)]
  )
  labels = np.repeat(np.arange(10), 9)
  thresholds = ga.fit_thresholds(ga.measure(train, GRAMMAR.attributes), labels, 10)
  req = pr.attribute_requests(GRAMMAR, 0, 2)

  def sample(k, attr, level, follow):
    level = level if follow else 3 - level
    if attr == 0:  # Thin: the class's thinnest width, thick: its thickest.
      return _bar((1 if level == 1 else 3) + 2 * (k % 2), 0.1)
    return _bar(2 + 2 * (k % 2), 0.0 if level == 1 else 0.4)

  for follow, want in ((True, 1.0), (False, 0.0)):
    images = np.stack(
      [
        sample(k, int(np.argmax(a > 0)), int(a.max()), follow)
        for k, a in zip(req.classes, req.asked, strict=True)
      ]
    )
    report = pr.attribute_report(images, req, GRAMMAR, thresholds)
    assert set(report) == {'thickness', 'slant'}
    for name in report:
      assert report[name]['agreement'] == want, (name, report)
  assert report['thickness']['mean_thin'] > report['thickness']['mean_thick']
