"""Tiny (loss_fn, gather_fn, state, data) set-ups of the sequence families, for the
multi-device equivalence tests."""

import jax
import jax.numpy as jnp
import numpy as np

from research import diffusion
from research.models import rnn
from research.data import tokenizers
from research.models import text_encoder
from research.models import transformer
from research.models import unet
from research.tasks import diffusion as ddpm
from research.tasks import language_model as lm
from research.tasks import seq2seq
from research.train import optimizers
from research.train import state as state_lib

V = 12


def _state(model, example_args):
  # SGD: Adam divides near-zero gradients (unused embedding rows) by their own size,
  # which turns summation-order round-off into lr-sized differences.
  tx = optimizers.make_optimizer(optimizers.OptimizerConfig(
      name='sgd', learning_rate=0.5, weight_decay=1e-4))
  init = lambda rng: model.init({'params': rng}, *example_args, train=False)['params']
  return state_lib.init_train_state(init, model.apply, tx, jax.random.key(0))


def char_lm(cell: str):
  """LSTM/GRU LM on 200 random tokens, windows of 6, dropout between 2 layers."""
  model = rnn.CharLM(rnn.CharLMConfig(vocab_size=V, embed_dim=8, hidden_dim=16,
                                      num_layers=2, dropout_rate=0.2, cell=cell))
  tokens = np.random.default_rng(0).integers(1, V, 200).astype(np.int32)
  data = lm.window_data(tokens, lm.train_offsets(200, 6), seq_len=6)
  state = _state(model, (jnp.ones((1, 6), jnp.int32),))
  return lm.make_loss_fn(model), lm.make_window_gather(6), state, data


def transformer_seq2seq():
  """A 1+1-layer transformer on 40 random (input, target) token pairs, dropout 0.1."""
  cfg = transformer.TransformerConfig(
      input_vocab_size=V, output_vocab_size=V, emb_dim=16, num_heads=2,
      num_encoder_layers=1, num_decoder_layers=1, mlp_dim=24, max_input_length=8,
      max_target_length=8, dropout_rate=0.1)
  model = transformer.Transformer(cfg)
  rng = np.random.default_rng(0)
  data = {'inputs': rng.integers(3, V, (40, 6)).astype(np.int32),
          'targets': rng.integers(3, V, (40, 5)).astype(np.int32)}
  state = _state(model, (jnp.ones((1, 6), jnp.int32), jnp.ones((1, 5), jnp.int32)))
  return seq2seq.make_loss_fn(model), None, state, data


def ddpm_denoiser():
  """A two-level U-Net + one-layer prompt encoder on 40 random 8x8 digits, T = 50."""
  prompts = ddpm.class_prompts('mnist', [str(i) for i in range(10)])
  vocab = tokenizers.WordTokenizer.from_prompts(prompts)
  tokens = vocab.encode_batch(prompts, 4)
  model = ddpm.Denoiser(
      unet.UNetConfig(widths=(8, 16), attention_resolutions=(4,), num_heads=2,
                      num_groups=4),
      text_encoder.TextEncoderConfig(vocab_size=vocab.size,
                                     max_length=4, emb_dim=16, num_heads=2, num_layers=1,
                                     mlp_dim=32))
  rng = np.random.default_rng(0)
  data = {'image': rng.integers(0, 256, (40, 8, 8, 1)).astype(np.uint8),
          'label': rng.integers(0, 10, 40).astype(np.int32)}
  state = _state(model, (jnp.zeros((1, 8, 8, 1)), jnp.zeros((1,), jnp.int32),
                         jnp.asarray(tokens[:1]), jnp.zeros((1,), bool)))
  loss_fn = ddpm.make_loss_fn(model, diffusion.make_schedule('linear', 50), tokens,
                              cond_drop_rate=0.2)
  return loss_fn, None, state, data
