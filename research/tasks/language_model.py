"""Next-token prediction: the loss function and the window gather of text data.

The whole token array stays on the device; an "example" is the start offset of a
window, and `make_window_gather` cuts (B, T + 1) windows from it inside the step.

Dimension key: B batch, T window length, V vocabulary size, N tokens in the text.
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from research.data import tokenizers
from research.errors import UserInputError
from research.generation import char_sampling


def window_data(
  tokens_N: np.ndarray, offsets_W: np.ndarray, seq_len: int, reset_W: np.ndarray | None = None
) -> dict[str, np.ndarray]:
  """The arrays a window gather reads.

  Args:
    tokens_N: int ids of the text.
    offsets_W: start offset of every window (example) of the split.
    seq_len: T.
    reset_W: float32, 1 for a window that starts a stream (its carried state is
      reset; `stream_windows`); None for independent windows.

  Returns:
    {'tokens': int32 (N + T + 1,) ids padded with PAD_ID so every window fits,
     'real': float32 (N + T + 1,), 1 where `tokens` holds the text, 0 after it,
     'offsets': int32 (W,), and 'reset' float32 (W,) if given}. Every array has a
    leading axis (no scalars), as the drivers' per-device gathers need.
  """
  tokens = np.asarray(tokens_N, np.int32)
  pad = np.full(seq_len + 1, tokenizers.PAD_ID, np.int32)
  data = {
    'tokens': np.concatenate([tokens, pad]),
    'real': np.concatenate([np.ones(len(tokens), np.float32), np.zeros(seq_len + 1, np.float32)]),
    'offsets': np.asarray(offsets_W, np.int32),
  }
  if reset_W is not None:
    data['reset'] = np.asarray(reset_W, np.float32)
  return data


def stream_windows(
  num_tokens: int, num_streams: int, seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
  """Windows of B parallel streams for truncated backpropagation through time.

  The text is cut into B contiguous streams of L = N // B tokens (the last N mod B
  tokens are dropped, as in Zaremba et al.'s reader); stream b's window k predicts
  tokens b L + k T + 1 .. b L + (k + 1) T, for k < K = (L - 1) // T. Example b K + k
  is that window (`batch_plans.IndexSource` 'streams' order).

  Returns:
    offsets int32 (B K,) and reset float32 (B K,), 1 at every stream's first window.

  Raises:
    UserInputError: if a stream is too short for one window.
  """
  per_stream = num_tokens // num_streams
  k = (per_stream - 1) // seq_len
  if k < 1:
    raise UserInputError(
      f'{num_tokens:,} tokens in {num_streams} streams leave {per_stream:,} per stream, '
      f'too few for a window of seq_len {seq_len}'
    )
  offsets = np.arange(num_streams)[:, None] * per_stream + np.arange(k)[None, :] * seq_len
  reset = np.zeros((num_streams, k), np.float32)
  reset[:, 0] = 1.0
  return offsets.reshape(-1).astype(np.int32), reset.reshape(-1)


def make_window_gather(seq_len: int) -> Callable:
  """A `gather_fn(data, idx_B)` for the drivers of `research.train.parallel`.

  Example i of `data` (see `window_data`) is the window of T + 1 ids starting at
  `offsets[i]`; target positions at or past the end of the text get token mask 0.

  Returns:
    gather_fn(data, idx_B) -> {'inputs' int32 (B, T), 'targets' int32 (B, T),
    'token_mask' float32 (B, T), and 'reset' float32 (B,) where `data` has it}.
  """

  def gather_fn(data, idx_B):
    start_B = jnp.take(data['offsets'], idx_B, axis=0)
    pos_BxT1 = start_B[:, None] + jnp.arange(seq_len + 1, dtype=start_B.dtype)
    window = jnp.take(data['tokens'], pos_BxT1, axis=0)
    batch = {
      'inputs': window[:, :-1],
      'targets': window[:, 1:],
      'token_mask': jnp.take(data['real'], pos_BxT1[:, 1:], axis=0),
    }
    if 'reset' in data:
      batch['reset'] = jnp.take(data['reset'], idx_B, axis=0)
    return batch

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
    float32 (B,), and optionally 'carry' (the model's initial per-layer carries,
    leading axis B; `research.train.steps.CarriedTrainState`); metrics are 'loss'
    (nats per token) and 'accuracy' (sum, count) pairs over tokens; outputs hold
    'loss_sum' float32 (B,) per window and, with a 'carry' in, the carry out.
  """

  def loss_fn(params, batch, rng, train):
    weight_BxT = batch['token_mask'] * batch['mask'][:, None]
    rngs = {'dropout': rng} if train else {}
    logits_BxTxV, carry = model.apply(
      {'params': params},
      batch['inputs'],
      train=train,
      mask_BxT=weight_BxT,
      carry=batch.get('carry'),
      rngs=rngs,
    )
    losses_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch['targets'])
    correct_BxT = jnp.argmax(logits_BxTxV, axis=-1) == batch['targets']
    count = weight_BxT.sum()
    loss_sum_B = (losses_BxT * weight_BxT).sum(axis=1)
    metrics = {
      'loss': (loss_sum_B.sum(), count),
      'accuracy': ((correct_BxT * weight_BxT).sum(), count),
    }
    outputs = {'loss_sum': loss_sum_B}
    if 'carry' in batch:
      outputs['carry'] = carry
    return metrics, outputs

  return loss_fn


