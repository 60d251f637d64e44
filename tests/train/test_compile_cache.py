"""The experiments' persistent compilation cache: on by default, a second run of
the same experiment compiles nothing new, and it can be moved or switched off."""

import os
import subprocess
import sys

import jax

from research.train import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv(compile_cache.ENV_VARIABLE, str(tmp_path / 'c'))
  assert compile_cache.default_directory() == str(tmp_path / 'c')
  monkeypatch.delenv(compile_cache.ENV_VARIABLE)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert compile_cache.default_directory() == str(tmp_path / 'research' / 'jax')


def _cache_entries(directory) -> set[str]:
  return set(os.listdir(directory)) if os.path.isdir(directory) else set()


def _lm_run(workdir, text_file, *flags):
  """The tiny LM experiment, from the test's directory (so a relative path lands
  there)."""
  env = dict(
    os.environ,
    JAX_PLATFORMS='cpu',
    TF_CPP_MIN_LOG_LEVEL='2',
    PYTHONPATH=ROOT,
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1',
  )
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  # The cache's own threshold: it stores programs that compile in well under 1 s.
  env.pop('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', None)
  env.pop(compile_cache.ENV_VARIABLE, None)
  out = subprocess.run(
    [
      sys.executable,
      '-m',
      'experiments.lm.main',
      '--config=experiments/lm/configs/tiny.py',
      f'--config.text_file={text_file}',
      '--config.sample.length=0',
      f'--workdir={workdir}',
      *flags,
    ],
    cwd=os.path.dirname(workdir),
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert out.returncode == 0, out.stderr[-3000:]


def test_a_second_run_compiles_nothing_new(tmp_path):
  text_file = tmp_path / 'text.txt'
  text_file.write_text('The cat sat on the mat. The dog did not.\n' * 30)
  cache = tmp_path / 'cache'
  _lm_run(tmp_path / 'run1', text_file, f'--compilation_cache={cache}')
  first = _cache_entries(cache)
  assert len(first) >= 2  # At least the train and the evaluation programs.
  _lm_run(tmp_path / 'run2', text_file, f'--compilation_cache={cache}')
  assert _cache_entries(cache) == first  # Every program came from the cache.
  off = tmp_path / 'off'
  _lm_run(tmp_path / 'run3', text_file, '--compilation_cache=off')
  assert not off.exists() and _cache_entries(cache) == first


def test_off_leaves_the_cache_off_and_a_jax_setting_wins(tmp_path):
  previous = jax.config.jax_compilation_cache_dir
  try:
    jax.config.update('jax_compilation_cache_dir', None)
    assert compile_cache.enable('off') is None
    assert jax.config.jax_compilation_cache_dir is None
    assert compile_cache.enable(str(tmp_path / 'a')) == str(tmp_path / 'a')
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / 'a')
    # Already chosen (e.g. by JAX_COMPILATION_CACHE_DIR): kept.
    assert compile_cache.enable(str(tmp_path / 'b')) == str(tmp_path / 'a')
  finally:
    jax.config.update('jax_compilation_cache_dir', previous)
