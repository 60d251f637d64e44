"""What every experiment entry point shares: its flags, config files found from any
directory, one-line failures and logging.

An entry point holds only

  main = cli.define_experiment(default_config_path, train_and_evaluate)
  if __name__ == '__main__':
    app.run(main, flags_parser=cli.parse_flags)

Nothing here runs at import of `research`.

Logging. The run's human lines (`log`) go to stdout, once, in every mode, so the
terminal and a redirected stdout read the same. Each line is also a log record, on
the logger 'research.run', which writes it into absl's log file when --log_dir is
given (in absl's format, among the libraries' records) and never to the terminal:
with --alsologtostderr or --logtostderr the terminal would otherwise show every
line twice. Other records go through absl's handler as usual (to stderr, or to the
file and, from WARNING up, to stderr). Orbax and tfds log every step at INFO through
the logger named 'absl': `QUIET_LOGGERS` are set to WARNING unless -v/--verbosity or
--logger_levels asks otherwise.
"""

import logging
import os
import re
import sys
from typing import Callable, NoReturn

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from research.errors import NonFiniteLossError
from research.errors import Preempted
from research.errors import UserInputError
from research.train import compile_cache
from research.train import distributed
from research.train import scheduler

# Loggers kept at WARNING (unless -v or --logger_levels asks otherwise): orbax and
# tensorflow_datasets log every step at INFO via 'absl'; jax reports absent backends.
QUIET_LOGGERS = ('absl', 'jax')
_RUN_LOGGER = logging.getLogger('research.run')
_RUN_LOGGER.propagate = False  # Its records reach the log file only (see above).
_EXPERIMENT_FLAGS = (
  'config',
  'workdir',
  'resume',
  'coordinator_address',
  'num_processes',
  'process_id',
  'distributed_auto',
  'compilation_cache',
  'log_dir',
  'alsologtostderr',
  'verbosity',
)


def resolve_config_path(path: str, root: str) -> str:
  """The absolute path of a config file named on the command line.

  A relative path is tried against the working directory, then against `root`
  (the repository root), so `experiments/cnn/configs/default.py` works from any
  directory. A ':args' suffix (ml_collections' get_config argument) is kept.

  Raises:
    UserInputError: if no such file exists.
  """
  file, sep, args = path.partition(':')
  tried = [os.path.abspath(file)]
  if not os.path.isabs(file):
    tried.append(os.path.join(root, file))
  for candidate in tried:
    if os.path.isfile(candidate):
      return candidate + sep + args
  raise UserInputError(f'no config file {file!r} (looked for {" and ".join(tried)})')


class _ResolvingParser(flags.ArgumentParser):
  """Wraps ml_collections' config-file parser: resolves the path first."""

  def __init__(self, parser: flags.ArgumentParser, root: str):
    self.parser = parser
    self.root = root

  def parse(self, argument):
    return self.parser.parse(resolve_config_path(argument, self.root))

  def flag_type(self):
    return self.parser.flag_type()


def _config_overrides(argv: list[str]) -> list[str]:
  """The field paths of the --config.X=... arguments, e.g. ['model.cell']."""
  return [
    re.sub(r'^-{1,2}(no)?config\.', '', a.split('=')[0])
    for a in argv
    if re.match(r'^-{1,2}(no)?config\.', a)
  ]


def unknown_field_message(error: Exception, argv: list[str]) -> str:
  """One line naming the --config.X override that names no field of the config.

  Args:
    error: the KeyError/AttributeError ml_collections raised for it.
    argv: the command line.
  """
  while error.args and isinstance(error.args[0], Exception):
    error = error.args[0]  # ml_collections wraps the KeyError in an AttributeError.
  text = str(error.args[0]) if error.args else str(error)
  lookup = re.search(r'Attempting to lookup: (\S+)', text)
  key = re.match(r'\W*(\w+)', text)
  overrides = _config_overrides(argv)
  if lookup:
    bad = [lookup.group(1)]
  else:
    bad = [o for o in overrides if key and key.group(1) in o.split('.')] or overrides
  if not bad:  # Not an override's fault (e.g. a bug in the config file).
    return f'--config: {text}'
  message = f'{", ".join("--config." + b for b in bad)}: the config has no such field'
  suggestion = re.search(r'Did you mean "([^"]+)"', text)
  if suggestion and len(bad) == 1:
    parent = bad[0].rpartition('.')[0]
    fixed = f'{parent}.{suggestion.group(1)}' if parent else suggestion.group(1)
    message += f' (did you mean --config.{fixed}?)'
  return message


