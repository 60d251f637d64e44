"""Each family learns a tiny but learnable task to a quality only a working model
reaches, built from the models, tasks and `train_step` directly.

Shape tests pass for a decoder that ignores its encoder, a denoiser that ignores its
prompt or a language model that never sees its input; these do not. Each trains for
a few seconds on one core from fixed PRNG keys.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.data import seq2seq_tasks
from research.data import text as text_lib
from research.data import tokenizers
from research.generation import decoding
from research.generation import diffusion
from research.models import rnn
from research.models import text_encoder
from research.models import transformer
from research.models import unet
from research.tasks import ddpm
from research.tasks import language_model as lm
from research.tasks import seq2seq
from research.train import optimizers
from research.train import steps

FAST_COMPILE = {'xla_backend_optimization_level': 0}


def _train(model, example_args, loss_fn, data, *, num_steps, batch_size, lr, gather=None, seed=0):
  """Adam (no decay) on random batches of `data`; returns the trained params.

  `data` holds per-example arrays, or the arrays `gather(data, idx_B)` cuts
  batches from.
  """
  tx = optimizers.make_optimizer(
    optimizers.OptimizerConfig(name='adam', learning_rate=lr, weight_decay=0.0)
  )

  def init(rng):
    params = model.init({'params': rng}, *example_args, train=False)['params']
    return steps.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

  # Run once, so compiled without LLVM's optimisations: ready 4x sooner (U-Net).
  state = jax.jit(init, compiler_options=FAST_COMPILE)(jax.random.key(seed))
  step = functools.partial(steps.train_step, loss_fn=loss_fn)

  @jax.jit
  def train_on(state, data, idx_B, rng):
    if gather is None:
      batch = jax.tree.map(lambda v: v[idx_B], data)
    else:
      batch = gather(data, idx_B)
    batch['mask'] = jnp.ones(idx_B.shape, jnp.float32)
    return step(state, batch, rng)[0]

  size = len(data['offsets'] if gather else next(iter(data.values())))
  order = np.random.default_rng(seed)
  rng = jax.random.key(seed + 1)
  data = jax.tree.map(jnp.asarray, data)
  for _ in range(num_steps):
    state = train_on(state, data, jnp.asarray(order.integers(0, size, batch_size)), rng)
  return state.params


# Seq2seq: reversing 3-5 letter strings over 6 letters.


def _reversed_with_eos(inputs_NxS, target_length):
  """The expected targets, made here rather than by the task generator."""
  targets = np.full((len(inputs_NxS), target_length), tokenizers.PAD_ID, np.int32)
  for row, src in zip(targets, inputs_NxS, strict=True):
    letters = src[src != tokenizers.PAD_ID][::-1]
    row[: len(letters) + 1] = np.append(letters, tokenizers.EOS_ID)
  return targets


def test_transformer_learns_to_reverse_strings():
  task = seq2seq_tasks.TaskConfig(
    name='reverse', num_train=3000, num_test=300, min_length=3, max_length=5, num_letters=6
  )
  train, test = seq2seq_tasks.make_task(task)
  max_in, max_out = task.lengths()
  model = transformer.Transformer(
    transformer.TransformerConfig(
      input_vocab_size=train.vocab.size,
      output_vocab_size=train.vocab.size,
      emb_dim=32,
      num_heads=2,
      num_encoder_layers=1,
      num_decoder_layers=1,
      mlp_dim=64,
      max_input_length=max_in,
      max_target_length=max_out,
      dropout_rate=0.0,
    )
  )
  example = (jnp.ones((1, max_in), jnp.int32), jnp.ones((1, max_out), jnp.int32))
  params = _train(
    model,
    example,
    seq2seq.make_loss_fn(model),
    train.arrays(),
    num_steps=400,
    batch_size=64,
    lr=3e-3,
  )
  generate = jax.jit(decoding.decode_transformer, static_argnums=0, static_argnames='beam_size')
  decoded = generate(model, params, test.inputs, beam_size=0)
  expected = _reversed_with_eos(test.inputs, max_out)
  assert not set(map(bytes, test.inputs)) & set(map(bytes, train.inputs))  # Held out.
  exact = (np.asarray(decoded) == expected).all(-1).mean()
  assert exact >= 0.9, f'greedy exact match {exact:.1%} on held-out strings'


# DDPM: 8x8 images whose bright half is named by the prompt.

SIDES = ('top', 'bottom', 'left', 'right')


def _half_images(labels, rng):
  """uint8 (N, 8, 8, 1): the labelled half bright (brightness varies), the rest dark."""
  images = np.zeros((len(labels), 8, 8, 1), np.float32)
  halves = {0: np.s_[:4, :], 1: np.s_[4:, :], 2: np.s_[:, :4], 3: np.s_[:, 4:]}
  for n, k in enumerate(labels):
    images[(n,) + halves[int(k)]] = 1.0
  images = 40 + 170 * images * rng.uniform(0.8, 1.0, (len(labels), 1, 1, 1))
  return np.clip(np.round(images), 0, 255).astype(np.uint8)


def test_denoiser_uses_its_prompt():
  prompts = ddpm.class_prompts('halves', SIDES)
  vocab = tokenizers.WordTokenizer.from_prompts(prompts)
  tokens = vocab.encode_batch(prompts, 6)
  model = ddpm.Denoiser(
    unet.UNetConfig(widths=(8, 16), attention_resolutions=(4,), num_heads=2, num_groups=4),
    text_encoder.TextEncoderConfig(
      vocab_size=vocab.size, max_length=6, emb_dim=16, num_heads=2, num_layers=1, mlp_dim=32
    ),
  )
  # Cosine: its last steps leave little of the image, so only the prompt tells
  # which half was bright (the linear one keeps 60% of its amplitude at T = 100).
  sched = diffusion.make_schedule('cosine', 100)
  loss_fn = ddpm.make_loss_fn(model, sched, ddpm.class_prompt_fn(tokens), cond_drop_rate=0.1)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, 2048).astype(np.int32)
  example = (
    jnp.zeros((1, 8, 8, 1)),
    jnp.zeros((1,), jnp.int32),
    jnp.asarray(tokens[:1]),
    jnp.zeros((1,), bool),
  )
  params = _train(
    model,
    example,
    loss_fn,
    {'image': _half_images(labels, rng), 'label': labels},
    num_steps=200,
    batch_size=32,
    lr=3e-3,
  )
  held_out = rng.integers(0, 4, 512).astype(np.int32)
  images = _half_images(held_out, rng)
  eval_loss = jax.jit(
    lambda label: loss_fn(
      params, {'image': images, 'label': label, 'mask': np.ones(512, np.float32)}, None, False
    )[0]['loss'],
    compiler_options=FAST_COMPILE,
  )  # Same t and noise.
  true = float(np.divide(*eval_loss(held_out)))
  # Prompts shuffled so that none is right: each image gets another side's.
  wrong = float(np.divide(*eval_loss((held_out + 1) % 4)))
  assert true < 0.75 * wrong, (
    f'noise loss {true:.4f} with the true prompts, {wrong:.4f} with wrong ones'
  )


# Character LM: sentences of a small grammar, three independent uniform choices each.

GRAMMAR = (
  ('the cat', 'a dog', 'the bird', 'my fish'),
  ('sees', 'likes', 'hides', 'eats'),
  ('the cake', 'a ball', 'the seeds', 'my hat'),
)


def _grammar_text(num_sentences, rng):
  """The text and its entropy in bits per character.

  Every sentence carries exactly log2(4 ** 3) = 6 bits (the choices are uniform and
  can be read back from the text), so no model can score below 6 bits per sentence
  on average: a model that beats it has seen the characters it predicts.
  """
  sentences = [
    ' '.join(words[rng.integers(len(words))] for words in GRAMMAR) + '. '
    for _ in range(num_sentences)
  ]
  text = ''.join(sentences)
  return text, 6 * num_sentences / len(text)


@pytest.mark.parametrize('cell', ['lstm', 'gru'])
def test_char_lm_beats_the_bigram_baseline(cell):
  rng = np.random.default_rng(0)
  train_text, _ = _grammar_text(800, rng)
  valid_text, entropy = _grammar_text(200, rng)
  vocab = tokenizers.CharTokenizer.from_text(train_text)
  train_ids, valid_ids = vocab.encode(train_text), vocab.encode(valid_text)
  seq_len = 32
  model = rnn.CharLM(
    rnn.CharLMConfig(vocab_size=vocab.size, embed_dim=16, hidden_dim=64, cell=cell)
  )
  loss_fn = lm.make_loss_fn(model)
  gather = lm.make_window_gather(seq_len)
  train_data = lm.window_data(train_ids, lm.train_offsets(len(train_ids), seq_len), seq_len)
  params = _train(
    model,
    (jnp.ones((1, seq_len), jnp.int32),),
    loss_fn,
    train_data,
    num_steps=300,
    batch_size=32,
    lr=1e-2,
    gather=gather,
  )
  offsets = lm.eval_offsets(len(valid_ids), seq_len)
  valid = gather(
    jax.tree.map(jnp.asarray, lm.window_data(valid_ids, offsets, seq_len)), jnp.arange(len(offsets))
  )
  valid['mask'] = jnp.ones(len(offsets), jnp.float32)
  loss_sum, count = loss_fn(params, valid, None, False)[0]['loss']
  bpc = text_lib.bits_per_char(float(loss_sum / count))
  bigram = text_lib.bigram_bits_per_char(train_ids, valid_ids, vocab.size)
  assert entropy - 0.02 < bpc < 0.75 * bigram, (
    f'{bpc:.3f} bits/char; bigram {bigram:.3f}, entropy {entropy:.3f}'
  )
