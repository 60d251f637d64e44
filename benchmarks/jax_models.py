"""The JAX side: our models, loss functions and `research.train.steps`, jitted.

Each builder returns a `JaxBench` whose `compile()` lowers and compiles the step
ahead of time (timing it and reading XLA's cost analysis) and whose `run(n)`
dispatches n steps back to back and blocks on the last. Never imports torch.
"""

import functools
import importlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import measure
from research.data import augment
from research.models import cnn, rnn, transformer, unet
from research.tasks import classification, language_model, seq2seq
from research.train import optimizers, parallel, state as state_lib, steps


def _cost_flops(compiled_or_lowered) -> float | None:
  cost = compiled_or_lowered.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per computation.
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


class JaxBench:
  """A compiled step and the arguments it is called with.

  `step(*args)` returns a tuple whose first element replaces args[0] when `carry`
  is set (train steps donate and return the state); otherwise args stay fixed.
  """

  def __init__(self, fn: Callable, args: tuple, *, carry: bool,
               flops_fn: Callable[[], float | None] | None = None):
    self._jit = jax.jit(fn, donate_argnums=0 if carry else ())
    self._args = args
    self._carry = carry
    self._flops_fn = flops_fn
    self._compiled = None

  def compile(self) -> dict[str, Any]:
    start = time.perf_counter()
    self._compiled = self._jit.lower(*self._args).compile()
    compile_s = time.perf_counter() - start
    # XLA counts a while loop's body once, whatever its trip count; models with a
    # scan count FLOPs on a fully unrolled twin instead (flops_fn).
    flops = self._flops_fn() if self._flops_fn else _cost_flops(self._compiled)
    params = getattr(self._args[0], 'params', None)
    num_params = None if params is None else state_lib.count_params(params)['total']
    return {'compile_s': compile_s, 'flops_per_step': flops, 'params': num_params}

  def run(self, num_steps: int) -> None:
    out = None
    for _ in range(num_steps):
      out = self._compiled(*self._args)
      if self._carry:
        self._args = (out[0],) + self._args[1:]
    jax.block_until_ready(out)


def _state(model, init_args, rng):
  tx = optimizers.make_optimizer(optimizers.OptimizerConfig(
      name='adam', learning_rate=measure.LEARNING_RATE,
      weight_decay=measure.WEIGHT_DECAY))
  init_params = lambda r: model.init({'params': r, 'dropout': r}, *init_args,
                                     train=False)['params']
  return state_lib.init_train_state(init_params, model.apply, tx, rng)


def microbatches(experiment: str, batch_size: int) -> int:
  """The micro-batches `experiments/<experiment>`'s default config gives this batch
  on this device."""
  config = importlib.import_module(f'experiments.{experiment}.configs.default')
  return parallel.resolve_microbatches(config.get_config().microbatches, batch_size,
                                       jax.devices()[0].platform)


def _train_bench(model, loss_fn, init_args, batch, experiment,
                 flops_fn=None) -> JaxBench:
  rng = jax.random.key(0)
  state = _state(model, init_args, rng)
  step = functools.partial(steps.train_step, loss_fn=loss_fn, microbatches=microbatches(
      experiment, batch['mask'].shape[0]))
  return JaxBench(step, (state, batch, rng), carry=True, flops_fn=flops_fn)


def _mask(b):
  return jnp.ones((b,), jnp.float32)


def _cnn(s, train: bool) -> JaxBench:
  model = cnn.CNN(cnn.CNNConfig(num_classes=s['classes'], hidden_dim=s['hidden']))
  # Normalisation only: the PyTorch peer gets no augmentation either.
  loss_fn = classification.make_loss_fn(model, augment.ImagePreprocessing(
      channels=s['channels']))
  b, hw, c = s['batch'], s['image'], s['channels']
  rs = np.random.default_rng(0)
  batch = {'image': jnp.asarray(rs.integers(0, 256, (b, hw, hw, c), np.uint8)),
           'label': jnp.asarray(rs.integers(0, s['classes'], (b,), np.int32)),
           'mask': _mask(b)}
  init_args = (jnp.zeros((1, hw, hw, c)),)
  if train:
    return _train_bench(model, loss_fn, init_args, batch, 'cnn')
  state = _state(model, init_args, jax.random.key(0))
  return JaxBench(functools.partial(steps.eval_step, loss_fn=loss_fn), (state, batch),
                  carry=False)


