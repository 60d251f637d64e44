r"""Train a prompt-conditioned DDPM, write sample grids, report sample quality.

  python -m experiments.ddpm.main --config=experiments/ddpm/configs/default.py \
      --workdir=runs/ddpm [--resume] [--config.model.widths='(32,64,64)' \
      --config.schedule=cosine --config.num_diffusion_steps=1000 \
      --config.sampler=ddpm --config.sample_steps=50 --config.guidance_scale=3 ...]
"""

from absl import app

from research import cli
from research.recipes import ddpm

main = cli.define_experiment('experiments/ddpm/configs/default.py',
                             ddpm.train_and_evaluate)

if __name__ == '__main__':
  app.run(main)
