"""The model families the trainer runs, by experiment name."""

from research.families.cnn import CNNClassifier
from research.families.ddpm import PromptDDPM
from research.families.lm import CharLanguageModel
from research.families.seq2seq import Seq2Seq

FAMILIES = {'cnn': CNNClassifier, 'lm': CharLanguageModel, 'seq2seq': Seq2Seq,
            'ddpm': PromptDDPM}

__all__ = ['CNNClassifier', 'CharLanguageModel', 'FAMILIES', 'PromptDDPM', 'Seq2Seq']


def train_and_evaluate(name: str, config, workdir: str, resume: bool = False,
                       log=print) -> dict:
  """Runs the family `name` ('cnn', 'lm', 'seq2seq', 'ddpm') on `config` through the
  one trainer (`research.train.trainer.train_and_evaluate`)."""
  from research.train import trainer  # pylint: disable=g-import-not-at-top
  return trainer.train_and_evaluate(FAMILIES[name](config), workdir, resume, log)