def _lm(s, cell: str) -> JaxBench:
  def make(unroll):
    return rnn.CharLM(rnn.CharLMConfig(vocab_size=s['vocab'], embed_dim=s['embed'],
                                       hidden_dim=s['hidden'], cell=cell,
                                       unroll=unroll))
  b, t = s['batch'], s['seq']
  rs = np.random.default_rng(0)
  tokens = rs.integers(0, s['vocab'], (b, t + 1), np.int32)
  batch = {'inputs': jnp.asarray(tokens[:, :-1]), 'targets': jnp.asarray(tokens[:, 1:]),
           'token_mask': jnp.ones((b, t), jnp.float32), 'mask': _mask(b)}
  init_args = (jnp.zeros((1, t), jnp.int32),)
  model = make(1)

  def unrolled_flops():
    twin = make(t)
    twin_bench = _train_bench(twin, language_model.make_loss_fn(twin), init_args, batch,
                              'lm')
    return _cost_flops(twin_bench._jit.lower(*twin_bench._args))
  return _train_bench(model, language_model.make_loss_fn(model), init_args, batch, 'lm',
                      flops_fn=unrolled_flops)


def _transformer(s) -> JaxBench:
  cfg = transformer.TransformerConfig(
      input_vocab_size=s['vocab'], output_vocab_size=s['vocab'], emb_dim=s['d'],
      num_heads=s['heads'], num_encoder_layers=s['enc_layers'],
      num_decoder_layers=s['dec_layers'], mlp_dim=s['ff'], max_input_length=s['src_len'],
      max_target_length=s['tgt_len'], dropout_rate=0.0)
  model = transformer.Transformer(cfg)
  b = s['batch']
  rs = np.random.default_rng(0)
  # Ids >= 3 avoid pad/BOS/EOS: full-length sequences, no padding.
  batch = {'inputs': jnp.asarray(rs.integers(3, s['vocab'], (b, s['src_len']), np.int32)),
           'targets': jnp.asarray(rs.integers(3, s['vocab'], (b, s['tgt_len']), np.int32)),
           'mask': _mask(b)}
  init_args = (jnp.ones((1, s['src_len']), jnp.int32),
               jnp.ones((1, s['tgt_len']), jnp.int32))
  return _train_bench(model, seq2seq.make_loss_fn(model), init_args, batch, 'seq2seq')


def ddpm_loss_fn(model: unet.UNet, num_timesteps: int) -> Callable:
  """Epsilon-prediction MSE of DDPM (linear betas 1e-4..0.02), unconditional.

  batch: 'image' float32 (B, H, W, C) in [-1, 1], 'mask' float32 (B,).
  """
  betas = np.linspace(1e-4, 0.02, num_timesteps, dtype=np.float64)
  alpha_bar = jnp.asarray(np.cumprod(1.0 - betas), jnp.float32)

  def loss_fn(params, batch, rng, train):
    x0 = batch['image']
    t_rng, n_rng, d_rng = jax.random.split(rng, 3)
    t_B = jax.random.randint(t_rng, (x0.shape[0],), 0, num_timesteps)
    eps = jax.random.normal(n_rng, x0.shape, jnp.float32)
    a = alpha_bar[t_B][:, None, None, None]
    x_t = jnp.sqrt(a) * x0 + jnp.sqrt(1.0 - a) * eps
    pred = model.apply({'params': params}, x_t, t_B, None, train=train,
                       rngs={'dropout': d_rng})
    per_example = ((pred - eps) ** 2).mean(axis=(1, 2, 3)) * batch['mask']
    return {'loss': (per_example.sum(), batch['mask'].sum())}, {}
  return loss_fn


def _unet(s) -> JaxBench:
  model = unet.UNet(unet.UNetConfig(
      out_channels=s['channels'], widths=tuple(s['widths']),
      num_res_blocks=s['num_res_blocks'],
      attention_resolutions=tuple(s['attention_resolutions']), num_heads=s['heads'],
      num_groups=s['groups']))
  b, hw, c = s['batch'], s['image'], s['channels']
  rs = np.random.default_rng(0)
  batch = {'image': jnp.asarray(rs.uniform(-1, 1, (b, hw, hw, c)).astype(np.float32)),
           'mask': _mask(b)}
  init_args = (jnp.zeros((1, hw, hw, c)), jnp.zeros((1,), jnp.int32), None)
  return _train_bench(model, ddpm_loss_fn(model, s['timesteps']), init_args, batch,
                      'ddpm')


def _matmul(s) -> JaxBench:
  n = s['n']
  rs = np.random.default_rng(0)
  a, b = (jnp.asarray(rs.standard_normal((n, n), np.float32)) for _ in range(2))
  return JaxBench(lambda x, y: (jnp.dot(x, y),), (a, b), carry=False)


_BUILDERS = {
    'matmul': _matmul,
    'cnn_train': lambda s: _cnn(s, train=True),
    'cnn_eval': lambda s: _cnn(s, train=False),
    'lstm': lambda s: _lm(s, 'lstm'),
    'gru': lambda s: _lm(s, 'gru'),
    'transformer': _transformer,
    'unet': _unet,
}


def build(model: str, quick: bool) -> JaxBench:
  """The JAX benchmark of `model` at its full (or --quick) size."""
  return _BUILDERS[model](measure.spec(model, quick))
