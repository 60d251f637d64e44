"""What every experiment entry point shares: the config flag and clean failure.

Entry points call `define_config_flag` at import and `run` from `main`; nothing
here runs at import of `research`.
"""

import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from research.errors import NonFiniteLossError
from research.errors import Preempted
from research.errors import UserInputError
from research.train import distributed


def define_config_flag(default: str, help_text: str = 'Experiment config file.'):
  """Defines --config (an ml_collections config file, locked against new keys) and
  the multi-process flags (--coordinator_address, --num_processes, --process_id,
  --distributed_auto) that `run` acts on.

  ml_collections reads the --config.* overrides already while the flag is defined;
  an override naming a field that does not exist ends the program with one line.

  Returns:
    the flag holder; `.value` is the ConfigDict after parsing.
  """
  flags.DEFINE_string('coordinator_address', '', 'HOST:PORT of process 0, for a '
                      'multi-process run.')
  flags.DEFINE_integer('num_processes', 1, 'Processes in a multi-process run.')
  flags.DEFINE_integer('process_id', 0, 'This process\'s index in [0, num_processes).')
  flags.DEFINE_bool('distributed_auto', False, 'Join a multi-process run configured by '
                    'the cluster environment (SLURM, Cloud TPU).')
  try:
    return config_flags.DEFINE_config_file('config', default, help_text,
                                           lock_config=True)
  except (AttributeError, KeyError) as e:
    overrides = ' '.join(a.split('=')[0] for a in sys.argv[1:]
                         if a.startswith('--config.'))
    sys.exit(f'error: the config has no such field ({overrides}): '
             f'{str(e).strip(chr(34))}')


def log(message: str) -> None:
  """Prints on the primary process only (every process runs the same program)."""
  if distributed.is_primary():
    print(message, flush=True)


def run(train: Callable[[], object]) -> None:
  """Joins a multi-process job if flags say so, then calls `train()`; user mistakes
  and numerical failure end with one line, exit 1.

  A run stopped by SIGTERM/SIGINT (after checkpointing) exits 0 with one line.
  """
  if not flags.FLAGS['verbosity'].present:
    # Orbax and tfds log every step at INFO; show warnings unless -v asks for more.
    logging.set_verbosity(logging.WARNING)
  try:
    distributed.initialize(flags.FLAGS.coordinator_address, flags.FLAGS.num_processes,
                           flags.FLAGS.process_id, flags.FLAGS.distributed_auto)
    train()
  except UserInputError as e:
    sys.exit(f'error: {e}')
  except NonFiniteLossError as e:
    sys.exit(f'error: {e}; the last checkpoint in the workdir is kept')
  except Preempted as e:
    print(str(e), file=sys.stderr)  # A clean stop: exit status 0.


def define_experiment(default_config: str,
                      train_and_evaluate: Callable[..., object]) -> Callable:
  """Defines an entry point's flags and returns its `main` for `absl.app.run`.

  Flags: --config (see `define_config_flag`), --workdir, --resume and the
  multi-process flags. `main` calls `train_and_evaluate(config, workdir, resume,
  log=log)` through `run`.
  """
  config = define_config_flag(default_config)
  workdir = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics '
                                'and reports.')
  resume = flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in '
                             '--workdir.')

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    run(lambda: train_and_evaluate(config.value, workdir.value, resume.value, log=log))
  return main
