"""Smoke test of the benchmark harness: --quick, JAX side only, one tiny model.

No timing assertions (CI machines are shared); only the report's shape. Needs no
torch: the JAX worker never imports it.
"""

import json
import os
import re
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import pytest

from benchmarks import im2col_conv
from benchmarks import jax_models
from benchmarks import levers
from benchmarks import measure
from benchmarks import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table(text):
  rows = [line for line in text.splitlines() if line.startswith('| ')]
  return [[c.strip() for c in row.strip('|').split('|')] for row in rows]


def test_quick_jax_report_has_expected_rows_and_columns(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run(
    [
      sys.executable,
      '-m',
      'benchmarks.run',
      '--quick',
      '--frameworks=jax',
      '--models=lstm',
      '--levers=scan_grad_autodiff,onednn_dots',
      f'--out={tmp_path}',
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = (tmp_path / 'report.md').read_text()
  assert text in proc.stdout  # The report is also printed.
  header, *rows = _table(text.split('## Levers')[0])
  assert tuple(header) == run.COLUMNS
  assert [(r[0], r[1], r[2]) for r in rows] == [('matmul', 'jax', 'jit'), ('lstm', 'jax', 'jit')]
  lstm = dict(zip(header, rows[1], strict=True))
  for column in (
    'examples/s',
    'tokens/s',
    'step ms',
    'compile s',
    'peak RSS MiB',
    'GFLOP/step',
    'MFU',
  ):
    assert lstm[column] not in ('', '–'), (column, lstm)
  assert 'fp32 peak' in text
  # The levers: their own table, not rows of the one above; the XLA-flag lever's worker
  # compiled with its flags and ran.
  levers_text = text.split('## Levers')[1]
  header, *rows = _table(levers_text)
  assert tuple(header) == run.LEVER_COLUMNS
  assert [(r[0], r[1], r[2]) for r in rows] == [
    ('lstm', 'scan_grad_autodiff', 'on'),
    ('lstm', 'onednn_dots', 'off'),
  ]
  by_mode = {
    r['mode']: r
    for r in json.loads((tmp_path / 'results.json').read_text())['results']
    if r['model'] == 'lstm'
  }
  for row in rows:
    row = dict(zip(header, row, strict=True))
    assert row['step ms, as run'] == lstm['step ms']
    ratio = by_mode[row['lever']]['step_s']['median'] / by_mode['jit']['step_s']['median']
    assert row['flipped / as run'] == f'**{ratio:.2f}**', row

  results = json.loads((tmp_path / 'results.json').read_text())['results']
  step = results[1]['step_s']
  assert step['n'] == 2 and step['min'] <= step['median'] <= step['max']
  # A scan's FLOPs are counted unrolled: about 6 x params per token (+ softmax).
  s = measure.spec('lstm', quick=True)
  per_token = results[1]['flops_per_step'] / (s['batch'] * s['seq'])
  assert 6 * results[1]['params'] <= per_token <= 10 * results[1]['params']


def test_bad_model_name_is_rejected():
  with pytest.raises(SystemExit):
    run._parse(['--models=resnet'])


def test_summary_scaling_swaps_min_and_max():
  s = measure.Summary.of([0.5, 0.25, 1.0]).scaled(64)
  assert (s.median, s.min, s.max) == (128.0, 64.0, 256.0)


def test_main_job_table_ratios_say_which_program_is_faster():
  from benchmarks import main_job  # pylint: disable=g-import-not-at-top

  row = lambda program, train, whole, acc: dict(
    program=program,
    round=1,
    cache='warm',
    test_accuracy=acc,
    train_seconds=train,
    examples_per_second=20_000 / train,
    program_seconds=whole,
    peak_rss_mib=1000.0,
  )
  runs = [
    row(main_job.OURS, 100.0, 120.0, 0.97),
    row(main_job.TORCH, 80.0, 90.0, 0.96),
    row(main_job.OURS, 110.0, 130.0, 0.975),
    row(main_job.TORCH, 80.0, 96.0, 0.965),
  ]
  text = main_job.table(runs)
  assert text.count('\n| ours (JAX) |') == 2 and text.count('\n| PyTorch seed program |') == 2
  # Medians: ours 105 s / 125 s, PyTorch 80 s / 93 s: ours is slower (< 1).
  assert 'training 0.76x, whole program 0.74x' in text
  assert 'test accuracy 97.25% vs 96.25%' in text


def test_torch_seed_program_trains_on_the_main_jobs_split(offline_data_dir):
  pytest.importorskip('torch')
  import numpy as np  # pylint: disable=g-import-not-at-top

  from benchmarks import torch_seed_program  # pylint: disable=g-import-not-at-top
  from research.data import image_classification  # pylint: disable=g-import-not-at-top

  split = torch_seed_program.load_split(48)
  for name, size in (('train', 4000), ('test', 1000)):
    ours = image_classification.load_image_classification(
      'mnist_offline', name, image_size=48, data_dir=offline_data_dir
    )
    images, labels = (t.numpy() for t in split[name])
    assert images.shape == (size, 1, 48, 48) and images.dtype == np.uint8
    # The same digits (tfds stores them in its own order; resizing rounds apart).
    key = lambda x, y: np.sort(x.reshape(len(x), -1).astype(float).mean(1) + 1000 * y)
    np.testing.assert_allclose(key(images, labels), key(ours.image, ours.label), atol=0.5)


def test_lm_flops_count_every_input_step_projected():
  """MFU compares both frameworks to the model's FLOPs: the LSTM's count projects every
  input step (as PyTorch does), not our projected-embedding-table shortcut."""
  s = measure.spec('lstm', quick=True)
  counted = jax_models.build('lstm', quick=True).compile()['flops_per_step']
  twin, data = jax_models.family_model('lstm', s, s['batch'], unroll=s['seq'])
  bench = jax_models._train_bench(twin, jax_models._batch(twin, data, s['batch']), 'lm')
  shortcut = jax_models._cost_flops(bench._jit.lower(*bench._args))
  # At least the forward projection's (B*T, E) x (E, 4H) matmul more.
  assert counted - shortcut >= 2 * s['batch'] * s['seq'] * s['embed'] * 4 * s['hidden']


# Levers that change the traced program (the XLA-flag levers change only how XLA
# compiles it; `test_quick_report_times_levers_beside_the_default_row` runs one).
_TRACED_LEVERS = [
  (model, lever.name) for lever in levers.LEVERS if not lever.xla_flags for model in lever.models
]


def _lowered_text(model: str) -> str:
  """The StableHLO of `model`'s quick benchmark step; the batch is raised to 16 where
  the automatic micro-batches need it (2 on CPU from 16 examples), and the U-Net has
  one level (tracing it dominates)."""
  s = dict(measure.spec(model, quick=True))
  if model in ('transformer', 'unet'):
    s['batch'] = 16
  if model == 'unet':
    s.update(widths=(8,), image=8)
  bench = jax_models._BUILDERS[model](s)
  return bench._jit.lower(*bench._args).as_text()


@pytest.fixture(scope='module')
def default_programs():
  return {}


@pytest.mark.parametrize('model,lever_name', _TRACED_LEVERS)
def test_each_lever_changes_the_step_it_is_timed_on(model, lever_name, default_programs):
  """A lever row that ran the default step would report a lever that was never
  pulled: flipped, the lowered program differs."""
  if model not in default_programs:
    default_programs[model] = _lowered_text(model)
  with levers.flipped(levers.BY_NAME[lever_name], jax_models):
    assert _lowered_text(model) != default_programs[model]


def test_a_flipped_lever_is_undone_on_leaving():
  default = _lowered_text('cnn_eval')
  for name in ('conv_parts=1', 'rgb_unpadded'):  # A config lever, a patch lever.
    with levers.flipped(levers.BY_NAME[name], jax_models):
      pass
    assert _lowered_text('cnn_eval') == default, name


def test_lever_xla_flags_are_appended_to_the_workers_environment():
  onednn = levers.BY_NAME['onednn_dots']
  env = levers.with_xla_flags({'XLA_FLAGS': '--a=1', 'HOME': '/h'}, onednn)
  assert env['XLA_FLAGS'] == '--a=1 ' + onednn.xla_flags and env['HOME'] == '/h'
  assert levers.with_xla_flags({}, onednn)['XLA_FLAGS'] == onednn.xla_flags
  assert 'XLA_FLAGS' not in levers.with_xla_flags({}, levers.BY_NAME['im2col'])
  assert levers.with_xla_flags({}, None) == {}


def test_unknown_lever_is_rejected():
  with pytest.raises(SystemExit):
    run._parse(['--levers=im2col,fast_mode'])
  assert run._parse(['--quick']).levers == []
  assert run._parse([]).levers == list(levers.BY_NAME)


class _Stage:
  """A stand-in for jax.stages.Lowered (with `compile`) or Compiled (without)."""

  def __init__(self, cost, compiled=None):
    self._cost = cost
    if compiled is not None:
      self.compile = lambda: compiled

  def cost_analysis(self):
    return self._cost


def test_flops_come_from_the_compiled_program_where_the_lowered_one_has_none():
  compiled = _Stage({'flops': 7.0})
  assert jax_models._cost_flops(_Stage({'flops': 3.0}, compiled)) == 3.0
  assert jax_models._cost_flops(_Stage([{'flops': 3.0}], compiled)) == 3.0
  assert jax_models._cost_flops(_Stage({}, compiled)) == 7.0  # jax 0.11 on CUDA.
  assert jax_models._cost_flops(_Stage(None, _Stage(None))) is None


# The im2col lowering of the 3x3 convolution (`benchmarks/im2col_conv.py`, the `im2col`
# lever): the kernel gradient takes three paths: XLA's own below 8,192 rows (B*H*W),
# chunked im2col matmuls above, one unchunked matmul when the batch does not divide
# into 4.
@pytest.mark.parametrize('shape', [(16, 6, 7, 3), (8, 32, 33, 5), (5, 40, 41, 2)])
def test_im2col_conv3x3_values_and_gradients_match_lax(shape):
  lax_conv = lambda x, k: jax.lax.conv_general_dilated(
    x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )
  x = jax.random.normal(jax.random.key(0), shape)
  k = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], 4))
  loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
  expected = jax.grad(loss(lax_conv), (0, 1))(x, k)
  for conv in (im2col_conv.conv3x3_im2col, im2col_conv.conv3x3_im2col_on_cpu):
    chex.assert_trees_all_close(conv(x, k), lax_conv(x, k), atol=1e-5)
    actual = jax.jit(jax.grad(loss(conv), (0, 1)))(x, k)
    chex.assert_trees_all_close(actual, expected, atol=2e-3, rtol=1e-4)


