r"""Train a character-level LSTM or GRU language model.

  python -m experiments.lm.main --config=experiments/lm/configs/default.py \
      --workdir=runs/lm_lstm [--resume] [--config.model.cell=gru ...]
"""

from absl import app
from absl import flags

from research import cli
from research.recipes import char_lm

_CONFIG = cli.define_config_flag('experiments/lm/configs/default.py')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics '
                               'and samples.')
_RESUME = flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in '
                            '--workdir.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.run(lambda: char_lm.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                              _RESUME.value))


if __name__ == '__main__':
  app.run(main)