def _one_line(message: str) -> str:
  lines = [line.strip() for line in str(message).splitlines() if line.strip()]
  if len(lines) <= 1:
    return ''.join(lines)
  return f'{lines[0]} ... {lines[-1]}'  # E.g. a traceback inside a config file.


def _exit_with(message: str) -> NoReturn:
  sys.exit(f'error: {_one_line(message)}')


def parse_flags(argv: list[str]) -> list[str]:
  """`app.run`'s flags_parser: parses the flags; a bad one ends the program with one
  line on stderr that names it (exit status 1).

  Returns:
    the arguments left after the flags, program name first.
  """
  try:
    return flags.FLAGS(argv)
  except (KeyError, AttributeError) as e:
    _exit_with(unknown_field_message(e, argv))
  except flags.Error as e:
    _exit_with(re.sub(r'^flag ', '', str(e)))


def _caller_module(depth: int) -> tuple[str, str, str]:
  """The calling module's name for absl's --help (the script path if it is
  __main__), its dotted name, and the folder holding its top-level package."""
  g = sys._getframe(depth + 1).f_globals  # pylint: disable=protected-access
  spec = g.get('__spec__')
  dotted = spec.name if spec else g.get('__name__', '')
  help_name = sys.argv[0] if g.get('__name__') == '__main__' else dotted
  root = os.path.dirname(os.path.abspath(g.get('__file__') or sys.argv[0]))
  package = g.get('__package__') or ''
  for _ in range(len(package.split('.')) if package else 0):
    root = os.path.dirname(root)  # experiments/cnn -> experiments -> the root.
  return help_name, dotted, root


def define_config_flag(default: str, root: str, help_text: str = 'Experiment config file.'):
  """Defines --config (an ml_collections config file, locked against new keys) and
  the multi-process flags (--coordinator_address, --num_processes, --process_id,
  --distributed_auto) that `run` acts on.

  A relative --config path is found from the working directory or from `root`.
  ml_collections reads the --config.* overrides already while the flag is defined
  (for the default file); an override naming no field ends the program with one
  line.

  Returns:
    the flag holder; `.value` is the ConfigDict after parsing.
  """
  flags.DEFINE_string('coordinator_address', '', 'HOST:PORT of process 0, for a multi-process run.')
  flags.DEFINE_integer('num_processes', 1, 'Processes in a multi-process run.')
  flags.DEFINE_integer('process_id', 0, "This process's index in [0, num_processes).")
  flags.DEFINE_bool(
    'distributed_auto',
    False,
    'Join a multi-process run configured by the cluster environment (SLURM, Cloud TPU).',
  )
  flags.DEFINE_string(
    'compilation_cache',
    compile_cache.default_directory(),
    "Directory of JAX's persistent compilation cache, so a second "
    f'run skips compiling (default from ${compile_cache.ENV_VARIABLE}); '
    '"off" disables it.',
  )
  try:
    holder = config_flags.DEFINE_config_file(
      'config', resolve_config_path(default, root), help_text, lock_config=True
    )
  except (KeyError, AttributeError) as e:
    _exit_with(unknown_field_message(e, sys.argv))
  except (flags.Error, UserInputError) as e:
    _exit_with(str(e))
  flag = flags.FLAGS['config']
  flag.parser = _ResolvingParser(flag.parser, root)
  return holder


class _LogFileHandler(logging.StreamHandler):
  """Writes the run's records into absl's log file (a class of its own, so a second
  `setup_logging` replaces it rather than adding another)."""


