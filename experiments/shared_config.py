"""The config fields every experiment shares, defined once.

`add_training_fields` puts the run, loop, checkpointing and parallelism fields at the
top level of an experiment's ConfigDict (so `--config.fsdp=True`,
`--config.driver=pmap`, `--config.checkpoint_every_steps=N` work for every
experiment); `optimizer_section` is its `optimizer` section. The library reads them
through `research.train.settings`, which validates every value.
"""

import ml_collections


def add_training_fields(c: ml_collections.ConfigDict, **defaults) -> None:
  """Adds the shared top-level fields to `c`, with per-experiment `defaults`."""
  c.seed = 0  # PRNG seed: parameters, dropout, data order and sampling.
  c.num_epochs = 1  # Passes over the training data (0: train num_steps steps instead).
  c.num_steps = 0  # Optimiser steps, used when num_epochs is 0.
  c.batch_size = 64  # Global training batch (all devices of all processes together).
  c.eval_batch_size = 256  # Global evaluation batch.
  c.eval_every_steps = 0  # Periodic evaluation (family-specific) every N steps (0: off).
  c.eval_every_epochs = 0  # Periodic evaluation every N epochs (0: off).
  c.checkpoint_every_steps = 0  # Checkpoint every N steps (0: off); always at the end and on stops.
  c.checkpoint_at_epoch_end = True  # Also checkpoint at every epoch end (resume loses < 1 epoch).
  c.checkpoint_at_eval = True  # Also checkpoint after each periodic evaluation.
  c.log_every_steps = 50  # Per-step scalars to TensorBoard/metrics.jsonl every N steps.
  c.steps_per_dispatch = 1  # Train steps per compiled call.
  c.max_train_seconds = 0.0  # Stop training after this long, then report (0: no limit).
  c.progress = True  # Progress bar on a terminal (a log line per interval otherwise).
  c.driver = 'jit'  # Data parallelism: 'jit' (sharded mesh) or 'pmap'.
  c.fsdp = False  # jit only: shard parameters and optimiser state over all devices.
  c.fsdp_min_size = 2**14  # Under fsdp, arrays with fewer elements stay replicated.
  c.microbatches = 0  # Independent parts per device train batch (0: auto: 2 on CPU, else 1).
  # Training input: 'device' (the split on the devices, gathered in the step), 'stream'
  # (host pipeline, batches streamed to the devices; jit driver) or 'auto' (device when
  # the split takes under a quarter of a device's memory, else stream).
  c.input_pipeline = 'device'
  # '' (off) or 'START:END': a jax.profiler trace of train steps START..END-1 on process 0
  # in WORKDIR/profile/, for TensorBoard's profile plugin.
  c.profile_steps = ''
  c.peak_tflops_per_device = 0.0  # Peak for MFU (0: by device kind and dtype; measured on CPU).
  _override(c, defaults)


def optimizer_section(**defaults) -> ml_collections.ConfigDict:
  """The `optimizer` section (research.train.optimizers.OptimizerConfig's fields)."""
  o = ml_collections.ConfigDict()
  o.name = 'adam'  # 'adam' (coupled L2 decay, as PyTorch), 'adamw', 'sgd', 'rmsprop'.
  o.learning_rate = 1e-3  # Peak learning rate.
  o.weight_decay = 1e-4  # Weight decay coefficient.
  o.schedule = 'constant'  # 'constant', 'warmup_cosine' or 'epoch_decay'.
  o.warmup_steps = 0  # Linear warm-up steps for 'warmup_cosine'.
  o.total_steps = 0  # Schedule length (0: the whole run).
  o.decay_rate = 0.5  # 'epoch_decay': factor per epoch after decay_after_epochs.
  o.decay_after_epochs = 1  # 'epoch_decay': epochs at the full rate first.
  o.momentum = 0.9  # SGD momentum.
  o.b1 = 0.9  # Adam's first-moment decay.
  o.b2 = 0.999  # Adam's second-moment decay.
  o.eps = 1e-8  # Adam's / RMSprop's epsilon.
  o.clip_grad_norm = 0.0  # Global-norm gradient clipping (0: off).
  o.skip_nonfinite = False  # Skip NaN/inf updates instead of stopping the run.
  _override(o, defaults)
  return o


def _override(section: ml_collections.ConfigDict, defaults) -> None:
  for key, value in defaults.items():
    if key not in section:  # A typo here would silently add a field.
      raise KeyError(f'no shared field {key!r}')
    section[key] = value