def count(text: str, op: str) -> int:
  """Occurrences of the StableHLO op `op` in module text."""
  return len(re.findall(rf'stablehlo\.{op}\b', text))


def test_gated_im2col_is_matmuls_on_cpu_only():
  loss = lambda x, k: jnp.square(im2col_conv.conv3x3_im2col_on_cpu(x, k)).sum()
  grad = jax.jit(jax.grad(loss, (0, 1)))
  x, k = jnp.zeros((8, 48, 48, 32)), jnp.zeros((3, 3, 32, 64))
  text = {
    p: jax.export.export(grad, platforms=[p])(x, k).mlir_module() for p in ('cpu', 'cuda', 'tpu')
  }
  # cpu: the input gradient stays a convolution; the forward is one matmul and the
  # kernel gradient one batched matmul over 4 chunks of the batch.
  assert count(text['cpu'], 'convolution') == 1
  assert re.search(r'stablehlo\.dot_general .* -> tensor<18432x64xf32>', text['cpu'])  # fwd
  assert re.search(r'stablehlo\.dot_general .* -> tensor<4x288x64xf32>', text['cpu'])  # dk
  for platform in ('cuda', 'tpu'):
    assert count(text[platform], 'convolution') == 3
    assert count(text[platform], 'dot_general') == 0
  # Compiled for CPU, the platform case is folded away: the input gradient is the
  # only convolution, the forward and the kernel gradient im2col dots.
  hlo = grad.lower(jnp.zeros((8, 32, 32, 3)), jnp.zeros((3, 3, 3, 4))).compile().as_text()
  assert 'conditional(' not in hlo
  assert hlo.count('convolution(') == 1 and hlo.count(' dot(') == 2
