r"""The seed's CNN recipe on the offline MNIST digits (the README's main job).

Run:
  scripts/train.sh                       # = python -m experiments.cnn.main \
                                         #     --config=experiments/cnn/configs/default.py
  scripts/train.sh --config.dataset=mnist --workdir=runs/mnist   # real tfds MNIST

Expect: about 97-98% test accuracy on the 1,000 held-out digits after 5 epochs
(4,000 training digits, 48x48, gray repeated to 3 channels).
"""

import ml_collections

from experiments import shared_config
from research.data import prepared_cache


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config; every field can be overridden with --config.X=..."""
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
  return c
