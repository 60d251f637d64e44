"""The model families the trainer runs, by experiment name.

Each family (`CNNClassifier`, `CharLanguageModel`, `Seq2Seq`, `PromptDDPM`) is built
from an experiment's ConfigDict and implements `research.train.Family`; `FAMILIES`
maps the experiment names 'cnn', 'lm', 'seq2seq' and 'ddpm' to them, and
`train_and_evaluate(name, config, workdir)` runs one.
"""

from typing import Any

from research.families.cnn import CNNClassifier
from research.families.ddpm import PromptDDPM
from research.families.lm import CharLanguageModel
from research.families.seq2seq import Seq2Seq

FAMILIES: dict[str, Any] = {
  'cnn': CNNClassifier,
  'lm': CharLanguageModel,
  'seq2seq': Seq2Seq,
  'ddpm': PromptDDPM,
}

__all__ = [
  'CNNClassifier',
  'CharLanguageModel',
  'FAMILIES',
  'PromptDDPM',
  'Seq2Seq',
  'train_and_evaluate',
]


def train_and_evaluate(name: str, config, workdir: str, resume: bool = False, log=print) -> dict:
  """Runs the family `name` ('cnn', 'lm', 'seq2seq', 'ddpm') on `config` through the
  one trainer (`research.train.trainer.train_and_evaluate`)."""
  from research.train import trainer  # pylint: disable=g-import-not-at-top

  return trainer.train_and_evaluate(FAMILIES[name](config), workdir, resume, log)
