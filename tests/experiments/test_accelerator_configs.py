"""The ':gpu' / ':tpu' configs: their sizes, the untouched CPU default, and their train
steps lowered for cuda and tpu with `jax.export`.

Each family is built by itself from its accelerator config on a few random examples
of the real data's shapes; the train state and batch are abstract
(`jax.ShapeDtypeStruct`s from `jax.eval_shape`), so nothing is initialised or run.
"""

import functools
import re

from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import pytest

from experiments import accelerator_sizes
from experiments.cnn.configs import default as cnn_default
from experiments.ddpm.configs import default as ddpm_default
from experiments.lm.configs import default as lm_default
from experiments.seq2seq.configs import default as seq2seq_default
from research import families
from research import platform_policy
from research.data import image_classification
from research.data import seq2seq_tasks
from research.data import text as text_lib
from research.data import tokenizers
from research.train import optimizers
from research.train import settings
from research.train import state as state_lib
from research.train import steps

CONFIGS = {
  'cnn': cnn_default,
  'lm': lm_default,
  'seq2seq': seq2seq_default,
  'ddpm': ddpm_default,
}
# Global train batches that fill a modern accelerator, per family.
MIN_BATCH = {'cnn': 1024, 'lm': 256, 'seq2seq': 256, 'ddpm': 256}
# cuDNN's fused attention (forward and backward) in a StableHLO module.
CUDNN_CALL = re.compile(r'custom_call @__cudnn\$fmha')
# Export refuses custom calls without a compatibility guarantee unless told.
CUDNN_TARGETS = (
  '__cudnn$fmhaScaleBiasSoftmax',
  '__cudnn$fmhaScaleBiasSoftmaxBackward',
  '__cudnn$fmhaSoftmax',
  '__cudnn$fmhaSoftmaxBackward',
)


# ---------------------------------------------------------------------------
# The configs.


@pytest.mark.parametrize('name', CONFIGS)
def test_cpu_default_is_unchanged(name):
  module = CONFIGS[name]
  assert module.get_config().to_dict() == module.get_config(None).to_dict()
  c = module.get_config()
  # The CPU values before the accelerator configs existed.
  before = {
    'cnn': (64, 1, 'device', 0.0, 'float32', 1e-3),
    'lm': (64, 1, 'device', 540.0, 'float32', 8e-3),
    'seq2seq': (128, 8, 'device', 0.0, 'float32', 1e-3),
    'ddpm': (64, 1, 'device', 0.0, 'float32', 1e-3),
  }[name]
  now = (
    c.batch_size,
    c.steps_per_dispatch,
    c.input_pipeline,
    c.max_train_seconds,
    c.model.dtype,
    c.optimizer.learning_rate,
  )
  assert now == before
  if name == 'seq2seq':  # The accelerator-only model fields stay out of the CPU config.
    assert 'attention' not in c.model and 'remat' not in c.model


@pytest.mark.parametrize('platform', accelerator_sizes.PLATFORMS)
@pytest.mark.parametrize('name', CONFIGS)
def test_accelerator_config_is_sized_for_one_host(name, platform):
  cpu, c = CONFIGS[name].get_config(), CONFIGS[name].get_config(platform)
  assert c.model.dtype == 'bfloat16'
  assert c.batch_size >= MIN_BATCH[name]
  assert c.steps_per_dispatch > 1
  assert c.input_pipeline == 'auto'
  assert c.max_train_seconds == 0.0
  assert c.optimizer.learning_rate >= cpu.optimizer.learning_rate
  if name == 'lm':
    assert c.seq_len >= 256 and c.model.hidden_dim > cpu.model.hidden_dim
  if name == 'seq2seq':
    assert settings.train_settings(c).batch_size == c.batch_size  # Valid settings.
    assert c.model.emb_dim > cpu.model.emb_dim and c.model.attention == 'auto'


@pytest.mark.parametrize('name', CONFIGS)
def test_unknown_argument_names_the_allowed_ones(name):
  with pytest.raises(ValueError, match=r"unknown config argument 'gpux': use one of gpu, tpu"):
    CONFIGS[name].get_config('gpux')


def test_config_file_argument_reaches_get_config():
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', flag_values=fv, lock_config=True)
  fv(['prog', '--config=experiments/cnn/configs/default.py:gpu'])
  assert fv.config.model.dtype == 'bfloat16' and fv.config.batch_size == 1024


# ---------------------------------------------------------------------------
# Their train steps, lowered for the accelerators.


def _images(n, size, channels):
  rng = np.random.default_rng(0)
  return image_classification.ImageDataset(
    rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
    rng.integers(0, 10, n).astype(np.int32),
    num_classes=10,
    class_names=tuple(map(str, range(10))),
    name='random',
    version='0',
  )


