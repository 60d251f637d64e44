r"""The seed's CNN recipe on the offline MNIST digits (the README's main job).

Run:
  scripts/train.sh                       # = python -m experiments.cnn.main \
                                         #     --config=experiments/cnn/configs/default.py
  scripts/train.sh --config.dataset=mnist --workdir=runs/mnist   # real tfds MNIST

Expect: about 97-98% test accuracy on the 1,000 held-out digits after 5 epochs
(4,000 training digits, 48x48, gray repeated to 3 channels).

One accelerator host: --config=experiments/cnn/configs/default.py:gpu (or :tpu) trains
1,024 images per step in bfloat16 (`_size_for_accelerator`). Its figures are unmeasured
until a device run measures them.
"""

import ml_collections

from experiments import accelerator_sizes
from experiments import shared_config
from research.data import prepared_cache


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; every field can be overridden with --config.X=...

  Args:
    arg: the text after ':' in --config=...default.py:ARG: none for the CPU config,
      'gpu' or 'tpu' for one accelerator host.
  """
  platform = accelerator_sizes.platform(arg)
  c = ml_collections.ConfigDict()
  c.dataset = 'mnist_offline'  # tfds name; 'mnist', 'visual_domain_decathlon/gtsrb', ...
  c.data_dir = ''  # tfds data directory ('' = tfds's default, ~/tensorflow_datasets).
  # Resized splits are kept here, so later runs read them without TensorFlow ('': off;
  # default $RESEARCH_DATA_CACHE, else ~/.cache/research/prepared_images).
  c.data_cache_dir = prepared_cache.default_directory()
  c.train_split = 'train'  # tfds split to train on (slicing allowed: 'train[:10%]').
  c.test_split = 'test'  # tfds split for the final report.
  c.image_size = 48  # Images are resized to image_size x image_size (multiple of 4).
  c.image_channels = 3  # Model input channels; grayscale is repeated to this.
  shared_config.add_training_fields(c, num_epochs=5, batch_size=64, eval_batch_size=256)

  c.model = ml_collections.ConfigDict()
  c.model.hidden_dim = 512  # Width of fc1.
  c.model.dropout_rate = 0.5  # Dropout before fc1 and before fc2.
  c.model.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16' (params float32).
  # Parts of the batch convolved independently (0: automatic, 8 on CPU, else 1; the
  # step's automatic micro-batches are then 1, so fc1's matmuls see the whole batch).
  c.model.conv_parts = 0

  # The seed's Adam(lr=1e-3, weight_decay=1e-4), PyTorch's coupled L2 decay.
  c.optimizer = shared_config.optimizer_section(name='adam', learning_rate=1e-3, weight_decay=1e-4)

  c.augment = ml_collections.ConfigDict()
  c.augment.max_rotation_deg = 10.0  # Random rotation within +-this, training only.
  c.augment.brightness = 0.2  # Brightness jitter, training only.
  c.augment.contrast = 0.2  # Contrast jitter, training only.
  c.augment.mean = (0.1307,)  # Per-channel normalisation mean (one value: all channels).
  c.augment.std = (0.3081,)  # Per-channel normalisation std.
  if platform is not None:
    _size_for_accelerator(c)
  return c


def _size_for_accelerator(c: ml_collections.ConfigDict) -> None:
  """Sizes the CPU config `c` for one GPU or TPU host."""
  base_batch = c.batch_size
  accelerator_sizes.size_training_fields(c, batch_size=1024)
  c.model.dtype = 'bfloat16'  # The accelerators' fast matmul dtype; parameters stay float32.
  # Adam's square-root scaling for 16x the batch (1e-3 -> 4e-3), reached after a warm-up
  # of one epoch's steps (4,000 / 1,024 -> 4) and then cosine-decayed: a large step at
  # the start of a large-batch run diverges more easily.
  c.optimizer.learning_rate = accelerator_sizes.sqrt_scaled_learning_rate(
    c.optimizer.learning_rate, base_batch, c.batch_size
  )
  c.optimizer.schedule = 'warmup_cosine'
  c.optimizer.warmup_steps = 4
