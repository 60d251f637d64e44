"""The cluster launchers and scripts/run_experiment.sh, in dry-run mode and with fake
sbatch/gcloud commands: the command each prints is the one it runs, names the
experiment's module and config, installs with the right jax extra, and passes
flags through intact."""

import os
import shlex
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = ('cnn', 'lm', 'seq2seq', 'ddpm')
# A space and a quote: each must reach the experiment as one argument, unchanged.
FLAGS = ('--workdir=/shared/runs/my run', "--config.note=it's")


@pytest.fixture
def fake_bin(tmp_path):
  """A PATH directory whose sbatch/gcloud record their arguments, one file per call
  (NUL-separated), instead of reaching a cluster."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for name in ('sbatch', 'gcloud'):
    script = bin_dir / name
    script.write_text(
      '#!/bin/sh\n'
      f'n=$(ls "{tmp_path}" | grep -c "^call-")\n'
      f'printf "%s\\0" "$(basename "$0")" "$@" > "{tmp_path}/call-$n"\n'
    )
    script.chmod(0o755)
  return tmp_path


def _run(script, *args, fake_bin_dir=None, **env):
  path = os.environ['PATH']
  if fake_bin_dir is not None:
    path = f'{fake_bin_dir / "bin"}{os.pathsep}{path}'
  full_env = dict(os.environ)
  full_env.pop('DRY_RUN', None)
  full_env.pop('RESEARCH_JAX_EXTRA', None)
  full_env.update(PATH=path, REPO_URL='https://example.com/research.git', **env)
  return subprocess.run(
    [os.path.join(ROOT, 'scripts', script), *args],
    env=full_env,
    capture_output=True,
    text=True,
    timeout=60,
    check=False,
  )


def _calls(fake_bin_dir):
  calls = sorted(p for p in fake_bin_dir.iterdir() if p.name.startswith('call-'))
  return [p.read_bytes().decode().split('\0')[:-1] for p in calls]


def _shell_words(script):
  """Words and operators ('&&', ';') of a POSIX shell command line."""
  lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
  lexer.whitespace_split = True
  return list(lexer)


def _after(words, prefix):
  """The words following the first occurrence of the sequence `prefix`."""
  for i in range(len(words) - len(prefix) + 1):
    if words[i : i + len(prefix)] == list(prefix):
      return words[i + len(prefix) :]
  raise AssertionError(f'{prefix} not in {words}')


def _index(words, prefix):
  return len(words) - len(_after(words, prefix)) - len(prefix)


def _check_process_command(line, experiment, *run_flags):
  """The '# each ... runs: python -m ...' line names the module, config and flags."""
  assert line.startswith('# each ') and ' runs: ' in line, line
  assert shlex.split(line.split(' runs: ', 1)[1]) == [
    'python',
    '-m',
    f'experiments.{experiment}.main',
    f'--config=experiments/{experiment}/configs/default.py',
    *run_flags,
    *FLAGS,
  ]
  assert os.path.isfile(os.path.join(ROOT, 'experiments', experiment, 'configs', 'default.py'))


@pytest.mark.parametrize('experiment', EXPERIMENTS)
def test_slurm_dry_run_installs_once_then_runs_the_experiment(experiment, fake_bin):
  out = _run('launch_slurm.sh', '--dry_run', experiment, '2', '8', *FLAGS, fake_bin_dir=fake_bin)
  assert out.returncode == 0, out.stderr
  sbatch_line, process_line = out.stdout.strip().splitlines()
  sbatch = shlex.split(sbatch_line)
  assert sbatch[0] == 'sbatch' and '--nodes=2' in sbatch and '--gpus-per-node=8' in sbatch
  # One task per GPU: 2 x 8 = 16 processes, each keeping GPU number SLURM_LOCALID.
  assert '--requeue' in sbatch and '--ntasks-per-node=8' in sbatch
  wrap = [w for w in sbatch if w.startswith('--wrap=')][0][len('--wrap=') :]
  subprocess.run(['sh', '-n', '-c', wrap], check=True)  # sbatch runs it with /bin/sh.
  words = _shell_words(wrap)
  assert _after(words, ['cd'])[0] == ROOT
  assert 'RESEARCH_JAX_EXTRA=cuda12' in _after(words, ['export'])[:1]
  install = _index(words, ['srun', '--nodes=1', '--ntasks=1', 'bash', 'scripts/env.sh'])
  train = _index(words, ['srun', '--kill-on-bad-exit=1', '--ntasks-per-node=8'])
  assert install < train
  assert _after(words, ['srun', '--kill-on-bad-exit=1', '--ntasks-per-node=8']) == [
    'scripts/run_experiment.sh',
    experiment,
    '--distributed_auto',
    '--resume',
    *FLAGS,
  ]
  _check_process_command(process_line, experiment, '--distributed_auto', '--resume')
  assert not _calls(fake_bin)  # A dry run submits nothing.


@pytest.mark.parametrize('experiment', EXPERIMENTS)
def test_tpu_dry_run_installs_on_every_worker_then_launches(experiment, fake_bin):
  out = _run(
    'launch_tpu_vm.sh',
    '--dry_run',
    experiment,
    'my-v4-32',
    'us-central2-b',
    *FLAGS,
    fake_bin_dir=fake_bin,
  )
  assert out.returncode == 0, out.stderr
  setup_line, launch_line, process_line, logs_line = out.stdout.strip().splitlines()
  ssh = [
    'gcloud',
    'compute',
    'tpus',
    'tpu-vm',
    'ssh',
    'my-v4-32',
    '--zone',
    'us-central2-b',
    '--worker=all',
    '--command',
  ]
  setup, launch = shlex.split(setup_line), shlex.split(launch_line)
  assert setup[:-1] == ssh and launch[:-1] == ssh
  for script in (setup[-1], launch[-1]):
    subprocess.run(['sh', '-n', '-c', script], check=True)
  setup_words = _shell_words(setup[-1])
  assert 'https://example.com/research.git' in _after(setup_words, ['git', 'clone'])[:1]
  _after(setup_words, ['RESEARCH_JAX_EXTRA=tpu', 'bash', 'scripts/env.sh'])
  # Detached from the ssh session, appending to one log per worker.
  assert _after(_shell_words(launch[-1]), ['RESEARCH_JAX_EXTRA=tpu', 'setsid', 'nohup']) == [
    'scripts/run_experiment.sh',
    experiment,
    '--distributed_auto',
    '--resume',
    *FLAGS,
    '>>',
    f'logs/{experiment}-$(hostname).log',
    '2',
    '>&',
    '1',
    '<',
    '/dev/null',
    '&',
    '}',
    '&&',
    'echo',
    f'started: $(hostname):~/research/logs/{experiment}-$(hostname).log',
  ]
  _check_process_command(process_line, experiment, '--distributed_auto', '--resume')
  logs_words = shlex.split(logs_line.split(' with: ', 1)[1])
  assert logs_line.startswith(f'# logs: ~/research/logs/{experiment}-HOSTNAME.log'), logs_line
  assert logs_words == [
    *ssh[:-2],
    '--worker=0',
    '--command',
    f'tail -F ~/research/logs/{experiment}-*.log',
  ]
  assert not _calls(fake_bin)


def test_tpu_workers_outlive_the_ssh_session_and_log_to_their_own_file(tmp_path):
  """The launch command, run by a worker's shell, returns at once; the run goes on in a
  session of its own and appends to logs/EXPERIMENT-HOSTNAME.log."""
  out = _run('launch_tpu_vm.sh', '--dry_run', 'cnn', 'tpu', 'zone', '--workdir=/w')
  launch = shlex.split(out.stdout.splitlines()[1])[-1]
  scripts = tmp_path / 'research' / 'scripts'
  scripts.mkdir(parents=True)
  fake = scripts / 'run_experiment.sh'
  fake.write_text('#!/bin/sh\nsleep 2\necho "$*"; ps -o sid= $$\n')
  fake.chmod(0o755)
  env = dict(os.environ, HOME=str(tmp_path))
  shell = subprocess.run(['sh', '-c', launch], env=env, capture_output=True, text=True, check=True)
  host = subprocess.run(['hostname'], capture_output=True, text=True, check=True).stdout.strip()
  log = tmp_path / 'research' / 'logs' / f'cnn-{host}.log'
  assert shell.stdout == f'started: {host}:~/research/logs/cnn-{host}.log\n'
  assert not log.exists() or not log.read_text()  # The run is still going.
  for _ in range(200):
    if log.exists() and log.read_text().count('\n') == 2:
      break
    time.sleep(0.1)
  args, sid = log.read_text().splitlines()
  assert args == 'cnn --distributed_auto --resume --workdir=/w'
  assert int(sid) != os.getsid(0)  # Its own session: the ssh session's hang-up misses it.


def test_slurm_submits_exactly_the_printed_command(fake_bin):
  printed = _run('launch_slurm.sh', 'lm', '1', '4', *FLAGS, DRY_RUN='1')
  assert printed.returncode == 0, printed.stderr
  out = _run('launch_slurm.sh', 'lm', '1', '4', *FLAGS, fake_bin_dir=fake_bin)
  assert out.returncode == 0, out.stderr
  assert _calls(fake_bin) == [shlex.split(printed.stdout.splitlines()[0])]


def test_tpu_runs_exactly_the_printed_commands_in_order(fake_bin):
  printed = _run('launch_tpu_vm.sh', 'ddpm', 'tpu', 'zone', *FLAGS, DRY_RUN='1')
  assert printed.returncode == 0, printed.stderr
  out = _run('launch_tpu_vm.sh', 'ddpm', 'tpu', 'zone', *FLAGS, fake_bin_dir=fake_bin)
  assert out.returncode == 0, out.stderr
  assert _calls(fake_bin) == [shlex.split(line) for line in printed.stdout.splitlines()[:2]]


def test_the_jax_extra_can_be_overridden(fake_bin):
  out = _run('launch_slurm.sh', '--dry_run', 'cnn', '1', '1', RESEARCH_JAX_EXTRA='cuda13')
  assert 'RESEARCH_JAX_EXTRA=cuda13' in _shell_words(shlex.split(out.stdout.splitlines()[0])[-1])


@pytest.mark.parametrize(
  'script,args',
  [
    ('launch_slurm.sh', ('--dry_run', 'resnet', '1', '1')),
    ('launch_slurm.sh', ('resnet', '1', '1')),
    ('launch_slurm.sh', ('--dry_run', 'cnn', 'two', '1')),
    ('launch_slurm.sh', ('--dry_run', 'cnn')),
    ('launch_tpu_vm.sh', ('--dry_run', '../cnn', 'tpu', 'zone')),
    ('launch_tpu_vm.sh', ('resnet', 'tpu', 'zone')),
    ('run_experiment.sh', ('--dry_run', 'resnet')),
    ('run_experiment.sh', ('resnet',)),
    ('run_experiment.sh', ()),
  ],
)
def test_bad_arguments_give_a_one_line_usage_error(script, args, fake_bin):
  out = _run(script, *args, fake_bin_dir=fake_bin)
  assert out.returncode == 2
  assert out.stdout == ''
  assert out.stderr.startswith('usage: ') and out.stderr.count('\n') == 1, out.stderr
  assert '{cnn|ddpm|lm|seq2seq}' in out.stderr
  assert not _calls(fake_bin)


@pytest.mark.parametrize('experiment', EXPERIMENTS)
def test_run_experiment_dry_run_names_module_and_default_config(experiment):
  out = _run('run_experiment.sh', '--dry_run', experiment, *FLAGS)
  assert out.returncode == 0, out.stderr
  assert shlex.split(out.stdout) == [
    'python',
    '-m',
    f'experiments.{experiment}.main',
    f'--config=experiments/{experiment}/configs/default.py',
    *FLAGS,
  ]


def test_run_experiment_config_flag_replaces_the_default():
  out = _run(
    'run_experiment.sh',
    'seq2seq',
    '--config=experiments/seq2seq/configs/addition.py',
    '--config.num_epochs=1',
    DRY_RUN='1',
  )
  assert shlex.split(out.stdout) == [
    'python',
    '-m',
    'experiments.seq2seq.main',
    '--config=experiments/seq2seq/configs/addition.py',
    '--config.num_epochs=1',
  ]
