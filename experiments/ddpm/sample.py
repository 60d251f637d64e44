r"""Sample a trained DDPM run: a PNG with a row of samples per prompt.

  python -m experiments.ddpm.sample --workdir=runs/ddpm --prompt='a thick seven' \
      [--prompt='a slanted two' --num_samples=8 --output=samples.png --step=N --seed=0]

The run's sampler, sampling steps and guidance scale are used, with the parameter
average it samples with; the newest checkpoint unless --step names one.
"""

import sys

from absl import app
from absl import flags

from research import cli
from research.errors import UserInputError
from research.families import loaded_run

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory of a trained DDPM.', required=True)
_PROMPT = flags.DEFINE_multi_string(
  'prompt', None, 'A prompt (repeat for more rows).', required=True
)
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 8, 'Samples per prompt.', lower_bound=1)
_OUTPUT = flags.DEFINE_string('output', 'samples.png', 'The PNG to write.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the newest).')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.setup_logging('sample')
  try:
    loaded_run.write_sample_grid(
      _WORKDIR.value,
      _PROMPT.value,
      _OUTPUT.value,
      per_prompt=_NUM_SAMPLES.value,
      step=_STEP.value,
      seed=_SEED.value,
      log=cli.log,
    )
  except UserInputError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
