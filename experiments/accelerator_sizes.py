"""Sizing the experiment configs for one accelerator host: the ':gpu' / ':tpu' argument.

`--config=experiments/NAME/configs/default.py:gpu` (or `:tpu`) reaches the config's
`get_config(arg)`; `platform(arg)` checks it, and the config calls
`size_training_fields` and `sqrt_scaled_learning_rate` for what every family sizes
alike, then sizes its own model. Without an argument the configs are the CPU ones.
"""

import math

import ml_collections

PLATFORMS = ('gpu', 'tpu')
# Train steps per compiled call on an accelerator: one dispatch then covers several
# steps, so the host's per-call overhead is not paid every step. The step loop still
# cuts chunks at evaluation, checkpoint and epoch boundaries.
STEPS_PER_DISPATCH = 8


def platform(arg: str | None) -> str | None:
  """The accelerator a config argument names: None (the CPU config) or a `PLATFORMS` one.

  Raises:
    ValueError: `arg` is neither empty nor one of `PLATFORMS`.
  """
  if arg is None or arg == '':
    return None
  if arg not in PLATFORMS:
    raise ValueError(
      f'unknown config argument {arg!r}: use one of {", ".join(PLATFORMS)} '
      '(e.g. --config=experiments/cnn/configs/default.py:gpu), or none for the CPU config'
    )
  return arg


def size_training_fields(
  c: ml_collections.ConfigDict, *, batch_size: int, steps_per_dispatch: int = STEPS_PER_DISPATCH
) -> None:
  """Sets the shared training fields of `c` for one accelerator host.

  Args:
    c: a config with `shared_config.add_training_fields`' fields.
    batch_size: the global train batch that fills the device.
    steps_per_dispatch: train steps per compiled call.
  """
  c.batch_size = batch_size  # Fills a modern accelerator; the CPU sizes leave it idle.
  c.steps_per_dispatch = steps_per_dispatch  # See STEPS_PER_DISPATCH.
  # Device-resident data while the split fits a quarter of the device, else streamed.
  c.input_pipeline = 'auto'
  c.max_train_seconds = 0.0  # The CPU time budget does not apply: train every step.


def sqrt_scaled_learning_rate(base: float, base_batch: int, batch: int) -> float:
  """`base` times sqrt(batch / base_batch): Adam's square-root scaling for a larger batch
  (the gradient noise falls with the square root of the batch)."""
  return base * math.sqrt(batch / base_batch)
