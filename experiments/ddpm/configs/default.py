r"""Prompt-conditioned DDPM on the offline MNIST digits (28x28, 4,000 training digits).

Run (~25 minutes of training on 2 CPU cores, then ~12 minutes of judging):
  python -m experiments.ddpm.main --config=experiments/ddpm/configs/default.py \
      --workdir=runs/ddpm
  ... --config.dataset=mnist | fashion_mnist     # real tfds sets (network)
  ... --config.dataset=cifar10 --config.image_size=32 --config.image_channels=3 \
      --config.prompts.attributes='()' \
      --config.prompts.templates="('a photo of a {attributes} {name}', '{attributes} {name}')"

Prompts are free text over a grammar (`prompts` below): six templates, each digit
by word or numeral, and the words of the attributes measured on each training image
(thin / thick, small / large, upright / slanted: its class's low or high third).
Expect: legible digits in samples_final.png (one row per digit, "a handwritten
zero" .. "a handwritten nine") and samples_showcase.png (one row per showcase
prompt). Measured from clean clones on a 2-core AMD EPYC (`scripts/reproduce.sh
--experiments=ddpm`: seeds 0 / 1, 56 epochs, 24.0 / 22.7 minutes of training, 35.9 / 34.6
in all; one judge for both): 95.9% / 95.0% of 1,000 samples prompted through the
training templates are their digit; 89.4% / 83.6% of 500 prompted by paraphrases never
trained on; the asked attribute followed (measured on the sample: the asked side of
its class's training median) by 89.5 / 92.0% (thickness), 77.0 / 78.0% (size), 68.0 /
71.5% (slant) of 200 samples each, chance 50%; Fréchet distance 17.0 / 21.1 (median
19.0) over the judge's fc1 features (344 of 512 vary; real train vs test 4.6); about
270 ms per image (DDIM-50, guidance 1.75). On seed 0's model guidance 1.5 / 1.75 / 2
gave 93.6 / 95.9 / 97.2% digits at a Fréchet distance of 14.1 / 17.0 / 21.3, and
DDIM-100 at guidance 2 97.1% at 21.1 (twice the sampling time).
describe_rate trades attributes against sample quality: with 1.0 (every prompt may
name attributes, each measured one at 0.5; commit 296a851, guidance 2, otherwise the same) the
attributes were followed by 95.5% / 93.0% / 97.5% at a Fréchet distance of 24.7
(97.5% digits, 93.6% paraphrases), as attribute-free prompts then come mostly from
typical images. Guidance trades digit accuracy against the distance: on an earlier
model (class prompts only, 38 epochs) guidance 1 / 2 / 3 gave 80.9% / 98.0% / 99.4%
of samples right at a Fréchet distance of 24.6 / 20.9 / 44.3.
"""

import ml_collections

from experiments import shared_config