def _start_log_file(program_name: str) -> None:
  """With --log_dir: opens absl's log file and sends the run's lines to it too."""
  log_dir = flags.FLAGS.log_dir
  if not log_dir:
    return
  try:
    os.makedirs(log_dir, exist_ok=True)
  except OSError as e:
    raise UserInputError(f'--log_dir {log_dir!r} cannot be created: {e}') from None
  absl_handler = absl_logging.get_absl_handler()
  absl_handler.use_absl_log_file(program_name, log_dir)
  stream = absl_handler.python_handler.stream
  if stream is sys.stderr:  # --logtostderr: there is no file.
    return
  if not flags.FLAGS['stderrthreshold'].present:
    # absl's default keeps even errors off the terminal once it writes a file.
    # absl types a flag attribute by its generic parameter: mypy cannot see it is a str.
    flags.FLAGS.stderrthreshold = 'warning'  # type: ignore[assignment]
  for h in list(_RUN_LOGGER.handlers):
    if isinstance(h, _LogFileHandler):
      _RUN_LOGGER.removeHandler(h)
  handler = _LogFileHandler(stream)
  handler.setFormatter(absl_handler.python_handler.formatter)
  _RUN_LOGGER.addHandler(handler)


def setup_logging(program_name: str) -> None:
  """Quietens the chatty libraries' loggers and opens the --log_dir file."""
  f = flags.FLAGS
  for name in QUIET_LOGGERS:
    if not f['verbosity'].present and name not in (f.logger_levels or {}):
      logging.getLogger(name).setLevel(logging.WARNING)
  _RUN_LOGGER.setLevel(logging.INFO)
  _start_log_file(program_name)


def log(message: str) -> None:
  """Prints a line of the run on stdout and records it in the log (see module
  docstring); only on the primary process (every process runs the same program)."""
  if distributed.is_primary():
    print(message, flush=True)
    _RUN_LOGGER.info(message)


def run(train: Callable[[], object], program_name: str = '') -> None:
  """Sets up logging, joins a multi-process job if flags say so, checks that JAX sees
  what the scheduler allocated (`scheduler.check_allocation`), then calls `train()`;
  user mistakes and numerical failure end with one line, exit 1.

  A run stopped by SIGTERM/SIGINT (after checkpointing) exits 0 with one line.
  """
  try:
    setup_logging(program_name or os.path.basename(sys.argv[0]))
    distributed.initialize(
      flags.FLAGS.coordinator_address,
      flags.FLAGS.num_processes,
      flags.FLAGS.process_id,
      flags.FLAGS.distributed_auto,
    )
    compile_cache.enable(flags.FLAGS.compilation_cache)
    scheduler.check_allocation()
    train()
  except UserInputError as e:
    _exit_with(str(e))
  except NonFiniteLossError as e:
    _exit_with(f'{e}; the last checkpoint in the workdir is kept')
  except Preempted as e:
    print(str(e), file=sys.stderr)  # A clean stop: exit status 0.


def define_experiment(default_config: str, train_and_evaluate: Callable[..., object]) -> Callable:
  """Defines an entry point's flags and returns its `main` for `absl.app.run`.

  Flags: --config (see `define_config_flag`), --workdir, --resume and the
  multi-process flags; with absl's logging flags they are the calling module's key
  flags, so its --help lists them. `main` calls `train_and_evaluate(config,
  workdir, resume, log=log)` through `run`.

  Args:
    default_config: the default config file; a relative path is resolved from
      the repository root (the folder holding the caller's top-level package).
    train_and_evaluate: the experiment's training function.
  """
  help_name, program, root = _caller_module(1)
  config = define_config_flag(default_config, root)
  workdir = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and reports.')
  resume = flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in --workdir.')
  for name in _EXPERIMENT_FLAGS:
    if name in flags.FLAGS:
      flags.FLAGS.register_key_flag_for_module(help_name, flags.FLAGS[name])

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    run(
      lambda: train_and_evaluate(config.value, workdir.value, resume.value, log=log),
      program_name=program,
    )

  return main
