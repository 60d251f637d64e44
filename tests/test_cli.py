"""The entry points as a user meets them: run from outside the repository, --help,
one-line errors, and --log_dir (subprocesses, kept few: each costs seconds of start-up).
"""

import os
import subprocess
import sys

import pytest

from research import cli
from research.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = ('cnn', 'lm', 'seq2seq', 'ddpm')


def _main(experiment, *args, cwd, timeout=300):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run(
    [sys.executable, '-m', f'experiments.{experiment}.main', *args],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )


@pytest.mark.parametrize('experiment', EXPERIMENTS)
def test_help_lists_the_experiment_flags(experiment, tmp_path):
  out = _main(experiment, '--help', cwd=tmp_path)
  assert 'Traceback' not in out.stderr, out.stderr[-2000:]  # absl's --help exits 1.
  for flag in (
    '--config',
    '--workdir',
    '--[no]resume',
    '--num_processes',
    '--coordinator_address',
    '--log_dir',
  ):
    assert flag in out.stdout, (flag, out.stdout)
  # The default config is found from the package, not from the working directory.
  default = os.path.join(ROOT, 'experiments', experiment, 'configs', 'default.py')
  assert default in out.stdout


@pytest.mark.parametrize(
  'args,names',
  [
    (
      ['--config.num_epoch=3'],
      ['--config.num_epoch: the config has no such field', 'did you mean --config.num_epochs?'],
    ),
    # A relative --config that is not under the working directory is found from the
    # repository root; the mistake inside it is still reported.
    (
      ['--config=experiments/cnn/configs/default.py', '--config.model.hidden_dimm=3'],
      [
        '--config.model.hidden_dimm: the config has no such field',
        'did you mean --config.model.hidden_dim?',
      ],
    ),
    (['--config.num_epochs=abc'], ['--config.num_epochs=abc', "'abc'"]),
  ],
)
def test_a_bad_value_is_one_line_naming_it(args, names, tmp_path):
  out = _main('cnn', *args, f'--workdir={tmp_path / "run"}', cwd=tmp_path)
  assert out.returncode != 0
  lines = out.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), out.stderr[-2000:]
  for name in names:
    assert name in lines[0], lines[0]
  assert '\\' not in lines[0] and not os.path.exists(tmp_path / 'run')


def test_log_dir_records_the_run_lines_once_on_the_terminal(offline_data_dir, tmp_path):
  logs = tmp_path / 'logs'
  out = _main(
    'cnn',
    f'--workdir={tmp_path / "run"}',
    f'--log_dir={logs}',
    '--alsologtostderr',
    f'--config.data_dir={offline_data_dir}',
    '--config.num_epochs=1',
    '--config.train_split=train[:64]',
    '--config.test_split=test[:64]',
    '--config.image_size=16',
    '--config.model.hidden_dim=16',
    '--config.microbatches=1',
    '--config.progress=False',
    cwd=tmp_path,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  files = [f for f in os.listdir(logs) if '.log.INFO.' in f]
  assert len(files) == 1, os.listdir(logs)
  text = (logs / files[0]).read_text()
  for line in out.stdout.splitlines():
    if line.startswith(('[Epoch 1]', 'Test loss')):
      assert line in text  # Every human line is in the log file...
      assert line not in out.stderr  # ...and only once on the terminal (stdout).
  assert '[Epoch 1]' in out.stdout and 'Test loss' in out.stdout
  # Orbax's INFO chatter stays out of the log unless -v asks for it.
  assert 'checkpoint_manager.py' not in text


def test_relative_config_paths_resolve_from_the_working_directory_then_the_root(
  tmp_path, monkeypatch
):
  monkeypatch.chdir(tmp_path)
  default = os.path.join(ROOT, 'experiments', 'cnn', 'configs', 'default.py')
  assert cli.resolve_config_path('experiments/cnn/configs/default.py', ROOT) == default
  assert cli.resolve_config_path(default + ':tiny', ROOT) == default + ':tiny'
  (tmp_path / 'experiments' / 'cnn' / 'configs').mkdir(parents=True)
  (tmp_path / 'experiments' / 'cnn' / 'configs' / 'default.py').write_text('')
  assert cli.resolve_config_path('experiments/cnn/configs/default.py', ROOT) == str(
    tmp_path / 'experiments' / 'cnn' / 'configs' / 'default.py'
  )
  with pytest.raises(UserInputError, match="no config file 'nope.py'"):
    cli.resolve_config_path('nope.py', ROOT)


def test_unknown_field_message_names_the_override():
  error = AttributeError(KeyError('\'cel\'\nDid you mean "cell" instead of "cel"?'))
  argv = ['main.py', '--config.seed=1', '--config.model.cel=gru']
  assert cli.unknown_field_message(error, argv) == (
    '--config.model.cel: the config has no such field (did you mean --config.model.cell?)'
  )
  # A KeyError no override explains (a bug in the config file) is passed on as is.
  assert cli.unknown_field_message(KeyError("'x'"), ['main.py']) == "--config: 'x'"
