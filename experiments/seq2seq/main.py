r"""Train the transformer encoder-decoder on a seq2seq task.

  python -m experiments.seq2seq.main --config=experiments/seq2seq/configs/default.py \
      --workdir=runs/reverse [--resume] [--config.task=addition ...]
"""

from absl import app

from research import cli
from research.recipes import seq2seq

main = cli.define_experiment('experiments/seq2seq/configs/default.py',
                             seq2seq.train_and_evaluate)

if __name__ == '__main__':
  app.run(main)
