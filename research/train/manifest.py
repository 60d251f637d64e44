"""Run manifests: everything needed to trace a result back to what produced it."""

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from typing import Any, Mapping

import jax

PACKAGES = ('research', 'jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'chex',
            'numpy', 'tensorflow-cpu', 'tensorflow', 'tensorflow-datasets',
            'ml-collections', 'scikit-learn')


def git_commit(path: str | None = None) -> str:
  """The commit of the code's checkout, with '+dirty' if it has local changes."""
  path = path or os.path.dirname(os.path.abspath(__file__))
  try:
    run = lambda *a: subprocess.run(['git', *a], cwd=path, capture_output=True,
                                    text=True, timeout=10, check=True).stdout.strip()
    commit = run('rev-parse', 'HEAD')
    return commit + ('+dirty' if run('status', '--porcelain', '-uno') else '')
  except (OSError, subprocess.SubprocessError):
    return 'unknown'


def package_versions() -> dict[str, str]:
  """Installed versions of the packages that determine results."""
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return versions


def device_summary() -> dict[str, Any]:
  """Backend, process and device kinds/counts of this run."""
  kinds: dict[str, int] = {}
  for d in jax.devices():
    kinds[d.device_kind] = kinds.get(d.device_kind, 0) + 1
  return {'backend': jax.default_backend(), 'process_count': jax.process_count(),
          'local_device_count': jax.local_device_count(),
          'device_count': jax.device_count(), 'device_kinds': kinds}


def write_manifest(workdir: str, config: Mapping[str, Any], data: Mapping[str, Any],
                   extra: Mapping[str, Any] | None = None) -> str:
  """Writes `<workdir>/manifest.json` and returns its path.

  Args:
    workdir: run directory.
    config: the fully resolved experiment config (JSON-serialisable).
    data: data set facts, e.g. {'name': ..., 'version': ..., 'train_examples': ...}.
    extra: anything else worth keeping (e.g. parameter counts).
  """
  manifest = {
      'time': datetime.datetime.now(datetime.timezone.utc).isoformat(),
      'command': sys.argv,
      'git_commit': git_commit(),
      'python': platform.python_version(),
      'platform': platform.platform(),
      'packages': package_versions(),
      'devices': device_summary(),
      'config': dict(config),
      'data': dict(data),
      **(extra or {}),
  }
  path = os.path.join(workdir, 'manifest.json')
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(manifest, f, indent=2, sort_keys=True, default=str)
  return path
