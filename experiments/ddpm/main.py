r"""Train a prompt-conditioned DDPM, write sample grids, report sample quality.

  python -m experiments.ddpm.main --config=experiments/ddpm/configs/default.py \
      --workdir=runs/ddpm [--resume] [--config.model.widths='(32,64,64)' \
      --config.schedule=cosine --config.num_diffusion_steps=1000 \
      --config.sampler=ddpm --config.sample_steps=50 --config.guidance_scale=3 ...]
"""

from absl import app
from absl import flags

from research import cli
from research.recipes import ddpm

_CONFIG = cli.define_config_flag('experiments/ddpm/configs/default.py')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics, '
                               'sample grids and reports.')
_RESUME = flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in '
                            '--workdir.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.run(lambda: ddpm.train_and_evaluate(_CONFIG.value, _WORKDIR.value, _RESUME.value))


if __name__ == '__main__':
  app.run(main)
