r"""Train a prompt-conditioned DDPM, write sample grids, report sample quality.

  python -m experiments.ddpm.main --config=experiments/ddpm/configs/default.py \
      --workdir=runs/ddpm [--resume] [--config.model.widths='(32,64,64)' \
      --config.schedule=cosine --config.num_diffusion_steps=1000 \
      --config.sampler=ddpm --config.sample_steps=50 --config.guidance_scale=3 ...]
"""

import functools
import os

from absl import app

from research import cli
from research import families

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'default.py')
main = cli.define_experiment(DEFAULT_CONFIG, functools.partial(families.train_and_evaluate, 'ddpm'))

if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
