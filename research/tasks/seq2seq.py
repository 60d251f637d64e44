"""Loss and decoding evaluation of sequence-to-sequence models (see
`research.train.steps` for the loss-function contract).

Batches hold 'inputs' int32 (B, S) and 'targets' int32 (B, T) (tokens, EOS_ID, then
PAD_ID) and 'mask' float32 (B,); token ids follow `research.data.tokenizers`.
Dimension key as in `research.models.transformer`.
"""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research.data import tokenizers
from research.generation import decoding
from research.models import transformer


def shift_right(targets_BxT: jax.Array, bos_id: int) -> jax.Array:
  """Decoder inputs: BOS, then the targets without their last position."""
  return jnp.pad(targets_BxT, ((0, 0), (1, 0)), constant_values=bos_id)[:, :-1]


def _token_metrics(logits_BxTxV, targets_BxT, mask_B, pad_id, label_smoothing):
  vocab = logits_BxTxV.shape[-1]
  soft = optax.smooth_labels(jax.nn.one_hot(targets_BxT, vocab), label_smoothing)
  losses_BxT = optax.softmax_cross_entropy(logits_BxTxV, soft)
  weights_BxT = (targets_BxT != pad_id) * mask_B[:, None]
  prediction_BxT = jnp.argmax(logits_BxTxV, -1).astype(jnp.int32)
  correct_BxT = (prediction_BxT == targets_BxT) | (targets_BxT == pad_id)
  tokens = weights_BxT.sum()
  metrics = {
    'loss': ((losses_BxT * weights_BxT).sum(), tokens),
    'token_accuracy': (((prediction_BxT == targets_BxT) * weights_BxT).sum(), tokens),
    # All tokens right under teacher forcing <=> greedy decoding is exact.
    'sequence_accuracy': ((correct_BxT.all(-1) * mask_B).sum(), mask_B.sum()),
  }
  return metrics, prediction_BxT


def make_loss_fn(model: transformer.Transformer, *, label_smoothing: float = 0.0) -> Callable:
  """Teacher-forced cross-entropy per target token.

  Returns:
    loss_fn(params, batch, rng, train) -> (metrics, outputs): metrics 'loss' (per
    real token, label-smoothed), 'token_accuracy' and 'sequence_accuracy' (all
    tokens right); outputs 'prediction' int32 (B, T), teacher-forced argmax.
  """

  def loss_fn(params, batch, rng, train):
    # Randomized position encodings draw from a stream of their own, folded from
    # `rng` so that the dropout stream stays the same with any encoding.
    rngs = {'dropout': rng, 'positions': jax.random.fold_in(rng, 1)} if train else {}
    logits = model.apply(
      {'params': params},
      batch['inputs'],
      shift_right(batch['targets'], tokenizers.BOS_ID),
      train=train,
      rngs=rngs,
    )
    metrics, prediction = _token_metrics(
      logits, batch['targets'], batch['mask'], tokenizers.PAD_ID, label_smoothing
    )
    return metrics, {'prediction': prediction}

  return loss_fn


def make_decode_eval_fn(
  model: transformer.Transformer, *, beam_size: int, alpha: float = 0.0
) -> Callable:
  """An evaluation-only loss function that also decodes (greedy and beam search).

  Returns:
    fn(params, batch, rng, train) -> (metrics, outputs): the teacher-forced
    metrics of `make_loss_fn` plus 'greedy_exact_accuracy' and
    'beam_exact_accuracy' (whole decoded sequence equals the target); outputs
    'greedy' and 'beam' int32 (B, T).
  """
  loss_fn = make_loss_fn(model)
  gen = functools.partial(decoding.decode_transformer, model, alpha=alpha)

  def decode_eval_fn(params, batch, rng, train):
    del rng, train  # Always deterministic.
    metrics, _ = loss_fn(params, batch, None, False)
    targets, mask = batch['targets'], batch['mask']
    outputs = {
      'greedy': gen(params, batch['inputs'], beam_size=0),
      'beam': gen(params, batch['inputs'], beam_size=beam_size),
    }
    for name, seq in outputs.items():
      exact = (seq[:, : targets.shape[1]] == targets).all(-1)
      metrics[f'{name}_exact_accuracy'] = ((exact * mask).sum(), mask.sum())
    return metrics, outputs

  return decode_eval_fn


