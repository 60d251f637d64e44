r"""Character-level LSTM language model on the offline pydoc-topics text.

Run (scripts/env.sh sets the allocator variables; source it or prefix them):
  python -m experiments.lm.main --config=experiments/lm/configs/default.py \
      --workdir=runs/lm_lstm
  python -m experiments.lm.main --config=experiments/lm/configs/default.py \
      --workdir=runs/lm_gru --config.model.cell=gru
  ... --config.dataset=tiny_shakespeare       # the real tfds data set
  ... --config.text_file=path/to/any.txt      # any UTF-8 text, split 90/10

Expect (2 shared CPU cores): validation bits per character 1.79 for the LSTM (466 of
600 steps when the 540 s training budget ran out, about 7,000 tokens/s) and 1.72 for
the GRU (all 600 steps in about 6 minutes, about 13,600 tokens/s), against 3.35 for
the bigram model counted on the same training text.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config; every field can be overridden with --config.X=..."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # PRNG seed: parameters, dropout, window order and sampling.
  c.dataset = 'text_offline'  # tfds name with a 'text' feature: or 'tiny_shakespeare'.
  c.data_dir = ''  # tfds data directory ('' = tfds's default, ~/tensorflow_datasets).
  c.text_file = ''  # A UTF-8 text file to use instead of `dataset` (split 90/10).
  c.train_split = 'train'  # tfds split to train on.
  c.validation_split = 'validation'  # tfds split for validation bits per character.
  c.seq_len = 128  # Characters predicted per window (backpropagation length).
  c.batch_size = 64  # Windows per training step (all devices together).
  c.eval_batch_size = 256  # Windows per evaluation batch.
  c.num_steps = 600  # Training steps (also the length of the lr schedule).
  c.eval_every = 200  # Validate, log and checkpoint every this many steps.
  c.max_train_seconds = 540.0  # Stop training after this long (0 = no limit).
  c.steps_per_dispatch = 1  # Train steps per compiled call.
  c.driver = 'jit'  # Data parallelism: 'jit' (sharded mesh) or 'pmap'.
  c.microbatches = 1  # Independent parts per device train batch (0: auto); 2 gave no gain here.
  c.progress = True  # tqdm progress bar.
  c.bigram_smoothing = 1.0  # Add-k smoothing of the bigram baseline's counts.

  c.model = ml_collections.ConfigDict()
  c.model.cell = 'lstm'  # Recurrent cell: 'lstm' or 'gru'.
  c.model.embed_dim = 128  # Character embedding width.
  c.model.hidden_dim = 512  # Hidden width of every recurrent layer.
  c.model.num_layers = 1  # Stacked recurrent layers.
  c.model.dropout_rate = 0.0  # Dropout after every recurrent layer (training only).
  c.model.unroll = 1  # Time steps per scan iteration (speed only).
  c.model.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16' (params float32).

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'adam'  # 'adam' (coupled L2 decay), 'adamw', 'sgd', 'rmsprop'.
  c.optimizer.learning_rate = 3e-3  # Peak learning rate.
  c.optimizer.weight_decay = 0.0  # Weight decay coefficient.
  c.optimizer.schedule = 'warmup_cosine'  # 'constant' or 'warmup_cosine'.
  c.optimizer.warmup_steps = 50  # Warm-up steps for 'warmup_cosine'.
  c.optimizer.total_steps = 0  # Schedule length (0 = num_steps).
  c.optimizer.momentum = 0.9  # SGD momentum.
  c.optimizer.clip_grad_norm = 1.0  # Global-norm gradient clipping (0 = off).

  c.sample = ml_collections.ConfigDict()
  c.sample.prompts = ('The cat sat on the', 'The return value of ')  # Prompts to complete.
  c.sample.length = 120  # Characters sampled after each prompt.
  c.sample.temperature = 0.7  # Softmax temperature (<= 0: greedy).
  c.sample.top_k = 10  # Sample among the k likeliest characters (0: all).
  return c
