"""The JAX side: our families' models and loss functions and `research.train.steps`,
jitted. Every model is built by its family (`research.families`) on random data.

Each builder returns a `JaxBench` whose `compile()` lowers and compiles the step
ahead of time (timing it and reading XLA's cost analysis) and whose `run(n)`
dispatches n steps back to back and blocks on the last. Never imports torch.
"""

import functools
import importlib
import time
from typing import Any, Callable
from unittest import mock

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks import measure
from research import families
from research import platform_policy
from research.data import image_classification
from research.data import seq2seq_tasks
from research.data import text as text_lib
from research.data import tokenizers
from research.models import rnn
from research.train import efficiency
from research.train import optimizers
from research.train import state as state_lib
from research.train import steps
from research.train import trainer

# XLA's FLOP count of a lowered or compiled program (compiled where only that has one).
_cost_flops = efficiency.xla_flops


class JaxBench:
  """A compiled step and the arguments it is called with.

  `step(*args)` returns a tuple whose first element replaces args[0] when `carry`
  is set (train steps donate and return the state); otherwise args stay fixed.
  """

  def __init__(
    self,
    fn: Callable,
    args: tuple,
    *,
    carry: bool,
    flops_fn: Callable[[], float | None] | None = None,
  ):
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


def _config(experiment: str, **overrides) -> ml_collections.ConfigDict:
  """`experiments/<experiment>`'s default config with `overrides` (nested dicts for
  sections); locked, so a mistyped override fails."""
  config = importlib.import_module(f'experiments.{experiment}.configs.default')
  config = config.get_config()
  config.lock()
  config.update(overrides)
  return config


def _images(s, n: int) -> image_classification.ImageDataset:
  rs = np.random.default_rng(0)
  hw, c, classes = s['image'], s['channels'], s.get('classes', 10)
  return image_classification.ImageDataset(
    rs.integers(0, 256, (n, hw, hw, c), np.uint8),
    rs.integers(0, classes, n).astype(np.int32),
    num_classes=classes,
    class_names=tuple(map(str, range(classes))),
    name='random',
    version='0',
  )


def _cnn_family(s, n: int, dtype: str = 'float32') -> families.CNNClassifier:
  images = _images(s, n)
  # Normalisation only: the PyTorch peer gets no augmentation either.
  config = _config(
    'cnn',
    image_size=s['image'],
    image_channels=s['channels'],
    model=dict(hidden_dim=s['hidden'], dtype=dtype),
    augment=dict(max_rotation_deg=0.0, brightness=0.0, contrast=0.0),
  )
  return families.CNNClassifier(config, datasets=(images, images))


def _lm_family(
  s, n: int, dtype: str = 'float32', *, cell: str, unroll: int = 1
) -> families.CharLanguageModel:
  """The CharLM on n random windows (the validation text is the same text)."""
  tokens = np.random.default_rng(0).integers(1, s['vocab'], n + s['seq']).astype(np.int32)
  vocab = tokenizers.CharTokenizer(
    ''.join(chr(0x100 + i) for i in range(s['vocab'] - tokenizers.NUM_SPECIAL))
  )
  config = _config(
    'lm',
    seq_len=s['seq'],
    model=dict(
      cell=cell,
      embed_dim=s['embed'],
      hidden_dim=s['hidden'],
      num_layers=1,
      dropout_rate=0.0,
      unroll=unroll,
      dtype=dtype,
    ),
  )
  return families.CharLanguageModel(
    config, corpus=text_lib.TextCorpus(tokens, tokens, vocab, name='random', version='0')
  )


def _transformer_family(
  s, n: int, dtype: str = 'float32', dropout_rate: float = 0.0
) -> families.Seq2Seq:
  rs = np.random.default_rng(0)
  # Character ids only (no PAD/BOS/EOS/UNK): full-length sequences, no padding.
  first = tokenizers.NUM_SPECIAL
  vocab = tokenizers.CharTokenizer(''.join(chr(0x100 + i) for i in range(s['vocab'] - first)))
  pairs = seq2seq_tasks.Seq2SeqDataset(
    'random',
    rs.integers(first, s['vocab'], (n, s['src_len'])).astype(np.int32),
    rs.integers(first, s['vocab'], (n, s['tgt_len'])).astype(np.int32),
    vocab,
  )
  config = _config(
    'seq2seq',
    model=dict(
      emb_dim=s['d'],
      num_heads=s['heads'],
      num_encoder_layers=s['enc_layers'],
      num_decoder_layers=s['dec_layers'],
      mlp_dim=s['ff'],
      dropout_rate=dropout_rate,
      share_embeddings=False,
      pre_norm=True,
      positional='sinusoidal',
      dtype=dtype,
    ),
  )
  return families.Seq2Seq(config, splits=(pairs, pairs))


