r"""Train the transformer encoder-decoder on a seq2seq task.

  python -m experiments.seq2seq.main --config=experiments/seq2seq/configs/default.py \
      --workdir=runs/reverse [--resume] [--config.task=addition ...]
"""

from absl import app
from absl import flags

from research import cli
from research.recipes import seq2seq

_CONFIG = cli.define_config_flag('experiments/seq2seq/configs/default.py')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics '
                               'and reports.')
_RESUME = flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in '
                            '--workdir.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.run(lambda: seq2seq.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                             _RESUME.value))


if __name__ == '__main__':
  app.run(main)
