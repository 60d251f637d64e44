"""The model families the trainer runs, by experiment name.

Each family (`CNNClassifier`, `CharLanguageModel`, `Seq2Seq`, `PromptDDPM`) is built
from an experiment's ConfigDict and implements `research.train.Family`; `FAMILIES`
maps the experiment names 'cnn', 'lm', 'seq2seq' and 'ddpm' to them, and
`train_and_evaluate(name, config, workdir)` runs one. `load_run(workdir)` reads a
finished run back (`research.families.loaded_run`): a `LoadedRun` of the run's family
(`LoadedClassifier`, `LoadedLanguageModel`, `LoadedSeq2Seq`, `LoadedDDPM`) with its
model, restored parameters and one call to use them.
"""

from typing import Any

from research.families.cnn import CNNClassifier
from research.families.ddpm import PromptDDPM
from research.families.lm import CharLanguageModel
from research.families.loaded_run import LoadedClassifier
from research.families.loaded_run import LoadedDDPM
from research.families.loaded_run import LoadedLanguageModel
from research.families.loaded_run import LoadedRun
from research.families.loaded_run import LoadedSeq2Seq
from research.families.loaded_run import load_run
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
  'LoadedClassifier',
  'LoadedDDPM',
  'LoadedLanguageModel',
  'LoadedRun',
  'LoadedSeq2Seq',
  'PromptDDPM',
  'Seq2Seq',
  'load_run',
  'train_and_evaluate',
]


def train_and_evaluate(name: str, config, workdir: str, resume: bool = False, log=print) -> dict:
  """Runs the family `name` ('cnn', 'lm', 'seq2seq', 'ddpm') on `config` through the
  one trainer (`research.train.trainer.train_and_evaluate`)."""
  from research.train import trainer  # pylint: disable=g-import-not-at-top

  return trainer.train_and_evaluate(FAMILIES[name](config), workdir, resume, log)
