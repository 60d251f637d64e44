"""experiments/seq2seq/configs/large.py: its parameter count, and what its fsdp train
step holds per device, from a scaled-down copy compiled (not run) on 8 forced CPU
devices in a subprocess (tests/workers/large_memory_worker.py)."""

import jax
import jax.numpy as jnp

from benchmarks import large_memory
from experiments.seq2seq.configs import large
from research.models import transformer
from tests import helpers

NUM_DEVICES = 8


def test_large_config_has_about_a_billion_parameters():
  cfg = large_memory.Setup().model_config()
  assert transformer.num_params(cfg) == 940_589_056
  # The layer arithmetic agrees with the model's own parameters (shapes only).
  model = transformer.Transformer(cfg)
  src = jnp.zeros((1, cfg.max_input_length), jnp.int32)
  tgt = jnp.zeros((1, cfg.max_target_length), jnp.int32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), src, tgt, train=False))
  assert sum(x.size for x in jax.tree.leaves(shapes)) == 940_589_056


def test_large_config_shards_and_rematerialises():
  c = large.get_config()
  assert c.fsdp and c.model.remat == 'full' and c.model.dtype == 'bfloat16'
  assert c.batch_size % NUM_DEVICES == 0


def test_scaled_down_step_fits_its_share_of_a_16gb_device():
  r = helpers.run_worker('tests.workers.large_memory_worker', devices=NUM_DEVICES, timeout=300)
  assert r['num_devices'] == NUM_DEVICES
  # Each device's arguments are its eighth of the state (the few small replicated
  # arrays, the batch and the key add little), not the whole state.
  share = r['state_bytes'] / NUM_DEVICES
  assert share <= r['state_bytes_per_device'] <= 1.1 * share, r
  assert r['argument_bytes'] <= 1.05 * r['state_bytes_per_device'], r
  # The donated state is updated in place.
  assert r['alias_bytes'] >= r['state_bytes_per_device'], r
  # Arguments, temporaries and outputs together within a 16 GB chip scaled down as
  # the parameter count is (activations shrink alike: D and the batch by 16).
  assert r['total_bytes'] <= r['budget_bytes'], r
