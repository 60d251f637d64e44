r"""Word-level LSTM on the Penn Treebank: Zaremba et al. 2014's medium, regularised model.

A run for an accelerator: 39 epochs of a 2 x 650 LSTM unrolled 35 steps (51,753
steps), about 6 hours on 2 CPU cores (0.37-0.43 s a step alone on a Zen 4 EPYC;
validation perplexity 220.2, 156.7, 133.1, 120.4 after epochs 1-4, docs/results.md).
Needs pip install -e '.[ptb]'.

  python -m experiments.lm.main --config=experiments/lm/configs/ptb_medium.py:gpu \
      --workdir=runs/ptb_medium

The paper's settings (Table 1, medium): 2 LSTM layers of 650 units (two biases per
layer, as in ptb_small.py), 650-wide embeddings, 20 streams unrolled 35 steps with
the state carried across batches, dropout 0.5 on every non-recurrent connection (the
embeddings, between the layers, before the softmax), every parameter uniform in
[-0.05, 0.05], SGD for 39 epochs at rate 1 for 6 epochs and then divided by 1.2
every epoch, gradients clipped to norm 5. Published: 86.2 validation / 82.7 test
perplexity. As in ptb_small.py, our loss is the mean over tokens: rate 35 and
clipping 5 / 35 take the paper's steps.

':gpu' / ':tpu' change only how the run is driven (8 steps a dispatch, the input
pipeline chosen by size), not the paper's batch of 20 streams.
"""

import ml_collections

from experiments import accelerator_sizes
from experiments.lm.configs import ptb_small

UNROLL = 35  # Time steps per window.


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The medium PTB config; `arg` 'gpu' or 'tpu' for one accelerator host."""
  platform = accelerator_sizes.platform(arg)
  c = ptb_small.get_config()
  c.seq_len = UNROLL
  c.num_epochs = 39
  c.model.embed_dim = 650
  c.model.hidden_dim = 650
  c.model.dropout_rate = 0.5
  c.model.embed_dropout = True
  c.model.init_range = 0.05
  c.optimizer.learning_rate = 1.0 * UNROLL
  c.optimizer.clip_grad_norm = 5.0 / UNROLL
  c.optimizer.decay_rate = 1 / 1.2
  c.optimizer.decay_after_epochs = 6
  if platform is not None:
    accelerator_sizes.size_training_fields(c, batch_size=c.batch_size)
  return c