def _ddpm_family(s, n: int, dtype: str = 'float32') -> families.PromptDDPM:
  """The DDPM experiment's prompt-conditioned denoiser (U-Net of `s`, the default
  prompt encoder) with its EMA, on n random 'digits'."""
  images = _images(s, n)
  config = _config(
    'ddpm',
    image_size=s['image'],
    image_channels=s['channels'],
    num_diffusion_steps=s['timesteps'],
    model=dict(
      widths=tuple(s['widths']),
      num_res_blocks=s['num_res_blocks'],
      attention_resolutions=tuple(s['attention_resolutions']),
      num_heads=s['heads'],
      num_groups=s['groups'],
      dtype=dtype,
    ),
  )
  config.sample_steps = min(config.sample_steps, s['timesteps'])  # Sampling is unused.
  return families.PromptDDPM(config, datasets=(images, images))


FAMILIES = {
  'cnn': _cnn_family,
  'lstm': functools.partial(_lm_family, cell='lstm'),
  'gru': functools.partial(_lm_family, cell='gru'),
  'transformer': _transformer_family,
  'ddpm': _ddpm_family,
}


def family_model(
  name: str, s: dict, num_examples: int, dtype: str = 'float32', **kw
) -> tuple[trainer.Model, trainer.TrainData]:
  """The family `name` ('cnn', 'lstm', 'gru', 'transformer', 'ddpm') at sizes `s`
  (`measure.spec`'s keys), built by the family on `num_examples` random examples.

  Returns:
    (model, data): what `research.families` builds and loads for the trainer.
  """
  family = FAMILIES[name](s, num_examples, dtype, **kw)
  data = family.load_data()
  return family.build(data), data


def _state(model: trainer.Model, rng):
  tx = optimizers.make_optimizer(
    optimizers.OptimizerConfig(
      name='adam', learning_rate=measure.LEARNING_RATE, weight_decay=measure.WEIGHT_DECAY
    )
  )
  return model.init_state(tx, rng)


def microbatches(experiment: str, batch_size: int, model: trainer.Model) -> int:
  """The step micro-batches `experiments/<experiment>`'s default config gives this
  batch of `model` (its family's) on this device, as the trainer resolves them."""
  requested = model.microbatches(_config(experiment).microbatches)
  return platform_policy.batch_parts(requested, batch_size, jax.devices()[0].platform)


def _batch(model: trainer.Model, data: trainer.TrainData, b: int) -> dict[str, jax.Array]:
  """The first b training examples, gathered as the trainer does, all real."""
  arrays = jax.tree.map(jnp.asarray, data.train)
  return dict(model.gather_fn(arrays, jnp.arange(b)), mask=jnp.ones((b,), jnp.float32))


def _train_bench(model, batch, experiment, flops_fn=None) -> JaxBench:
  rng = jax.random.key(0)
  step = functools.partial(
    steps.train_step,
    loss_fn=model.loss_fn,
    microbatches=microbatches(experiment, batch['mask'].shape[0], model),
  )
  return JaxBench(step, (_state(model, rng), batch, rng), carry=True, flops_fn=flops_fn)


def _cnn(s, train: bool) -> JaxBench:
  model, data = family_model('cnn', s, s['batch'])
  batch = _batch(model, data, s['batch'])
  if train:
    return _train_bench(model, batch, 'cnn')
  return JaxBench(
    functools.partial(steps.eval_step, loss_fn=model.loss_fn),
    (_state(model, jax.random.key(0)), batch),
    carry=False,
  )


def _lm(s, cell: str) -> JaxBench:
  model, data = family_model(cell, s, s['batch'])
  batch = _batch(model, data, s['batch'])

  def unrolled_flops():
    # The model's FLOPs, counted on a fully unrolled twin (XLA counts a loop body
    # once) that projects every input step as the PyTorch peer does: the first
    # layer's projected-table shortcut (`rnn.EmbeddedIds`) does ~13 GFLOP less of
    # the same arithmetic at full size, and MFU compares both frameworks to one count.
    with mock.patch.object(rnn, '_project_table_rows', rnn._project_gathered_rows):
      twin, _ = family_model(cell, s, s['batch'], unroll=s['seq'])
      twin_bench = _train_bench(twin, batch, 'lm')
      return _cost_flops(twin_bench._jit.lower(*twin_bench._args))

  return _train_bench(model, batch, 'lm', flops_fn=unrolled_flops)


def _transformer(s) -> JaxBench:
  model, data = family_model('transformer', s, s['batch'])
  return _train_bench(model, _batch(model, data, s['batch']), 'seq2seq')


def _unet(s) -> JaxBench:
  model, data = family_model('ddpm', s, s['batch'])
  return _train_bench(model, _batch(model, data, s['batch']), 'ddpm')


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
