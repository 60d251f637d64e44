r"""Train a character-level LSTM or GRU language model.

  python -m experiments.lm.main --config=experiments/lm/configs/default.py \
      --workdir=runs/lm_lstm [--resume] [--config.model.cell=gru ...]
"""

from absl import app

from research import cli
from research.recipes import char_lm

main = cli.define_experiment('experiments/lm/configs/default.py',
                             char_lm.train_and_evaluate)

if __name__ == '__main__':
  app.run(main)