def stream_eval_arrays(
  tokens_N: np.ndarray, num_streams: int, seq_len: int
) -> dict[str, np.ndarray]:
  """A text as B streams read in windows, for `make_stream_evaluator`.

  Stream b is tokens b L .. (b + 1) L - 1, L = N // B; all its L - 1 next-token
  predictions are scored, in K = ceil((L - 1) / T) windows (the last padded, mask 0).
  With B = 1 that is every prediction of the text, as Zaremba et al. evaluate.

  Returns:
    {'inputs', 'targets': int32 (K, B, T), 'mask': float32 (K, B, T)}.

  Raises:
    UserInputError: if a stream would hold fewer than 2 tokens.
  """
  per_stream = len(tokens_N) // num_streams
  if num_streams < 1 or per_stream < 2:
    raise UserInputError(
      f'{len(tokens_N):,} evaluation tokens cannot fill {num_streams} streams of 2 or more'
    )
  k = -(-(per_stream - 1) // seq_len)
  padded = np.full((num_streams, k * seq_len + 1), tokenizers.PAD_ID, np.int32)
  padded[:, :per_stream] = np.asarray(tokens_N[: num_streams * per_stream]).reshape(num_streams, -1)
  real = np.zeros(padded.shape, np.float32)
  real[:, 1:per_stream] = 1.0
  windows = lambda a: a.reshape(num_streams, k, seq_len).transpose(1, 0, 2)
  return {
    'inputs': windows(padded[:, :-1]),
    'targets': windows(padded[:, 1:]),
    'mask': windows(real[:, 1:]),
  }


def make_stream_evaluator(model: nn.Module, init_carry: Callable[[int], Any]) -> Callable:
  """A compiled evaluation that carries the model's state through whole streams.

  Args:
    model: called as `model.apply(vars, inputs, train=False, mask_BxT=..., carry=...)`
      returning ((B, T, V) logits, carry), e.g. `research.models.CharLM`.
    init_carry: batch size B -> the zero carry the streams start from.

  Returns:
    evaluate(params, arrays) -> float32 (K, 3): per window the summed loss (nats),
    correct predictions and scored tokens, for `stream_eval_arrays`' arrays.
  """

  def evaluate(params, arrays):
    def window(carry, xs):
      inputs_BxT, targets_BxT, mask_BxT = xs
      logits_BxTxV, carry = model.apply(
        {'params': params}, inputs_BxT, train=False, mask_BxT=mask_BxT, carry=carry
      )
      losses_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
      correct_BxT = jnp.argmax(logits_BxTxV, axis=-1) == targets_BxT
      sums = [(losses_BxT * mask_BxT).sum(), (correct_BxT * mask_BxT).sum(), mask_BxT.sum()]
      return carry, jnp.stack(sums)

    carry = init_carry(arrays['inputs'].shape[1])
    _, sums_Kx3 = jax.lax.scan(window, carry, (arrays['inputs'], arrays['targets'], arrays['mask']))
    return sums_Kx3

  return jax.jit(evaluate)


def perplexity_and_bpc(loss_nats: float) -> dict[str, float]:
  """{'perplexity', 'bits_per_char'} of a mean cross-entropy in nats per token."""
  return {'perplexity': float(np.exp(loss_nats)), 'bits_per_char': float(loss_nats / np.log(2))}


def complete_prompts(
  model: nn.Module,
  params,
  vocab: tokenizers.CharTokenizer | tokenizers.VocabularyTokenizer,
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
    vocab: the corpus's tokenizer: characters (a sampled EOS_ID ends a completion) or
      a word vocabulary (words joined by spaces, EOS_ID a line break).
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
  sep = ' ' if isinstance(vocab, tokenizers.VocabularyTokenizer) else ''  # Words or chars.
  return [p + sep + vocab.decode(row) for p, row in zip(prompts, np.asarray(out), strict=True)]
