"""The accelerator check: its --tiny mode on CPU, full-size rows from the :gpu configs,
MFU against the library's peak table, the bf16 target column and its FLOP count."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import accelerator_check
from experiments.ddpm.configs import default as ddpm_default
from experiments.lm.configs import default as lm_default
from experiments.seq2seq.configs import default as seq2seq_default
from research import families
from research.train import efficiency
from research.train import trainer

# Its session-scoped runs happen once: all its tests on one pytest-xdist worker
# (scripts/test.sh uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('test_accelerator_check')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table_rows(stdout: str) -> list[list[str]]:
  """The cells of the markdown table's data rows."""
  lines = [line for line in stdout.splitlines() if line.startswith('| ')]
  return [[c.strip() for c in line.strip('|').split('|')] for line in lines[1:]]


@pytest.fixture(scope='session')
def tiny_run() -> str:
  # Quick XLA:CPU compiles: the check compiles ten train steps, and speed is moot.
  env = dict(
    os.environ,
    JAX_PLATFORMS='cpu',
    XLA_FLAGS=('--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'),
  )
  out = subprocess.run(
    [sys.executable, '-m', 'benchmarks.accelerator_check', '--tiny'],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


def test_tiny_run_has_a_row_per_family_and_dtype(tiny_run):
  rows = _table_rows(tiny_run)
  header = [
    c.strip()
    for c in next(line for line in tiny_run.splitlines() if line.startswith('| family'))
    .strip('|')
    .split('|')
  ]
  cells = [dict(zip(header, r, strict=True)) for r in rows]
  assert [(c['family'], c['dtype']) for c in cells] == [
    (f, d) for f in accelerator_check.FAMILIES for d in accelerator_check.DTYPES
  ]
  for c in cells:
    assert float(c['examples/s']) > 0, c
    assert math.isfinite(float(c['loss'])), c
    assert float(c['compile s']) >= 0, c
    assert c['MFU'] == 'n/a', c  # No peak for a CPU in the library's table.
    target = accelerator_check.BF16_MFU_TARGETS[c['family']]
    want = f'target {target:.0%}: unmeasured' if c['dtype'] == 'bfloat16' else '-'
    assert c['bf16 target'] == want, c
  assert 'cpu x 1 (no peak in PEAK_TFLOPS: MFU n/a' in tiny_run


def test_full_sizes_refuse_to_run_on_cpu():
  with pytest.raises(SystemExit, match='no accelerator found'):
    accelerator_check.main(['--isolate=no'])


def test_full_size_rows_are_the_gpu_configs():
  cnn = accelerator_check.row_config('cnn', 'float32')
  assert cnn.batch_size == 1024 and cnn.model.dtype == 'float32'
  lm_gpu = lm_default.get_config('gpu')
  for cell in ('lstm', 'gru'):
    c = accelerator_check.row_config(cell, 'bfloat16')
    assert (c.batch_size, c.seq_len, c.model.hidden_dim) == (
      lm_gpu.batch_size,
      lm_gpu.seq_len,
      lm_gpu.model.hidden_dim,
    )
    assert (c.model.cell, c.model.dtype) == (cell, 'bfloat16')
  s2s_gpu = seq2seq_default.get_config('gpu')
  t = accelerator_check.row_config('transformer', 'float32')
  assert t.model.to_dict() == dict(s2s_gpu.model.to_dict(), dtype='float32')
  assert accelerator_check.row_config('ddpm', 'bfloat16').batch_size == (
    ddpm_default.get_config('gpu').batch_size
  )


class _FakeFamily:
  """Records the config it is built from; loads and builds nothing real."""

  configs: list = []

  def __init__(self, config):
    self.configs.append(config)

  def load_data(self):
    return trainer.TrainData({'x': np.zeros((8, 1), np.float32)}, 8)

  def build(self, data):
    return trainer.Model(module=None, init_params=None, loss_fn=None)


def test_full_size_rows_are_built_by_the_family_from_the_gpu_config(monkeypatch):
  monkeypatch.setitem(families.FAMILIES, 'lm', _FakeFamily)
  monkeypatch.setattr(_FakeFamily, 'configs', [])
  setup = accelerator_check.build('gru', 'bfloat16', tiny=False)
  (config,) = _FakeFamily.configs
  lm_gpu = lm_default.get_config('gpu')
  assert (config.model.cell, config.model.dtype) == ('gru', 'bfloat16')
  assert (setup.batch_size, setup.steps_per_dispatch) == (
    lm_gpu.batch_size,
    lm_gpu.steps_per_dispatch,
  )
  assert setup.microbatches == lm_gpu.microbatches
  assert setup.data.num_train == 8


@pytest.mark.parametrize(
  'family, dtype, mfu, cell',
  [
    ('transformer', 'bfloat16', 0.41, 'target 40%: met'),
    ('transformer', 'bfloat16', 0.399, 'target 40%: below'),
    ('cnn', 'bfloat16', 0.25, 'target 25%: met'),  # The target itself meets it.
    ('ddpm', 'bfloat16', 0.1, 'target 25%: below'),
    ('lstm', 'bfloat16', 0.15, 'target 15%: met'),
    ('gru', 'bfloat16', None, 'target 15%: unmeasured'),
    ('transformer', 'float32', 0.9, '-'),  # Targets are for bf16 only.
  ],
)
def test_target_cell(family, dtype, mfu, cell):
  assert accelerator_check.target_cell(family, dtype, mfu) == cell


def test_bf16_rows_run_first_and_the_table_keeps_family_order():
  order = accelerator_check.run_order(['cnn', 'gru'], ['float32', 'bfloat16'])
  assert order == [
    ('cnn', 'bfloat16'),
    ('gru', 'bfloat16'),
    ('cnn', 'float32'),
    ('gru', 'float32'),
  ]


def _row(dtype: str, examples_per_s: float) -> dict:
  return {
    'family': 'transformer',
    'dtype': dtype,
    'batch': 64,
    'steps': 300,
    'seconds': 300 * 64 / examples_per_s,
    'examples_per_s': examples_per_s,
    'flops_per_step': 98.9e9,  # Per device.
    'compile_s': 2.0,
    'peak_memory_bytes': 3 * 2**30,
    'loss': 2.3,
    'device_kind': 'NVIDIA H100 80GB HBM3',
    'num_devices': 1,
  }


def test_table_computes_mfu_against_the_library_peak_of_each_dtype():
  assert not hasattr(accelerator_check, 'PEAK_BF16_FLOPS')  # One peak table: the library's.
  table = accelerator_check.format_table([_row('float32', 64_000.0), _row('bfloat16', 256_000.0)])
  peak = efficiency.table_peak_tflops
  assert (peak('NVIDIA H100 80GB HBM3', 'float32'), peak('NVIDIA H100 80GB HBM3', 'bfloat16')) == (
    494.7,
    989.0,
  )
  assert 'float32 494.7, bfloat16 989 TFLOP/s' in table
  # 1,000 steps/s x 98.9 GFLOP = 98.9 TFLOP/s = 20.0% of fp32's 494.7 (TF32).
  assert (
    '| transformer | float32 | 64 | 300 | 64000 | 98.90 | 20.0% | - | 2.0 | 3.00 | 2.300 |'
  ) in table
  # 4,000 steps/s: 395.6 TFLOP/s = 40.0% of bf16's 989, the transformer's target.
  assert (
    '| transformer | bfloat16 | 64 | 300 | 256000 | 395.60 | 40.0% | target 40%: met | 2.0 '
    '| 3.00 | 2.300 |'
  ) in table
  failed = accelerator_check.format_table(
    [{'family': 'gru', 'dtype': 'float32', 'error': 'out of memory'}]
  )
  assert 'error: out of memory' in failed
