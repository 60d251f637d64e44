"""The trainer's state under FSDP on 8 forced CPU devices, as each device holds it.

Run by tests/train/test_sharded_state.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8:

  python -m tests.workers.fsdp_state_worker WORKDIR

Trains the tiny CNN family one epoch with fsdp in WORKDIR (a checkpoint at its end),
then prints one JSON line: for the state the trainer initialises and for the state it
restores on `--resume`, each array's global size and the sizes of the shards on each
device; and the compiled init program's per-device output bytes against the state's.
"""

import json
import os
import sys

import jax
import numpy as np

from experiments.cnn.configs import default as cnn_default
from research.families import cnn
from research.train import optimizers
from research.train import state as state_lib
from research.train import trainer
from tests import helpers

MIN_SIZE = 1024  # fsdp_min_size: the convolution kernels and fc1 are sharded.


def family():
  c = cnn_default.get_config()
  c.lock()
  c.update(
    image_size=helpers.SIZE,
    num_epochs=1,
    batch_size=16,
    eval_batch_size=16,
    steps_per_dispatch=1,
    progress=False,
    fsdp=True,
    fsdp_min_size=MIN_SIZE,
    model=dict(hidden_dim=16, dropout_rate=0.0, conv_parts=1),
  )
  return cnn.CNNClassifier(c, datasets=(helpers.tiny_images(), helpers.tiny_images(seed=1)))


def shard_sizes(state) -> dict[str, dict]:
  """Per array: its size and the size of each device's shard of it."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    shards = {str(s.device.id): int(np.prod(s.data.shape)) for s in leaf.addressable_shards}
    out[jax.tree_util.keystr(path)] = {'size': int(leaf.size), 'shards': shards}
  return out


def initial_state(workdir: str, resume: bool):
  """The state `trainer` starts from (initialised, or restored from `workdir`)."""
  fam = family()
  run = trainer._prepare(fam, workdir, lambda _: None)  # pylint: disable=protected-access
  key = jax.random.split(jax.random.key(run.settings.seed))[0]
  state = trainer._initial_state(fam, run, resume, key)  # pylint: disable=protected-access
  run.checkpointer.close()
  run.writer.close()
  return run, state, key


def init_program_bytes(run, key) -> dict[str, int]:
  """The compiled init program's output bytes per device, and the whole state's."""
  m = run.model
  tx = m.optimizer(optimizers.make_optimizer(run.optimizer))
  init = state_lib.train_state_init(m.init_params, m.module.apply, tx)
  abstract = jax.eval_shape(init, key)
  compiled = run.driver.init_program(init, abstract).lower(key).compile()
  leaves = jax.tree.leaves(abstract)
  sharded = [x for x in leaves if x.size >= MIN_SIZE]
  return {
    'output_per_device': int(compiled.memory_analysis().output_size_in_bytes),
    'total': sum(x.size * x.dtype.itemsize for x in leaves),
    'sharded_total': sum(x.size * x.dtype.itemsize for x in sharded),
  }


def main():
  workdir = sys.argv[1]
  assert len(jax.devices()) == 8
  run, initialised, key = initial_state(os.path.join(workdir, 'fresh'), resume=False)
  init_sizes, program = shard_sizes(initialised), init_program_bytes(run, key)
  del initialised
  trained = os.path.join(workdir, 'trained')
  trainer.train_and_evaluate(family(), trained, log=lambda _: None)
  _, restored, _ = initial_state(trained, resume=True)
  print(
    json.dumps(
      {
        'init': init_sizes,
        'restored': shard_sizes(restored),
        'restored_step': int(restored.step),
        'program': program,
      }
    )
  )


if __name__ == '__main__':
  main()
