"""What a prompt-conditioned image model is asked for when it is judged.

Dimension key: N requests, A attributes, K classes.

Three sets of requests, each a list of prompts with the class (and attribute
levels) they ask for, so samples can be checked against the request:

  `class_requests`      every class in each template and name form, no attribute
                        (training templates: digit accuracy and the Fréchet
                        distance; paraphrase templates: digit accuracy on
                        wordings never trained on);
  `attribute_requests`  every class asked for the low and then the high word of
                        one attribute at a time ('a thin seven', 'a thick seven').
"""

import dataclasses
import itertools

import numpy as np

from research.data import glyph_attributes
from research.data import prompt_grammar


@dataclasses.dataclass(frozen=True)
class Requests:
  """N prompts and what each asks for.

  Attributes:
    prompts: the N prompt strings.
    classes: int (N,) the class each names.
    asked: int (N, A) per attribute: 0 not named, 1 its low word, 2 its high word.
  """

  prompts: list[str]
  classes: np.ndarray
  asked: np.ndarray

  def __len__(self) -> int:
    return len(self.prompts)


def class_requests(
  names: tuple[tuple[str, ...], ...],
  templates: tuple[str, ...],
  per_class: int,
  num_attributes: int,
) -> Requests:
  """`per_class` prompts per class, cycling through every (template, name form) pair.

  Args:
    names: (K, F) name forms per class.
    templates: templates with '{name}' and '{attributes}' (left empty).
    per_class: prompts per class.
    num_attributes: A, the width of `asked` (all zero).
  """
  pairs = list(itertools.product(templates, range(len(names[0]))))
  prompts, classes = [], []
  for k, forms in enumerate(names):
    for i in range(per_class):
      template, f = pairs[i % len(pairs)]
      prompts.append(prompt_grammar.fill(template, forms[f], ()))
      classes.append(k)
  return Requests(prompts, np.array(classes), np.zeros((len(prompts), num_attributes), int))


def attribute_requests(
  grammar: prompt_grammar.PromptGrammar, template: int, per_prompt: int
) -> Requests:
  """For each attribute, class and level (low, high): `per_prompt` copies of the
  prompt naming just that word, in `grammar.templates[template]` with the first
  name form ('a thin seven')."""
  a = len(grammar.attributes)
  prompts, classes, asked = [], [], []
  for attr, k, level in itertools.product(range(a), range(len(grammar.names)), (1, 2)):
    levels = [0] * a
    levels[attr] = level
    prompt = grammar.render(k, 0, template, levels, range(a))
    prompts += [prompt] * per_prompt
    classes += [k] * per_prompt
    asked += [levels] * per_prompt
  return Requests(prompts, np.array(classes, int), np.array(asked, int).reshape(-1, a))


def attribute_report(
  images_NxHxWxC: np.ndarray, requests: Requests, grammar: prompt_grammar.PromptGrammar, thresholds
) -> dict[str, dict[str, float]]:
  """Per attribute: how often samples land on the asked side of their class's
  training median ('agreement', chance 0.5), and the mean measured value of the
  samples asked for the low and for the high word.

  Args:
    images_NxHxWxC: uint8 samples of `requests`, in order.
    requests: from `attribute_requests`.
    grammar: the grammar whose attributes they name.
    thresholds: `glyph_attributes.Thresholds` of the training images.
  """
  values = glyph_attributes.measure(images_NxHxWxC, grammar.attributes)
  agree = glyph_attributes.agreement(values, requests.classes, requests.asked, thresholds)
  out = {}
  for a, name in enumerate(grammar.attributes):
    low, high = glyph_attributes.WORDS[name]
    out[name] = {
      'agreement': float(agree[a]),
      f'mean_{low}': float(values[requests.asked[:, a] == 1, a].mean()),
      f'mean_{high}': float(values[requests.asked[:, a] == 2, a].mean()),
    }
  return out
