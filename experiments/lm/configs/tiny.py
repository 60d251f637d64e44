r"""A seconds-long smoke run of the LM experiment (used by the tests).

  python -m experiments.lm.main --config=experiments/lm/configs/tiny.py \
      --workdir=/tmp/lm_tiny

Expect: it finishes in seconds; the numbers mean nothing.
"""

from experiments.lm.configs import default


def get_config():
  """The default config, shrunk: tiny model, short windows, a few steps."""
  c = default.get_config()
  c.seq_len = 16  # Short windows.
  c.batch_size = 8  # Small batches.
  c.eval_batch_size = 64  # Validation windows per batch.
  c.num_steps = 6  # A few steps.
  c.eval_every_steps = 3  # Two evaluations and checkpoints.
  c.progress = False  # No progress bar in logs.
  c.model.embed_dim = 8  # Tiny embedding.
  c.model.hidden_dim = 16  # Tiny recurrent width.
  c.model.dropout_rate = 0.0  # None: drivers that draw different masks compare equal.
  c.optimizer.warmup_steps = 1  # Short warm-up.
  c.sample.length = 10  # Short samples.
  return c
