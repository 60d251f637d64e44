"""The accelerator check's --tiny mode on CPU, and its peak table and MFU arithmetic."""

import math
import os
import subprocess
import sys

import pytest

from benchmarks import accelerator_check

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
    assert c['MFU'] == 'n/a', c  # No known peak for a CPU.
  assert 'cpu x 1 (unknown peak)' in tiny_run


def test_full_sizes_refuse_to_run_on_cpu():
  with pytest.raises(SystemExit, match='no accelerator found'):
    accelerator_check.main(['--isolate=no'])


@pytest.mark.parametrize(
  'kind, peak',
  [
    ('NVIDIA H100 80GB HBM3', 989e12),
    ('NVIDIA H100 PCIe', 756e12),
    ('NVIDIA H200', 989e12),
    ('NVIDIA A100-SXM4-80GB', 312e12),
    ('TPU v4', 275e12),
    ('cpu', None),
    ('NVIDIA GeForce RTX 4090', None),
  ],
)
def test_peak_flops_by_device_kind(kind, peak):
  assert accelerator_check.peak_flops(kind) == peak


def test_table_computes_mfu_against_the_bf16_peak():
  row = {
    'family': 'cnn',
    'dtype': 'bfloat16',
    'batch': 64,
    'steps': 300,
    'examples_per_s': 64_000.0,
    'flops_per_step': 98.9e9,
    'compile_s': 2.0,
    'peak_memory_bytes': 3 * 2**30,
    'loss': 2.3,
    'device_kind': 'NVIDIA H100 80GB HBM3',
    'num_devices': 1,
  }
  table = accelerator_check.format_table([row])
  # 1,000 steps/s x 98.9 GFLOP = 98.9 TFLOP/s = 10% of 989.
  assert '| cnn | bfloat16 | 64 | 300 | 64000 | 98.90 | 10.0% | 2.0 | 3.00 | 2.300 |' in table
  failed = accelerator_check.format_table(
    [{'family': 'gru', 'dtype': 'float32', 'error': 'out of memory'}]
  )
  assert 'error: out of memory' in failed