DECODERS = ('greedy', 'beam')


def exact_by_length(
  inputs_NxS, targets_NxT, decoded_NxT, pad_id: int = tokenizers.PAD_ID
) -> dict[int, tuple[int, int]]:
  """Exact decoded sequences per input length, on the host.

  Args:
    inputs_NxS: int (N, S) sources, `pad_id`-padded; an example's length is its
      number of non-padding tokens.
    targets_NxT: int (N, T) targets, EOS, then padding.
    decoded_NxT: int (N, >= T) decoded tokens; exact means the first T equal the
      target (as 'greedy_exact_accuracy' of `make_decode_eval_fn`).

  Returns:
    {length: (exact sequences, examples)} for the lengths present, ascending.
  """
  targets_NxT = np.asarray(targets_NxT)
  lengths_N = (np.asarray(inputs_NxS) != pad_id).sum(-1)
  exact_N = (np.asarray(decoded_NxT)[:, : targets_NxT.shape[1]] == targets_NxT).all(-1)
  return {
    int(n): (int(exact_N[lengths_N == n].sum()), int((lengths_N == n).sum()))
    for n in np.unique(lengths_N)
  }


def length_summary(
  inputs_NxS,
  targets_NxT,
  decoded: dict[str, np.ndarray],
  pad_id: int = tokenizers.PAD_ID,
  split: str = 'test',
) -> tuple[dict, str]:
  """Per-length exact match of greedy and beam decoding.

  Args:
    inputs_NxS, targets_NxT: as in `exact_by_length`.
    decoded: 'greedy' and 'beam' int (N, >= T) decoded tokens.
    split: the metrics' prefix, the split the examples come from.

  Returns:
    (metrics, table): metrics '<split>_exact_accuracy_by_length' ({str(length):
    {'examples', 'greedy_exact_accuracy', 'beam_exact_accuracy'}}) and
    '<split>_{greedy,beam}_exact_accuracy_min_over_lengths'; the same as a text table.
  """
  counts = {d: exact_by_length(inputs_NxS, targets_NxT, decoded[d], pad_id) for d in DECODERS}
  by_length: dict[str, dict[str, float]] = {
    str(n): {'examples': total} | {f'{d}_exact_accuracy': counts[d][n][0] / total for d in DECODERS}
    for n, (_, total) in counts['greedy'].items()
  }
  minima = {
    f'{split}_{d}_exact_accuracy_min_over_lengths': min(
      v[f'{d}_exact_accuracy'] for v in by_length.values()
    )
    for d in DECODERS
  }
  metrics: dict[str, Any] = {f'{split}_exact_accuracy_by_length': by_length, **minima}
  rows = ['  length  examples   greedy     beam'] + [
    f'  {n:>6}  {v["examples"]:>8}  {100 * v["greedy_exact_accuracy"]:6.2f}%  '
    f'{100 * v["beam_exact_accuracy"]:6.2f}%'
    for n, v in by_length.items()
  ]
  rows.append(
    f'  {"min":>6}  {"":>8}  '
    + '  '.join(
      f'{100 * minima[f"{split}_{d}_exact_accuracy_min_over_lengths"]:6.2f}%' for d in DECODERS
    )
  )
  return metrics, '\n'.join(rows)


def examples_text(
  vocab: tokenizers.Tokenizer, inputs_NxS, targets_NxT, greedy_NxT, beam_NxT, num: int
) -> str:
  """The first `num` decoded examples next to their references, marked ok/WRONG.

  Args:
    vocab: decodes the int32 (N, S) `inputs_NxS` and the int32 (N, T) others.
  """
  lines = []
  for i in range(min(num, len(inputs_NxS))):
    ref, greedy, beam = (vocab.decode(a[i]) for a in (targets_NxT, greedy_NxT, beam_NxT))
    mark = lambda s, ref=ref: 'ok' if s == ref else 'WRONG'
    lines.append(
      f'  input     {vocab.decode(inputs_NxS[i])!r}\n'
      f'  reference {ref!r}\n'
      f'  greedy    {greedy!r} ({mark(greedy)})\n'
      f'  beam      {beam!r} ({mark(beam)})'
    )
  return '\n'.join(lines)
