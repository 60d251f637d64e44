"""Run manifests: everything needed to trace a result back to what produced it."""

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from typing import Any, Mapping

import jax

from research.errors import UserInputError
from research.train import files
from research.train import scheduler

PACKAGES = (
  'research',
  'jax',
  'jaxlib',
  'flax',
  'optax',
  'orbax-checkpoint',
  'chex',
  'numpy',
  'tensorflow-cpu',
  'tensorflow',
  'tensorflow-datasets',
  'ml-collections',
  'scikit-learn',
)


def git_commit(path: str | None = None) -> str:
  """The commit of the code's checkout, with '+dirty' if it has local changes."""
  path = path or os.path.dirname(os.path.abspath(__file__))
  try:
    run = lambda *a: subprocess.run(
      ['git', *a], cwd=path, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
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
  """Backend, processes (count, this one's index) and device kinds/counts of this run."""
  kinds: dict[str, int] = {}
  for d in jax.devices():
    kinds[d.device_kind] = kinds.get(d.device_kind, 0) + 1
  return {
    'backend': jax.default_backend(),
    'process_count': jax.process_count(),
    'process_index': jax.process_index(),
    'local_device_count': jax.local_device_count(),
    'device_count': jax.device_count(),
    'device_kinds': kinds,
  }


def check_resumable(workdir: str, experiment: str, parameters: Mapping[str, int]) -> None:
  """Refuses to resume in a workdir written by another experiment or model shape.

  Raises:
    UserInputError: naming what differs from the workdir's manifest.json.
  """
  path = files.join(workdir, 'manifest.json')
  if not files.exists(path):
    return
  earlier = files.read_json(path)
  if earlier.get('experiment', experiment) != experiment:
    raise UserInputError(
      f'workdir {workdir!r} belongs to experiment {earlier["experiment"]!r}, not {experiment!r}'
    )
  if earlier.get('parameters', dict(parameters)) != dict(parameters):
    raise UserInputError(
      f'workdir {workdir!r} holds a model with parameter counts '
      f'{earlier["parameters"]}, this config builds {dict(parameters)}'
    )


def write_manifest(
  workdir: str,
  experiment: str,
  config: Mapping[str, Any],
  data: Mapping[str, Any],
  extra: Mapping[str, Any] | None = None,
) -> str:
  """Writes `<workdir>/manifest.json` (a resumed run: `manifest.resumed-<time>.json`).

  Args:
    workdir: run directory (a local path or a URL).
    experiment: the experiment's name, e.g. 'cnn'.
    config: the fully resolved experiment config (JSON-serialisable).
    data: data set facts, e.g. {'name': ..., 'version': ..., 'train_examples': ...}.
    extra: anything else worth keeping (e.g. parameter counts).

  Returns:
    the path written.
  """
  now = datetime.datetime.now(datetime.timezone.utc)
  manifest = {
    'experiment': experiment,
    'time': now.isoformat(),
    'command': sys.argv,
    'git_commit': git_commit(),
    'python': platform.python_version(),
    'platform': platform.platform(),
    'packages': package_versions(),
    'devices': device_summary(),
    'scheduler': scheduler.job_facts(),
    'config': dict(config),
    'data': dict(data),
    **(extra or {}),
  }
  path = files.join(workdir, 'manifest.json')
  if files.exists(path):  # Never overwrite the first run's manifest.
    path = files.join(workdir, f'manifest.resumed-{now:%Y%m%dT%H%M%S%f}.json')
  return files.write_json(path, manifest, sort_keys=True, default=str)
