"""Tiny CNN set-ups shared by the training-core tests, built by the CNN family, and
the subprocess runner of the multi-device workers (tests/workers/)."""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np

from experiments.cnn.configs import default as cnn_default
from research.data import image_classification
from research.families import cnn
from research.train import optimizers


def xla_flags(device_count: int | None = None) -> str:
  """XLA_FLAGS for a test's subprocess: this process's flags (scripts/test.sh sets
  quick-compile ones) with the forced host device count replaced by `device_count`
  (None: no forced count, one CPU device)."""
  flags = re.sub(
    r'--xla_force_host_platform_device_count=\S+', '', os.environ.get('XLA_FLAGS', '')
  ).split()
  if device_count is not None:
    flags.append(f'--xla_force_host_platform_device_count={device_count}')
  return ' '.join(flags)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_worker(module: str, *args: str, devices: int = 8, timeout: int = 600):
  """Runs `python -m module *args` on `devices` forced CPU devices and returns the
  JSON its last line of output holds (the workers print their results so)."""
  env = dict(os.environ, XLA_FLAGS=xla_flags(devices), JAX_PLATFORMS='cpu')
  out = subprocess.run(
    [sys.executable, '-m', module, *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


SIZE = 8  # Image side: the CNN pools twice, so fc1 sees 128 * 2 * 2 features.


def tiny_images(n=32, seed=0) -> image_classification.ImageDataset:
  """n random uint8 grayscale SIZE x SIZE images with labels in [0, 10)."""
  rng = np.random.default_rng(seed)
  return image_classification.ImageDataset(
    rng.integers(0, 256, (n, SIZE, SIZE, 1), dtype=np.uint8),
    rng.integers(0, 10, n).astype(np.int32),
    num_classes=10,
    class_names=tuple(map(str, range(10))),
    name='random',
    version='0',
  )


def tiny_data(n=32, seed=0):
  """`tiny_images(n, seed)` as arrays: {'image' uint8 (n, 8, 8, 1), 'label' int32 (n,)}."""
  return tiny_images(n, seed).arrays()


def tiny_classifier(dropout_rate=0.5, augmentation=True, optimizer=None, **model):
  """(module, loss_fn, state) of the CNN family: 16 wide, 8x8 inputs, 10 classes;
  `model` overrides more fields of the config's model section."""
  c = cnn_default.get_config()
  c.lock()
  # Whole-batch convolutions unless asked (parts cost compile time, not coverage).
  section = dict(hidden_dim=16, dropout_rate=dropout_rate, conv_parts=1) | model
  c.update(image_size=SIZE, model=section)
  if not augmentation:
    c.augment.update(max_rotation_deg=0.0, brightness=0.0, contrast=0.0)
  family = cnn.CNNClassifier(c, datasets=(tiny_images(), tiny_images(seed=1)))
  model = family.build(family.load_data())
  state = model.init_state(
    optimizers.make_optimizer(optimizer or optimizers.OptimizerConfig()), jax.random.key(0)
  )
  return model.module, model.loss_fn, state
