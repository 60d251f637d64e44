"""Tiny (loss_fn, gather_fn, state, data) set-ups of the sequence families, built by
the families themselves on random data, for the multi-device equivalence tests."""

import jax
import numpy as np

from experiments.ddpm.configs import tiny as ddpm_tiny
from experiments.lm.configs import tiny as lm_tiny
from experiments.seq2seq.configs import default as seq2seq_default
from research import families
from research.data import image_classification
from research.data import seq2seq_tasks
from research.data import text as text_lib
from research.data import tokenizers
from research.train import optimizers

V = 12


def _setup(family):
  """The family's (loss_fn, gather_fn, state, this process's training arrays)."""
  data = family.load_data()
  model = family.build(data)
  # SGD: Adam divides near-zero gradients (unused embedding rows) by their own size,
  # which turns summation-order round-off into lr-sized differences.
  tx = optimizers.make_optimizer(
    optimizers.OptimizerConfig(name='sgd', learning_rate=0.5, weight_decay=1e-4)
  )
  return model.loss_fn, model.gather_fn, model.init_state(tx, jax.random.key(0)), data.train


def _locked(config, **overrides):
  config.lock()  # A mistyped override fails.
  config.update(overrides)
  return config


def char_lm(cell: str):
  """LSTM/GRU LM on 200 random tokens, windows of 6, dropout between 2 layers."""
  rng = np.random.default_rng(0)
  tokens = lambda n: rng.integers(1, V, n).astype(np.int32)
  corpus = text_lib.TextCorpus(
    tokens(200), tokens(30), tokenizers.CharTokenizer('abcdefgh'), name='random', version='0'
  )
  config = _locked(
    lm_tiny.get_config(),
    seq_len=6,
    model=dict(embed_dim=8, hidden_dim=16, num_layers=2, dropout_rate=0.2, cell=cell),
  )
  return _setup(families.CharLanguageModel(config, corpus=corpus))


def transformer_seq2seq():
  """A 1+1-layer transformer on 40 random (input, target) token pairs, dropout 0.1.

  In a multi-process run each process gets its half of the pairs."""
  rng = np.random.default_rng(0)
  vocab = tokenizers.CharTokenizer('abcdefgh')
  assert vocab.size == V
  first = tokenizers.NUM_SPECIAL  # Character ids only: no padding, no EOS.
  pairs = lambda n: seq2seq_tasks.Seq2SeqDataset(
    'random',
    rng.integers(first, V, (n, 6)).astype(np.int32),
    rng.integers(first, V, (n, 5)).astype(np.int32),
    vocab,
  )
  config = _locked(
    seq2seq_default.get_config(),
    model=dict(
      emb_dim=16,
      num_heads=2,
      num_encoder_layers=1,
      num_decoder_layers=1,
      mlp_dim=24,
      dropout_rate=0.1,
      share_embeddings=False,
    ),
  )
  return _setup(families.Seq2Seq(config, splits=(pairs(40), pairs(8))))


def ddpm_denoiser():
  """A two-level U-Net + one-layer prompt encoder on 40 random 8x8 digits, T = 50."""
  rng = np.random.default_rng(0)
  digits = lambda n: image_classification.ImageDataset(
    rng.integers(0, 256, (n, 8, 8, 1)).astype(np.uint8),
    rng.integers(0, 10, n).astype(np.int32),
    num_classes=10,
    class_names=tuple(map(str, range(10))),
    name='random',
    version='0',
  )
  config = _locked(
    ddpm_tiny.get_config(),
    image_size=8,
    num_diffusion_steps=50,
    cond_drop_rate=0.2,
    text=dict(num_heads=2),
  )
  return _setup(families.PromptDDPM(config, datasets=(digits(40), digits(8))))
