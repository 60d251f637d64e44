r"""Train a character-level LSTM or GRU language model.

  python -m experiments.lm.main --config=experiments/lm/configs/default.py \
      --workdir=runs/lm_lstm [--resume] [--config.model.cell=gru ...]
"""

import functools
import os

from absl import app

from research import cli
from research import families

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'default.py')
main = cli.define_experiment(DEFAULT_CONFIG, functools.partial(families.train_and_evaluate, 'lm'))

if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
