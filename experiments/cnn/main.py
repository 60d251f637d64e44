r"""Train the seed's CNN classifier.

  python -m experiments.cnn.main --config=experiments/cnn/configs/default.py \
      --workdir=runs/cnn [--resume] [--config.num_epochs=1 ...]
"""

from absl import app

from research import cli
from research.recipes import cnn_classifier

main = cli.define_experiment('experiments/cnn/configs/default.py',
                             cnn_classifier.train_and_evaluate)

if __name__ == '__main__':
  app.run(main)
