"""Pieces every recipe shares: typed settings, starting or resuming a run, dtypes."""

import dataclasses
import json
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from research.errors import UserInputError
from research.train import checkpoint as checkpoint_lib
from research.train import distributed
from research.train import loop
from research.train import manifest
from research.train import metrics as metrics_lib
from research.train import optimizers
from research.train import state as state_lib

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str):
  """'float32' | 'bfloat16' -> the jnp dtype."""
  if name not in DTYPES:
    raise UserInputError(f'unknown dtype {name!r}: use one of {sorted(DTYPES)}')
  return DTYPES[name]


def to_dict(config: Any) -> dict[str, Any]:
  """A ConfigDict (or mapping) as plain, JSON-serialisable nested dicts."""
  if hasattr(config, 'to_dict'):
    config = config.to_dict()
  return json.loads(json.dumps(dict(config), default=str))


def optimizer_config(config: Mapping[str, Any], total_steps: int
                     ) -> optimizers.OptimizerConfig:
  """The OptimizerConfig from an experiment's `optimizer` section.

  A schedule length (`total_steps`) of 0 means: the whole run.
  """
  values = dict(config)
  if not values.get('total_steps'):
    values['total_steps'] = total_steps
  known = {f.name for f in dataclasses.fields(optimizers.OptimizerConfig)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise UserInputError(f'unknown optimizer settings {unknown}: allowed are {sorted(known)}')
  return optimizers.OptimizerConfig(**values)


def restore_if_resuming(checkpointer: checkpoint_lib.Checkpointer, state: Any,
                        resume: bool, log=print) -> Any:
  """Returns the newest restorable checkpointed state when `resume`, else `state`.

  Raises:
    UserInputError: if checkpoints exist but none fits the configured model.
  """
  if not resume:
    return state
  try:
    step, restored = checkpointer.restore_latest(state, log)
  except ValueError as e:
    raise UserInputError(f'no checkpoint in {checkpointer.directory} fits this config '
                         f'(another model or data set?): {e}') from None
  log('No checkpoint to resume from: starting from scratch.' if step is None else
      f'Resumed from the checkpoint at step {step}.')
  return restored


@dataclasses.dataclass
class Run:
  """A started run: its state on the devices and where its outputs go.

  Attributes:
    state: the train state, restored when resuming, placed by the driver.
    start_step: the optimiser step the run starts from.
    checkpointer: saves and restores the state in `<workdir>/checkpoints`.
    writer: metrics to `<workdir>/metrics.jsonl` and TensorBoard.
    param_counts: parameters per top-level module and 'total'.
  """
  state: Any
  start_step: int
  checkpointer: checkpoint_lib.Checkpointer
  writer: metrics_lib.MetricWriter
  param_counts: dict[str, int]

  def close(self) -> None:
    """Waits for pending checkpoints and closes the files."""
    self.checkpointer.wait()
    self.checkpointer.close()
    self.writer.close()


def start_run(*, experiment: str, config: Any, workdir: str, resume: bool,
              init_params: Callable[[jax.Array], Any], apply_fn: Callable,
              tx: optax.GradientTransformation, rng: jax.Array, driver: Any,
              data_facts: Mapping[str, Any], log: Callable[[str], None] = print) -> Run:
  """Counts parameters, writes the manifest, then initialises or restores the state.

  A resumed run must match the workdir's experiment and parameter counts. Only the
  primary process writes the manifest and metrics; all processes checkpoint.

  Raises:
    UserInputError: when resuming into a workdir of another experiment or model.
  """
  counts = state_lib.count_params(
      state_lib.abstract_train_state(init_params, apply_fn, tx).params)
  log('Parameters: ' + ', '.join(f'{k} {v:,}' for k, v in counts.items()))
  if resume:
    manifest.check_resumable(workdir, experiment, counts)
  if distributed.is_primary():
    manifest.write_manifest(workdir, experiment, to_dict(config), data_facts,
                            {'parameters': counts})
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  state = state_lib.init_train_state(init_params, apply_fn, tx, rng)
  state = restore_if_resuming(checkpointer, state, resume, log)
  start_step = int(state.step)
  return Run(driver.put_replicated(state), start_step, checkpointer,
             metrics_lib.MetricWriter(workdir, enabled=distributed.is_primary()), counts)


def loop_config(config: Any) -> loop.LoopConfig:
  """The LoopConfig from an experiment config's top-level training fields."""
  return loop.LoopConfig(
      num_epochs=config.num_epochs, batch_size=config.batch_size,
      eval_batch_size=config.eval_batch_size, seed=config.seed,
      steps_per_dispatch=config.steps_per_dispatch, progress=config.progress,
      skip_nonfinite=config.optimizer.get('skip_nonfinite', False))
