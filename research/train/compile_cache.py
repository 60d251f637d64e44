"""JAX's persistent compilation cache for experiment runs.

A second run of an experiment (or a resumed one) reads its compiled programs from
disk instead of compiling them again. The entry points turn it on by default
(`--compilation_cache`); the library never does so on import.
"""

import os

import jax

ENV_VARIABLE = 'RESEARCH_COMPILATION_CACHE'
OFF = ('', 'off', 'none', '0', 'false')


def default_directory() -> str:
  """Where the cache lives unless a flag says otherwise: $RESEARCH_COMPILATION_CACHE,
  else $XDG_CACHE_HOME/research/jax (~/.cache/research/jax)."""
  if ENV_VARIABLE in os.environ:
    return os.environ[ENV_VARIABLE]
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'research', 'jax')


def enable(directory: str, min_compile_seconds: float = 0.0) -> str | None:
  """Points JAX's persistent compilation cache at `directory`.

  A cache directory already chosen through JAX's own setting (for example the
  JAX_COMPILATION_CACHE_DIR environment variable) is kept.

  Args:
    directory: a local path or a URL JAX's cache understands (gs://...); one of
      `OFF` ('' or 'off') leaves the cache off.
    min_compile_seconds: programs that compile faster than this are not stored
      (unless JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS says otherwise). The default
      stores every program: under JAX's own threshold of a second the small ones (the
      CNN's input preparation, its metric stacking) would compile again in every run,
      and on CPU many small programs add up at start-up.

  Returns:
    the directory in use, or None when the cache is off.
  """
  chosen = jax.config.values.get('jax_compilation_cache_dir')
  if chosen:
    return chosen
  if directory.strip().lower() in OFF:
    return None
  if '://' not in directory:
    directory = os.path.abspath(os.path.expanduser(directory))
  jax.config.update('jax_compilation_cache_dir', directory)
  if 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS' not in os.environ:
    jax.config.update('jax_persistent_cache_min_compile_time_secs', min_compile_seconds)
  return directory
