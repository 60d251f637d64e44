"""Sampling text from a character-level language model (`research.models.rnn.CharLM`).

Dimension key: B batch, P prompt length, V vocabulary size, N sampled steps.

The prompt runs through the model once (a masked scan, so right-padded prompts of
different lengths share one batch); each sampled character then feeds back as a
one-step window with the carried state, all inside one compiled `lax.scan`.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from research.models import rnn


def sample_logits(
  logits_BxV: jax.Array, rng: jax.Array, temperature: float, top_k: int
) -> jax.Array:
  """Draws one id per row of float32 logits (B, V).

  Args:
    logits_BxV: float logits over the vocabulary.
    rng: sampling key (unused when greedy).
    temperature: softmax temperature; <= 0 takes the argmax (greedy).
    top_k: sample among the k likeliest ids only (0: all).

  Returns:
    int32 (B,) ids.
  """
  if temperature <= 0:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  logits_BxV = logits_BxV / temperature
  if 0 < top_k < logits_BxV.shape[-1]:
    kth_Bx1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
    logits_BxV = jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)
  return jax.random.categorical(rng, logits_BxV, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=('model', 'num_steps', 'temperature', 'top_k'))
def sample_chars(
  model: rnn.CharLM,
  params: Any,
  prompt_BxP: jax.Array,
  prompt_mask_BxP: jax.Array,
  rng: jax.Array,
  *,
  num_steps: int,
  temperature: float = 1.0,
  top_k: int = 0,
) -> jax.Array:
  """Samples `num_steps` characters after each prompt, as one compiled scan.

  Args:
    model: the language model.
    params: its parameters.
    prompt_BxP: int32 prompt ids, right-padded.
    prompt_mask_BxP: 1 for prompt characters, 0 for padding; every row needs at
      least one prompt character.
    rng: key; step n samples with `fold_in(rng, n)`.
    num_steps: N, characters to sample.
    temperature: softmax temperature (<= 0: greedy).
    top_k: sample among the k likeliest characters only (0: all).

  Returns:
    int32 (B, N) sampled ids.
  """
  apply = lambda tokens, mask, carry: model.apply(
    {'params': params}, tokens, train=False, mask_BxT=mask, carry=carry
  )
  logits_BxPxV, carry = apply(prompt_BxP, prompt_mask_BxP, None)
  last_B = jnp.sum(prompt_mask_BxP > 0, axis=1).astype(jnp.int32) - 1
  logits_BxV = jnp.take_along_axis(logits_BxPxV, last_B[:, None, None], axis=1)[:, 0]

  def step(state, n):
    logits_BxV, carry = state
    token_B = sample_logits(logits_BxV, jax.random.fold_in(rng, n), temperature, top_k)
    logits_Bx1xV, carry = apply(token_B[:, None], None, carry)
    return (logits_Bx1xV[:, 0], carry), token_B

  _, tokens_NxB = jax.lax.scan(step, (logits_BxV, carry), jnp.arange(num_steps))
  return tokens_NxB.T
