r"""A seconds-long smoke run of the DDPM experiment (used by the tests).

  python -m experiments.ddpm.main --config=experiments/ddpm/configs/tiny.py \
      --workdir=/tmp/ddpm_tiny

Expect: it finishes in well under a minute; the numbers mean nothing.
"""

from experiments.ddpm.configs import default


def get_config():
  """The default config, shrunk: tiny U-Net and data, few steps."""
  c = default.get_config()
  c.train_split = 'train[:64]'  # Two batches.
  c.test_split = 'test[:20]'  # A few real digits for the Fréchet distance.
  c.image_size = 8  # 8 -> 4 pixels.
  c.num_epochs = 2  # Two epochs: one mid-run grid, one final.
  c.batch_size = 32  # Small batches.
  c.num_diffusion_steps = 20  # Short chain.
  c.sample_steps = 4  # Few DDIM steps.
  c.samples_per_prompt = 2  # 10 x 2 grid.
  c.eval_every_epochs = 1  # Exercise the mid-run grid.
  c.eval_samples_per_prompt = 3  # 30 judged samples.
  c.paraphrase_samples_per_class = 1  # 10 paraphrased samples.
  c.attribute_samples_per_prompt = 1  # 3 attributes x 10 classes x 2 words.
  c.progress = False  # No progress bars in logs.
  c.model.widths = (8, 16)  # Two tiny levels.
  c.model.attention_resolutions = (4,)  # Attention at 4x4.
  c.model.num_heads = 2  # Few heads.
  c.model.num_groups = 4  # Few groups.
  c.text.emb_dim = 16  # Tiny prompt encoder.
  c.text.mlp_dim = 32  # Tiny prompt encoder.
  c.text.num_layers = 1  # One layer.
  c.optimizer.warmup_steps = 1  # Short warm-up.
  c.classifier.num_epochs = 1  # One epoch of judge training.
  c.classifier.model.hidden_dim = 16  # Tiny judge.
  return c
