r"""Per-device memory of experiments/seq2seq/configs/large.py's train step under fsdp.

Run (on the build machine: the devices are forced CPU devices, the step is compiled,
never run, and XLA:CPU's buffer assignment stands in for an accelerator's):
  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
      python -m benchmarks.large_memory
  ... --scale=16 --layer_scale=4      # a scaled-down copy (tests/workers/ uses it)

The config's train step (bfloat16 compute, float32 state, remat of every layer) is
lowered with abstract arguments (`jax.ShapeDtypeStruct`s carrying the DataParallel
driver's fsdp shardings) and compiled; `compiled.memory_analysis()` gives the bytes
each device holds: arguments (its shard of the state, its part of the batch), outputs
(the new state's shard, aliased to the donated arguments), temporaries (activations,
gradients, collectives' buffers). It prints them as a table and, last, one JSON line.
"""

import argparse
import dataclasses
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from experiments.seq2seq.configs import large
from research.data import tokenizers
from research.models import transformer
from research.tasks import seq2seq
from research.train import optimizers
from research.train import parallel
from research.train import settings
from research.train import state as state_lib
from research.train import steps

CHIP_BYTES = 16 * 2**30  # The accelerator memory the full-size step must fit per device.


@dataclasses.dataclass(frozen=True)
class Setup:
  """The large config, optionally scaled down.

  Attributes:
    scale: D, F and the global batch are divided by it (heads by it too, down to 1).
    layer_scale: encoder and decoder depths are divided by it.
  """

  scale: int = 1
  layer_scale: int = 1

  @property
  def config(self) -> Any:
    c = large.get_config()
    m = c.model
    m.emb_dim //= self.scale
    m.mlp_dim //= self.scale
    m.num_heads = max(1, m.num_heads // self.scale)
    m.num_encoder_layers //= self.layer_scale
    m.num_decoder_layers //= self.layer_scale
    c.batch_size //= self.scale
    return c

  def model_config(self) -> transformer.TransformerConfig:
    c = self.config
    return settings.model_settings(
      transformer.TransformerConfig,
      c.model,
      input_vocab_size=tokenizers.ByteTokenizer().size,
      output_vocab_size=tokenizers.ByteTokenizer().size,
      max_input_length=c.translate.max_input_length,
      max_target_length=c.translate.max_target_length,
    )

  def budget_bytes(self) -> float:
    """CHIP_BYTES scaled down as the parameter count is."""
    full = transformer.num_params(Setup().model_config())
    return CHIP_BYTES * transformer.num_params(self.model_config()) / full


def _abstract(tree, shardings):
  return jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
  )


def compile_train_step(setup: Setup, devices: list[Any] | None = None):
  """The large config's train step compiled for `devices` (default: all) under fsdp.

  Returns:
    (compiled step, abstract state with its shardings).
  """
  c, cfg = setup.config, setup.model_config()
  module = transformer.Transformer(cfg)
  loss_fn = seq2seq.make_loss_fn(module)
  driver = parallel.DataParallel(
    loss_fn, devices=devices, fsdp=c.fsdp, fsdp_min_size=c.fsdp_min_size
  )
  tx = optimizers.make_optimizer(settings.optimizer_config(c.optimizer, total_steps=100_000))
  src = jnp.zeros((1, cfg.max_input_length), jnp.int32)
  tgt = jnp.zeros((1, cfg.max_target_length), jnp.int32)
  init = lambda rng: module.init({'params': rng}, src, tgt, train=False)['params']
  abstract = state_lib.abstract_train_state(init, module.apply, tx)
  state = _abstract(abstract, driver.state_sharding(abstract))
  rows = NamedSharding(driver.mesh, P(parallel.BATCH_AXES))
  b = c.batch_size
  batch = {
    'inputs': jax.ShapeDtypeStruct((b, cfg.max_input_length), jnp.int32, sharding=rows),
    'targets': jax.ShapeDtypeStruct((b, cfg.max_target_length), jnp.int32, sharding=rows),
    'mask': jax.ShapeDtypeStruct((b,), jnp.float32, sharding=rows),
  }
  # The config's micro-batches (0: automatic, 1 on an accelerator) bound the activations.
  microbatches = c.microbatches or 1
  step = jax.jit(
    functools.partial(steps.train_step, loss_fn=loss_fn, microbatches=microbatches),
    donate_argnums=0,
    out_shardings=(driver.state_sharding(abstract), driver.replicated),
  )
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=driver.replicated)
  return step.lower(state, batch, rng).compile(), state


def memory_report(setup: Setup, devices: list[Any] | None = None) -> dict[str, Any]:
  """Per-device bytes of the compiled train step, and the state's bytes.

  Returns:
    a dict: num_params, num_devices, state_bytes (all devices together),
    state_bytes_per_device (the largest shard sum), argument/output/temp/alias/total
    bytes per device (`memory_analysis`; total = arguments + outputs + temps -
    aliased), budget_bytes (`Setup.budget_bytes`).
  """
  compiled, state = compile_train_step(setup, devices)
  mem = compiled.memory_analysis()
  leaves = jax.tree.leaves(state)
  num_devices = len(devices or jax.devices())
  per_device = [0] * num_devices
  for leaf in leaves:
    shard = leaf.sharding.shard_shape(leaf.shape)
    nbytes = int(np.prod(shard, dtype=np.int64)) * leaf.dtype.itemsize
    for i in range(num_devices):
      per_device[i] += nbytes
  args, outs = mem.argument_size_in_bytes, mem.output_size_in_bytes
  temps, alias = mem.temp_size_in_bytes, mem.alias_size_in_bytes
  return {
    'num_params': transformer.num_params(setup.model_config()),
    'num_devices': num_devices,
    'state_bytes': sum(leaf.size * leaf.dtype.itemsize for leaf in leaves),
    'state_bytes_per_device': max(per_device),
    'argument_bytes': args,
    'output_bytes': outs,
    'temp_bytes': temps,
    'alias_bytes': alias,
    'total_bytes': args + outs + temps - alias,
    'budget_bytes': setup.budget_bytes(),
  }


def _table(report: dict[str, Any]) -> str:
  gib = lambda n: f'{n / 2**30:.3f} GiB'
  rows = [
    ('parameters', f'{report["num_params"]:,}'),
    ('devices', str(report['num_devices'])),
    ('state, all devices', gib(report['state_bytes'])),
    ('state per device', gib(report['state_bytes_per_device'])),
    ('arguments per device', gib(report['argument_bytes'])),
    ('outputs per device', gib(report['output_bytes'])),
    ('temporaries per device', gib(report['temp_bytes'])),
    ('aliased (donated) per device', gib(report['alias_bytes'])),
    ('total per device', gib(report['total_bytes'])),
    ('budget per device', gib(report['budget_bytes'])),
  ]
  return '\n'.join(['| quantity | value |', '|---|---|'] + [f'| {a} | {b} |' for a, b in rows])


def main(argv: list[str] | None = None) -> None:
  """Prints the table and the JSON line for the --scale / --layer_scale copy."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--scale', type=int, default=1)
  parser.add_argument('--layer_scale', type=int, default=1)
  args = parser.parse_args(argv)
  report = memory_report(Setup(args.scale, args.layer_scale))
  print(_table(report))
  print(json.dumps(report))


if __name__ == '__main__':
  main()
