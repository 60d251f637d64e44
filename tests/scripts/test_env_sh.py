"""scripts/env.sh: safe to source from an interactive shell, reinstalls when the jax
extra changes, and lets only one of several concurrent processes install.

Nothing is installed: VENV points at a fake venv whose bin/python logs the pip
commands it is given (and fails or sleeps on request).
"""

import os
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV_SH = os.path.join(ROOT, 'scripts', 'env.sh')
PROBE = r"""
report() {
  set -o > "$OUT/options.$1"; shopt -p > "$OUT/shopt.$1"; pwd > "$OUT/pwd.$1"
}
report before
source "$ENV_SH"
echo "rc=$?"
report after
echo "alive"
echo "VIRTUAL_ENV=${VIRTUAL_ENV:-}"
echo "PYTHONPATH=${PYTHONPATH:-}"
echo "TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-}"
echo "MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX-unset}"
echo "helpers=$(declare -F | grep -c _research_ || true)"
"""


@pytest.fixture
def venv(tmp_path):
  """A fake venv with an up-to-date CPU install stamp."""
  bin_dir = tmp_path / 'venv' / 'bin'
  bin_dir.mkdir(parents=True)
  (bin_dir / 'activate').write_text(
    f'VIRTUAL_ENV={tmp_path / "venv"}\nexport VIRTUAL_ENV\n'
    'PATH="$VIRTUAL_ENV/bin:$PATH"\nexport PATH\n'
  )
  python = bin_dir / 'python'
  python.write_text(
    '#!/bin/sh\n'
    'echo "$*" >> "$FAKE_PIP_LOG"\n'
    'sleep "${FAKE_PIP_SLEEP:-0}"\n'
    'exit "${FAKE_PIP_RC:-0}"\n'
  )
  python.chmod(0o755)
  stamp(tmp_path / 'venv', '')
  return tmp_path / 'venv'


def stamp(venv, extra, mtime=None):
  path = venv / '.research-installed'
  path.write_text(f'jax_extra={extra}\n')
  if mtime is not None:
    os.utime(path, (mtime, mtime))


def run_bash(tmp_path, venv, script, *, shell_options='set +e', **env):
  """Runs `script` in `bash --norc` from a directory of its own, with a clean
  environment; returns (completed process, {name: value} of its KEY=value lines)."""
  cwd = tmp_path / 'elsewhere'
  cwd.mkdir(exist_ok=True)
  out = tmp_path / 'out'
  out.mkdir(exist_ok=True)
  full_env = {
    'PATH': '/usr/bin:/bin',
    'HOME': str(tmp_path),
    'VENV': str(venv),
    'ENV_SH': ENV_SH,
    'OUT': str(out),
    'FAKE_PIP_LOG': str(tmp_path / 'pip.log'),
    **env,
  }
  done = subprocess.run(
    ['bash', '--norc', '--noprofile', '-c', f'{shell_options}\n{script}'],
    cwd=cwd,
    env=full_env,
    capture_output=True,
    text=True,
    timeout=60,
    check=False,
  )
  values = dict(line.split('=', 1) for line in done.stdout.splitlines() if '=' in line)
  return done, values


def pip_calls(tmp_path):
  log = tmp_path / 'pip.log'
  return log.read_text().splitlines() if log.exists() else []


def assert_shell_unchanged(tmp_path):
  out = tmp_path / 'out'
  for what in ('options', 'shopt', 'pwd'):
    assert (out / f'{what}.before').read_text() == (out / f'{what}.after').read_text(), what
  assert (out / 'pwd.after').read_text().strip() == str(tmp_path / 'elsewhere')


@pytest.mark.parametrize('shell_options', ['set +e', 'set -u -o pipefail'])
def test_sourcing_leaves_options_and_directory_alone(tmp_path, venv, shell_options):
  done, values = run_bash(tmp_path, venv, PROBE, shell_options=shell_options)
  assert done.returncode == 0, done.stderr
  assert values['rc'] == '0' and 'alive' in done.stdout
  assert_shell_unchanged(tmp_path)
  assert values['VIRTUAL_ENV'] == str(venv)
  assert values['PYTHONPATH'] == ROOT
  assert values['TF_CPP_MIN_LOG_LEVEL'] == '2'
  assert values['MALLOC_ARENA_MAX'] == '1'  # CPU: the allocator settings apply.
  assert values['helpers'] == '0'
  assert not pip_calls(tmp_path)  # The stamp is current: nothing installed.


def test_a_failed_install_returns_instead_of_closing_the_shell(tmp_path, venv):
  (venv / '.research-installed').unlink()
  done, values = run_bash(tmp_path, venv, PROBE, FAKE_PIP_RC='1')
  assert done.returncode == 0, done.stderr
  assert values['rc'] == '1' and 'alive' in done.stdout
  assert 'installation into' in done.stderr
  assert_shell_unchanged(tmp_path)
  assert not (venv / '.research-installed').exists()


def test_a_new_jax_extra_reinstalls_and_is_recorded(tmp_path, venv):
  done, values = run_bash(tmp_path, venv, PROBE, RESEARCH_JAX_EXTRA='cuda12')
  assert values['rc'] == '0', done.stderr
  assert pip_calls(tmp_path) == [
    '-m pip install --quiet --upgrade pip',
    f'-m pip install --quiet -e {ROOT}[test] jax[cuda12]',
  ]
  assert (venv / '.research-installed').read_text() == 'jax_extra=cuda12\n'
  assert values['MALLOC_ARENA_MAX'] == 'unset'  # Accelerators: glibc defaults.
  assert_shell_unchanged(tmp_path)
  # Installed: neither the same extra nor a plain CPU request reinstalls.
  for extra in ('cuda12', ''):
    done, values = run_bash(tmp_path, venv, PROBE, RESEARCH_JAX_EXTRA=extra)
    assert values['rc'] == '0', done.stderr
    assert len(pip_calls(tmp_path)) == 2


def test_a_setup_cfg_update_reinstalls_keeping_the_recorded_extra(tmp_path, venv):
  stamp(venv, 'tpu', mtime=os.path.getmtime(os.path.join(ROOT, 'setup.cfg')) - 10)
  done, values = run_bash(tmp_path, venv, PROBE)
  assert values['rc'] == '0', done.stderr
  assert pip_calls(tmp_path)[-1] == f'-m pip install --quiet -e {ROOT}[test] jax[tpu]'
  assert (venv / '.research-installed').read_text() == 'jax_extra=tpu\n'


def test_concurrent_processes_install_once(tmp_path, venv):
  """Two nodes sharing the venv: one installs under the lock; the other waits,
  then finds the fresh stamp and installs nothing."""
  (venv / '.research-installed').unlink()
  env = {
    'PATH': '/usr/bin:/bin',
    'HOME': str(tmp_path),
    'VENV': str(venv),
    'FAKE_PIP_LOG': str(tmp_path / 'pip.log'),
    'FAKE_PIP_SLEEP': '0.5',
  }
  start = time.monotonic()
  procs = [
    subprocess.Popen(['bash', ENV_SH], env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)
  ]
  errs = [p.communicate(timeout=60)[1] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], errs
  assert len(pip_calls(tmp_path)) == 2  # One `pip install --upgrade pip`, one install.
  assert time.monotonic() - start >= 1.0  # The second waited for the first.
  assert any('waiting' in e for e in errs)
