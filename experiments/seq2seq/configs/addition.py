r"""Transformer encoder-decoder on multi-digit addition written as characters.

Run:
  python -m experiments.seq2seq.main --config=experiments/seq2seq/configs/addition.py \
      --workdir=runs/addition

Expect ('123+456' -> '579', operands of 1-3 digits, 1,000 held-out sums, held out
per operand-length pattern, see research/data/seq2seq_tasks.py): 100.00% exact
sequences, greedy and beam (size 4), at every input length, in each of seeds 0, 1
and 2 (`scripts/reproduce.sh`; where and how long in docs/results.md).
"""

from experiments.seq2seq.configs import default


def get_config():
  """The default config with the task and schedule set for addition."""
  c = default.get_config()
  c.task = 'addition'  # '123+4567' -> '4690'.
  c.generated.num_digits = 3  # Longest operand, in digits.
  c.generated.num_train = 60_000  # Generated training sums.
  c.num_epochs = 20  # Passes over the training set.
  return c
