r"""Train the seed's CNN classifier.

  python -m experiments.cnn.main --config=experiments/cnn/configs/default.py \
      --workdir=runs/cnn [--resume] [--config.num_epochs=1 ...]
"""

from absl import app
from absl import flags

from research import cli
from research.recipes import cnn_classifier

_CONFIG = cli.define_config_flag('experiments/cnn/configs/default.py')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics '
                               'and reports.')
_RESUME = flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in '
                            '--workdir.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.run(lambda: cnn_classifier.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                                     _RESUME.value, log=cli.log))


if __name__ == '__main__':
  app.run(main)
