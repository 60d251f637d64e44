"""The prompt-conditioned DDPM task: guided sampling and the noise loss, with its EMA."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from research.data import tokenizers
from research.generation import diffusion
from research.models import text_encoder
from research.models import unet
from research.tasks import ddpm
from research.train import optimizers
from research.train import state as state_lib
from research.train import steps

SIZE = 8
PROMPTS = ddpm.class_prompts('mnist', [str(i) for i in range(10)])
VOCAB = tokenizers.WordTokenizer.from_prompts(PROMPTS)


def _tiny_model():
  return ddpm.Denoiser(
    unet.UNetConfig(widths=(8, 16), attention_resolutions=(4,), num_heads=2, num_groups=4),
    text_encoder.TextEncoderConfig(
      vocab_size=VOCAB.size, max_length=4, emb_dim=16, num_heads=2, num_layers=1, mlp_dim=32
    ),
  )


def _init(model, tokens):
  return model.init(
    jax.random.key(0),
    jnp.zeros((1, SIZE, SIZE, 1)),
    jnp.zeros((1,), jnp.int32),
    jnp.asarray(tokens[:1]),
    jnp.zeros((1,), bool),
    train=False,
  )['params']


def test_guidance_scale_0_samples_ignore_the_prompt():
  model = _tiny_model()
  tokens = VOCAB.encode_batch(PROMPTS, 4)
  params = _init(model, tokens)
  # A non-zero output layer, so the network's prediction matters.
  params = jax.tree.map(lambda p: p + 0.05, params)
  s = diffusion.make_schedule('linear', 20)
  run = lambda toks, scale: ddpm.sample(
    model,
    params,
    s,
    jnp.asarray(toks),
    jax.random.key(3),
    image_shape=(SIZE, SIZE, 1),
    num_steps=4,
    guidance_scale=scale,
  )
  same_key_other_prompts = run(tokens[[0, 0]], 0.0), run(tokens[[7, 3]], 0.0)
  chex.assert_trees_all_close(*same_key_other_prompts, atol=1e-6)
  assert not np.allclose(run(tokens[[0, 0]], 3.0), run(tokens[[7, 3]], 3.0))


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch():
  model = _tiny_model()
  tokens = VOCAB.encode_batch(PROMPTS, 4)
  sched = diffusion.make_schedule('linear', 100)
  loss_fn = ddpm.make_loss_fn(model, sched, ddpm.class_prompt_fn(tokens), cond_drop_rate=0.1)
  tx = optimizers.with_parameter_ema(
    optimizers.make_optimizer(optimizers.OptimizerConfig(learning_rate=3e-3, weight_decay=0.0)), 0.9
  )
  state = state_lib.init_train_state(
    lambda r: _init(model, tokens), model.apply, tx, jax.random.key(0)
  )
  rng = np.random.default_rng(0)
  batch = {
    'image': jnp.asarray(rng.integers(0, 256, (16, SIZE, SIZE, 1), np.uint8)),
    'label': jnp.asarray(rng.integers(0, 10, 16), jnp.int32),
    'mask': jnp.ones((16,)),
  }
  eval_loss = jax.jit(lambda p: loss_fn(p, batch, None, False)[0]['loss'])
  step = jax.jit(functools.partial(steps.train_step, loss_fn=loss_fn))
  before = eval_loss(state.params)
  for _ in range(30):
    state, _ = step(state, batch, jax.random.key(1))
  after = eval_loss(state.params)
  assert after[0] / after[1] < 0.8 * before[0] / before[1]
  # The EMA moved off the initial parameters and towards the trained ones.
  ema = optimizers.ema_params(state.opt_state)
  assert int(state.opt_state.count) == 30
  chex.assert_trees_all_equal_shapes(ema, state.params)
  assert eval_loss(ema)[0] < before[0]


def test_noise_loss_is_the_per_example_mean_squared_error():
  noise = jnp.zeros((2, 4, 4, 1))
  eps = noise.at[1].set(2.0).astype(jnp.bfloat16)
  losses = ddpm.noise_loss(eps, noise)
  chex.assert_shape(losses, (2,))
  assert losses.dtype == jnp.float32
  chex.assert_trees_all_close(losses, jnp.array([0.0, 4.0]))