def _family(name: str, config: ml_collections.ConfigDict):
  """The family built from `config` on a few random examples of the real shapes."""
  if name == 'cnn':
    data = (_images(16, 48, 1), _images(8, 48, 1))
    return families.CNNClassifier(config, datasets=data)
  if name == 'ddpm':
    return families.PromptDDPM(config, datasets=(_images(16, 28, 1), _images(8, 28, 1)))
  rng = np.random.default_rng(0)
  if name == 'lm':
    vocab = tokenizers.CharTokenizer('abcdefgh')
    tokens = lambda n: rng.integers(1, vocab.size, n).astype(np.int32)
    corpus = text_lib.TextCorpus(tokens(2000), tokens(600), vocab, name='random', version='0')
    return families.CharLanguageModel(config, corpus=corpus)
  vocab = tokenizers.CharTokenizer('abcdefghijklmnopqrstuvwxyz')
  first = tokenizers.NUM_SPECIAL
  # The reverse task's shapes: 16 input letters, 16 + EOS targets.
  pairs = lambda n: seq2seq_tasks.Seq2SeqDataset(
    'random',
    rng.integers(first, vocab.size, (n, 16)).astype(np.int32),
    rng.integers(first, vocab.size, (n, 17)).astype(np.int32),
    vocab,
  )
  return families.Seq2Seq(config, splits=(pairs(16), pairs(8)))


_STEPS: dict[tuple[str, str], tuple] = {}


def _train_step(name: str, platform: str, **model):
  """(jitted train step, abstract (state, batch, rng)) of `name`'s `platform` config.

  Equal configs share one jitted step, so their trace is reused per platform.
  """
  config = CONFIGS[name].get_config(platform)
  config.model.update(model)
  key = (name, config.to_json_best_effort(sort_keys=True))
  if key not in _STEPS:
    _STEPS[key] = _build_step(name, config)
  return _STEPS[key]


def _build_step(name: str, config: ml_collections.ConfigDict):
  family = _family(name, config)
  data = family.load_data()
  built = family.build(data)
  tx = built.optimizer(optimizers.make_optimizer(optimizers.OptimizerConfig()))
  state = state_lib.abstract_train_state(built.init_params, built.module.apply, tx)
  b = config.batch_size
  arrays = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in data.train.items()}
  idx = jax.ShapeDtypeStruct((b,), jnp.int32)
  batch = jax.eval_shape(built.gather_fn, arrays, idx)
  batch['mask'] = jax.ShapeDtypeStruct((b,), jnp.float32)
  step = jax.jit(functools.partial(steps.train_step, loss_fn=built.loss_fn))
  return step, (state, batch, jax.random.key(0))


def _lowered(name: str, platform: str, export_for: str, **model) -> str:
  step, args = _train_step(name, platform, **model)
  disabled = [jax.export.DisabledSafetyCheck.custom_call(t) for t in CUDNN_TARGETS]
  exported = jax.export.export(step, platforms=[export_for], disabled_checks=disabled)
  return exported(*args).mlir_module()


@pytest.fixture
def cudnn(monkeypatch):
  """Lets this CPU-only process trace cuDNN's attention as a CUDA install would: the
  version check is the only host-side obstacle to lowering it for cuda."""
  from jax._src.cudnn import fused_attention_stablehlo  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(fused_attention_stablehlo, 'check_cudnn_version', lambda: 90800)
  assert platform_policy.cudnn_attention_available()


@pytest.mark.parametrize('platform', accelerator_sizes.PLATFORMS)
@pytest.mark.parametrize('name', CONFIGS)
def test_accelerator_train_step_lowers_in_bfloat16(name, platform, cudnn):
  export_for = {'gpu': 'cuda', 'tpu': 'tpu'}[platform]
  text = _lowered(name, platform, export_for)
  # The matmuls and convolutions compute in bfloat16.
  assert re.search(r'stablehlo\.(dot_general|convolution).*bf16', text), name
  # cuDNN's attention is the transformers' (the seq2seq model, the DDPM's prompt
  # encoder), on cuda only.
  transformer = name in ('seq2seq', 'ddpm')
  assert bool(CUDNN_CALL.search(text)) == (transformer and export_for == 'cuda')


def test_float32_or_xla_attention_lowers_without_cudnn(cudnn):
  assert not CUDNN_CALL.search(_lowered('seq2seq', 'gpu', 'cuda', dtype='float32'))
  assert not CUDNN_CALL.search(_lowered('seq2seq', 'gpu', 'cuda', attention='xla'))
  # The gpu config's program, lowered for cpu or tpu, keeps XLA's attention.
  for other in ('cpu', 'tpu'):
    assert not CUDNN_CALL.search(_lowered('seq2seq', 'gpu', other))


def test_cudnn_attention_is_forward_and_backward(cudnn):
  calls = set(re.findall(r'custom_call @(__cudnn\$\w+)', _lowered('seq2seq', 'gpu', 'cuda')))
  assert calls == {'__cudnn$fmhaScaleBiasSoftmax', '__cudnn$fmhaScaleBiasSoftmaxBackward'}