from experiments.cnn.configs import default as cnn_default


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config; every field can be overridden with --config.X=..."""
  c = ml_collections.ConfigDict()
  c.dataset = 'mnist_offline'  # tfds name: 'mnist_offline', 'mnist', 'fashion_mnist', 'cifar10'.
  c.data_dir = ''  # tfds data directory ('' = tfds's default).
  c.train_split = 'train'  # Split the DDPM (and the judging classifier) trains on.
  c.test_split = 'test'  # Real images the Fréchet distance compares samples with.
  c.image_size = 28  # Side in pixels; a multiple of 2 ** (len(model.widths) - 1).
  c.image_channels = 1  # 1 for MNIST-like sets, 3 for cifar10.
  shared_config.add_training_fields(
      c, num_epochs=56, batch_size=64, eval_batch_size=500,
      eval_every_epochs=28)  # eval: a sample grid, samples_step<N>.png.

  c.schedule = 'linear'  # Noise schedule: 'linear' (1e-4..0.02, DDPM) or 'cosine'.
  c.num_diffusion_steps = 1000  # T.
  c.cond_drop_rate = 0.1  # Share of training prompts replaced by the null embedding.
  c.ema_decay = 0.995  # EMA of the parameters used for sampling.
  c.sampler = 'ddim'  # 'ddim' (deterministic, sample_steps) or 'ddpm' (ancestral, all T).
  c.sample_steps = 50  # DDIM denoising steps.
  c.guidance_scale = 1.75  # Classifier-free guidance: 0 unconditional, 1 conditional.
  c.samples_per_prompt = 10  # Columns of the sample grids (also the sampling batch / prompts).
  # Samples per class for digit accuracy and the Fréchet distance, prompted through
  # the training templates: 10 x 100 = 1,000 samples, more than the judge's 512
  # features, so the Fréchet distance's covariances are full rank.
  c.eval_samples_per_prompt = 100
  c.paraphrase_samples_per_class = 50  # Samples per class prompted by paraphrases (0: skip).
  c.attribute_samples_per_prompt = 10  # Per attribute word and class ('a thin seven'; 0: skip).

  # Prompts: a grammar of templates x class names x measured attributes; each training
  # image gets a fresh prompt per step (research/data/prompt_grammar.py).
  c.prompts = ml_collections.ConfigDict()
  c.prompts.templates = (  # Training templates; {attributes} may come out empty.
      'a handwritten {attributes} {name}', '{attributes} {name}', 'a {attributes} {name}',
      'the {attributes} digit {name}', 'a {attributes} number {name}',
      'an image of a {attributes} {name}')
  c.prompts.paraphrases = (  # Never trained on: judged for digit accuracy only.
      'draw a {attributes} {name}', 'the number {name}, {attributes}',
      'please write the digit {name} by hand {attributes}', 'a picture showing {attributes} {name}',
      'an image of the {attributes} handwritten number {name}')
  c.prompts.numerals = True  # Digits are named by word and numeral ('seven', '7').
  # Measured on every training image; a class's low / high third is named by a word:
  # thickness thin / thick, size small / large, slant upright / slanted.
  c.prompts.attributes = ('thickness', 'size', 'slant')
  # Share of prompts that may name attributes; the others name none whatever the image,
  # so 'a seven' stands for every seven, not only the typical ones.
  c.prompts.describe_rate = 0.5
  c.prompts.attribute_rate = 0.5  # In those, the chance each measured attribute is named.
  c.prompts.unknown_word_rate = 0.05  # Words hidden as unknown in training (robustness).
  c.prompts.showcase = (  # Free-form prompts of samples_showcase.png, one row each.
      '7', 'the digit seven', 'a thick seven', 'a thin seven', 'a slanted one',
      'an upright one', 'a large zero', 'a small zero', 'draw a 4', 'a thick, slanted two')

  c.model = ml_collections.ConfigDict()
  c.model.widths = (32, 64, 64)  # U-Net channels per level (28 -> 14 -> 7 pixels).
  c.model.num_res_blocks = 1  # Residual blocks per level and direction.
  c.model.attention_resolutions = (7,)  # Sides at which blocks add self-attention.
  c.model.num_heads = 4  # Attention heads.
  c.model.num_groups = 8  # Group-norm groups.
  c.model.dropout_rate = 0.0  # Dropout inside residual blocks.
  c.model.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16'.

  c.text = ml_collections.ConfigDict()
  c.text.max_length = 12  # Longest prompt in words, plus one for the end token.
  c.text.emb_dim = 64  # Prompt encoder width = conditioning vector width.
  c.text.num_heads = 4  # Prompt encoder attention heads.
  c.text.num_layers = 2  # Prompt encoder transformer layers.
  c.text.mlp_dim = 128  # Prompt encoder feed-forward width.

  c.optimizer = shared_config.optimizer_section(
      name='adam', learning_rate=1e-3, weight_decay=0.0, schedule='warmup_cosine',
      warmup_steps=100, clip_grad_norm=1.0)

  # The judge: the seed's CNN (see the CNN config) trained on the DDPM's own data,
  # splits and image size (those fields are taken from above). Its seed is its own
  # (classifier.seed), so every DDPM seed is judged by the same classifier.
  c.classifier = cnn_default.get_config()
  c.classifier.num_epochs = 3  # Short: 28x28 digits classify well after 3 epochs.
  c.classifier.batch_size = 64  # Training (and feature-extraction) batch.
  # Trained as the judge of the README's DDPM figures was: 2 step micro-batches on
  # CPU, whole-batch convolutions (the CNN's own default now cuts them into parts).
  c.classifier.microbatches = 0
  c.classifier.model.conv_parts = 1
  return c
