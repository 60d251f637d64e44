r"""Train a character-level LSTM or GRU language model.

  python -m experiments.lm.main --config=experiments/lm/configs/default.py \
      --workdir=runs/lm_lstm [--resume] [--config.model.cell=gru ...]
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from research.errors import UserInputError
from research.recipes import char_lm

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/lm/configs/default.py', 'Experiment config file.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics '
                               'and samples.')
_RESUME = flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in '
                            '--workdir.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    char_lm.train_and_evaluate(_CONFIG.value, _WORKDIR.value, _RESUME.value)
  except UserInputError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  # Orbax logs every checkpoint step at INFO; show warnings unless -v asks for more.
  flags.FLAGS.set_default('verbosity', logging.converter.ABSL_WARNING)
  app.run(main)
