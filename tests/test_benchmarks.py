"""Smoke test of the benchmark harness: --quick, JAX side only, one tiny model.

No timing assertions (CI machines are shared); only the report's shape. Needs no
torch: the JAX worker never imports it.
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import measure, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table(text):
  rows = [line for line in text.splitlines() if line.startswith('| ')]
  return [[c.strip() for c in row.strip('|').split('|')] for row in rows]


def test_quick_jax_report_has_expected_rows_and_columns(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run(
      [sys.executable, '-m', 'benchmarks.run', '--quick', '--frameworks=jax',
       '--models=lstm', f'--out={tmp_path}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = (tmp_path / 'report.md').read_text()
  assert text in proc.stdout  # The report is also printed.
  header, *rows = _table(text)
  assert tuple(header) == run.COLUMNS
  assert [(r[0], r[1], r[2]) for r in rows] == [('matmul', 'jax', 'jit'),
                                                ('lstm', 'jax', 'jit')]
  lstm = dict(zip(header, rows[1]))
  for column in ('examples/s', 'tokens/s', 'step ms', 'compile s', 'peak RSS MiB',
                 'GFLOP/step', 'MFU'):
    assert lstm[column] not in ('', '–'), (column, lstm)
  assert 'fp32 peak' in text

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
