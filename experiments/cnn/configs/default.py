r"""The seed's CNN recipe on the offline MNIST digits (the README's main job).

Run:
  scripts/train.sh                       # = python -m experiments.cnn.main \
                                         #     --config=experiments/cnn/configs/default.py
  scripts/train.sh --config.dataset=mnist --workdir=runs/mnist   # real tfds MNIST

Expect: about 97-98% test accuracy on the 1,000 held-out digits after 5 epochs
(4,000 training digits, 48x48, gray repeated to 3 channels).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config; every field can be overridden with --config.X=..."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # PRNG seed: parameters, dropout, augmentation and data order.
  c.dataset = 'mnist_offline'  # tfds name; 'mnist', 'visual_domain_decathlon/gtsrb', ...
  c.data_dir = ''  # tfds data directory ('' = tfds's default, ~/tensorflow_datasets).
  c.train_split = 'train'  # tfds split to train on (slicing allowed: 'train[:10%]').
  c.test_split = 'test'  # tfds split for the final report.
  c.image_size = 48  # Images are resized to image_size x image_size (multiple of 4).
  c.image_channels = 3  # Model input channels; grayscale is repeated to this.
  c.num_epochs = 5  # Passes over the training split.
  c.batch_size = 64  # Global training batch (all devices together).
  c.eval_batch_size = 256  # Global evaluation batch.
  c.steps_per_dispatch = 1  # Train steps per compiled call (traced back to back).
  c.driver = 'jit'  # Data parallelism: 'jit' (sharded mesh) or 'pmap'.
  c.microbatches = 0  # Independent parts per device train batch (0: auto: 2 on CPU, else 1).
  c.fsdp = False  # jit only: shard parameters and optimizer state over all devices.
  c.progress = True  # tqdm progress bar per epoch.
  c.checkpoint_every_steps = 0  # Also checkpoint every N steps (0: only per epoch).

  c.model = ml_collections.ConfigDict()
  c.model.hidden_dim = 512  # Width of fc1.
  c.model.dropout_rate = 0.5  # Dropout before fc1 and before fc2.
  c.model.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16' (params float32).

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'adam'  # 'adam' (coupled L2 decay, as PyTorch), 'adamw', 'sgd', 'rmsprop'.
  c.optimizer.learning_rate = 1e-3  # Peak learning rate.
  c.optimizer.weight_decay = 1e-4  # Weight decay coefficient.
  c.optimizer.schedule = 'constant'  # 'constant' or 'warmup_cosine'.
  c.optimizer.warmup_steps = 0  # Warm-up steps for 'warmup_cosine'.
  c.optimizer.total_steps = 0  # Schedule length for 'warmup_cosine' (0 = whole run).
  c.optimizer.momentum = 0.9  # SGD momentum.
  c.optimizer.clip_grad_norm = 0.0  # Global-norm gradient clipping (0 = off).
  c.optimizer.skip_nonfinite = False  # Skip NaN/inf updates instead of stopping.

  c.augment = ml_collections.ConfigDict()
  c.augment.max_rotation_deg = 10.0  # Random rotation within +-this, training only.
  c.augment.brightness = 0.2  # Brightness jitter, training only.
  c.augment.contrast = 0.2  # Contrast jitter, training only.
  c.augment.mean = (0.1307,)  # Per-channel normalisation mean (one value: all channels).
  c.augment.std = (0.3081,)  # Per-channel normalisation std.
  return c
