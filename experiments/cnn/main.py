r"""Train the seed's CNN classifier.

  python -m experiments.cnn.main --config=experiments/cnn/configs/default.py \
      --workdir=runs/cnn [--resume] [--config.num_epochs=1 ...]
"""

import functools
import os

from absl import app

from research import cli
from research import families

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'default.py')
main = cli.define_experiment(DEFAULT_CONFIG, functools.partial(families.train_and_evaluate, 'cnn'))

if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
