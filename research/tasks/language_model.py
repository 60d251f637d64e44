"""Next-token prediction: the loss function and the window gather of text data.

The whole token array stays on the device; an "example" is the start offset of a
window, and `make_window_gather` cuts (B, T + 1) windows from it inside the step.

Dimension key: B batch, T window length, V vocabulary size, N tokens in the text.
"""

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

from research.data import tokenizers
from research.generation import char_sampling


def window_data(tokens_N: np.ndarray, offsets_W: np.ndarray, seq_len: int) -> dict[str, np.ndarray]:
  """The arrays a window gather reads.

  Args:
    tokens_N: int ids of the text.
    offsets_W: start offset of every window (example) of the split.
    seq_len: T.

  Returns:
    {'tokens': int32 (N + T + 1,) ids padded with PAD_ID so every window fits,
     'real': float32 (N + T + 1,), 1 where `tokens` holds the text, 0 after it,
     'offsets': int32 (W,)}. Every array has a leading axis (no scalars), as the
    drivers' per-device gathers need.
  """
  tokens = np.asarray(tokens_N, np.int32)
  pad = np.full(seq_len + 1, tokenizers.PAD_ID, np.int32)
  return {
    'tokens': np.concatenate([tokens, pad]),
    'real': np.concatenate([np.ones(len(tokens), np.float32), np.zeros(seq_len + 1, np.float32)]),
    'offsets': np.asarray(offsets_W, np.int32),
  }


def make_window_gather(seq_len: int) -> Callable:
  """A `gather_fn(data, idx_B)` for the drivers of `research.train.parallel`.

  Example i of `data` (see `window_data`) is the window of T + 1 ids starting at
  `offsets[i]`; target positions at or past the end of the text get token mask 0.

  Returns:
    gather_fn(data, idx_B) -> {'inputs' int32 (B, T), 'targets' int32 (B, T),
    'token_mask' float32 (B, T)}.
  """

  def gather_fn(data, idx_B):
    start_B = jnp.take(data['offsets'], idx_B, axis=0)
    pos_BxT1 = start_B[:, None] + jnp.arange(seq_len + 1, dtype=start_B.dtype)
    window = jnp.take(data['tokens'], pos_BxT1, axis=0)
    return {
      'inputs': window[:, :-1],
      'targets': window[:, 1:],
      'token_mask': jnp.take(data['real'], pos_BxT1[:, 1:], axis=0),
    }

  return gather_fn


def train_offsets(num_tokens: int, seq_len: int) -> np.ndarray:
  """Every start offset whose window of T + 1 ids lies inside the text."""
  return np.arange(max(num_tokens - seq_len, 1), dtype=np.int32)


def eval_offsets(num_tokens: int, seq_len: int) -> np.ndarray:
  """Non-overlapping windows that together predict every id after the first once."""
  return np.arange(0, num_tokens - 1, seq_len, dtype=np.int32)


def make_loss_fn(model: nn.Module) -> Callable:
  """Mean next-token cross-entropy over real tokens of real windows.

  Args:
    model: called as `model.apply(vars, inputs, train=..., mask_BxT=...)`, returning
      ((B, T, V) float32 logits, carry), with a 'dropout' PRNG stream in training.

  Returns:
    loss_fn(params, batch, rng, train) -> (metrics, outputs) where the batch holds
    'inputs', 'targets' int32 (B, T), 'token_mask' float32 (B, T) and 'mask'
    float32 (B,); metrics are 'loss' (nats per token) and 'accuracy' (sum, count)
    pairs over tokens; outputs hold 'loss_sum' float32 (B,) per window.
  """

  def loss_fn(params, batch, rng, train):
    weight_BxT = batch['token_mask'] * batch['mask'][:, None]
    rngs = {'dropout': rng} if train else {}
    logits_BxTxV, _ = model.apply(
      {'params': params}, batch['inputs'], train=train, mask_BxT=weight_BxT, rngs=rngs
    )
    losses_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch['targets'])
    correct_BxT = jnp.argmax(logits_BxTxV, axis=-1) == batch['targets']
    count = weight_BxT.sum()
    loss_sum_B = (losses_BxT * weight_BxT).sum(axis=1)
    metrics = {
      'loss': (loss_sum_B.sum(), count),
      'accuracy': ((correct_BxT * weight_BxT).sum(), count),
    }
    return metrics, {'loss_sum': loss_sum_B}

  return loss_fn


def perplexity_and_bpc(loss_nats: float) -> dict[str, float]:
  """{'perplexity', 'bits_per_char'} of a mean cross-entropy in nats per token."""
  return {'perplexity': float(np.exp(loss_nats)), 'bits_per_char': float(loss_nats / np.log(2))}


def complete_prompts(
  model: nn.Module,
  params,
  vocab: tokenizers.CharTokenizer,
  prompts,
  rng,
  *,
  length: int,
  temperature: float,
  top_k: int,
) -> list[str]:
  """Each prompt followed by `length` sampled characters (one compiled scan).

  Args:
    model: a `research.models.rnn.CharLM`.
    params: its parameters.
    vocab: the corpus's character tokenizer (a sampled EOS_ID ends a completion).
    prompts: non-empty strings.
    rng: sampling key.
    length: characters to sample after each prompt.
    temperature: softmax temperature (<= 0: greedy).
    top_k: sample among the k likeliest characters (0: all).
  """
  if not prompts or not length:
    return []
  ids = [vocab.encode(p) for p in prompts]
  prompt = np.full((len(ids), max(len(i) for i in ids)), tokenizers.PAD_ID, np.int32)
  mask = np.zeros(prompt.shape, np.float32)
  for row, i in enumerate(ids):
    prompt[row, : len(i)], mask[row, : len(i)] = i, 1.0
  out = char_sampling.sample_chars(
    model, params, prompt, mask, rng, num_steps=length, temperature=temperature, top_k=top_k
  )
  return [p + vocab.decode(row) for p, row in zip(prompts, np.asarray(out), strict=True)]
