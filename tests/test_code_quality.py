"""Lint, format and type checks: `ruff check` and `ruff format --check` over the
library, the experiments, the benchmarks and the tests (`research experiments
benchmarks tests`) are clean, and so is `mypy research` (the library only).

The tools come with the `test` extra (setup.cfg); their settings are ruff.toml and
setup.cfg's [mypy] section. Outside CI a missing tool skips its test; in CI
(CI=true) it fails.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The Python code ruff checks and formats; mypy checks the library only.
RUFF_PATHS = ('research', 'experiments', 'benchmarks', 'tests')


def _run_tool(module: str, *args: str) -> None:
  if importlib.util.find_spec(module) is None:
    message = f'{module} is not installed (pip install -e ".[test]" brings it)'
    if os.environ.get('CI', '').lower() == 'true':
      pytest.fail(message)
    pytest.skip(message)
  out = subprocess.run(
    [sys.executable, '-m', module, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
  )
  assert out.returncode == 0, (
    f'{module} {" ".join(args)} found problems:\n' + (out.stdout + out.stderr)[-6000:]
  )


def test_ruff_finds_nothing():
  _run_tool('ruff', 'check', '--no-cache', *RUFF_PATHS)


def test_ruff_format_changes_nothing():
  _run_tool('ruff', 'format', '--check', '--no-cache', *RUFF_PATHS)


def test_mypy_finds_nothing():
  # A cache inside the checkout keeps repeated runs fast (about 2 s instead of 10+).
  _run_tool('mypy', '--cache-dir', str(ROOT / '.mypy_cache'), 'research')
