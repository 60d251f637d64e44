r"""Train the transformer encoder-decoder on a seq2seq task.

  python -m experiments.seq2seq.main --config=experiments/seq2seq/configs/default.py \
      --workdir=runs/reverse [--resume] [--config.task=addition ...]
"""

import functools
import os

from absl import app

from research import cli
from research import families

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'default.py')
main = cli.define_experiment(
  DEFAULT_CONFIG, functools.partial(families.train_and_evaluate, 'seq2seq')
)

if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
