"""The one trainer: a whole run of any family, from workdir to final metrics.

A *family* (CNN classifier, char LM, seq2seq transformer, DDPM, or your own) plugs in
through `Family`: it loads its data, builds its model and loss, evaluates
periodically and writes its report. The trainer owns everything else, the same way
for every family: settings, workdir, manifest, restore and resume, the step loop
(counted in steps; epochs are a view of it), periodic evaluation, checkpoints,
per-step scalars, preemption (SIGTERM/SIGINT, agreed across processes), a time
budget, non-finite handling and `final_metrics.json`.
"""

import dataclasses
import functools
import json
import sys
import time
from typing import Any, Callable, Protocol

from flax import traverse_util
import flax.linen as nn
import jax
import numpy as np
import optax

from research.errors import Preempted
from research.errors import UserInputError
from research.train import batch_plans
from research.train import checkpoint as checkpoint_lib
from research.train import distributed
from research.train import efficiency
from research.train import files
from research.train import input_pipeline
from research.train import manifest
from research.train import metrics as metrics_lib
from research.train import optimizers
from research.train import parallel
from research.train import preemption
from research.train import profiling
from research.train import settings as settings_lib
from research.train import state as state_lib
from research.train import step_loop
from research.train import workdir as workdir_lib

Log = Callable[[str], None]


@dataclasses.dataclass
class TrainData:
  """A family's training data on this process.

  Attributes:
    train: per-example arrays (leading axis N) the gather function reads.
    num_train: N, this process's training examples.
    sampling: 'epochs' (passes in a shuffled order) or 'windows' (uniform draws
      per step, e.g. text windows).
    facts: what the manifest records about the data (name, version, sizes, ...).
    summary: a line the trainer logs about the data ('' for none).
  """

  train: dict[str, np.ndarray]
  num_train: int
  sampling: str = 'epochs'
  facts: dict[str, Any] = dataclasses.field(default_factory=dict)
  summary: str = ''


@dataclasses.dataclass
class Model:
  """What a family trains.

  Attributes:
    module: the Flax module.
    init_params: rng -> float32 params pytree.
    loss_fn: the (sum, count) loss function of `research.train.steps`.
    gather_fn: gathers a batch from the data arrays by index (see `parallel`).
    wrap_optimizer: optional tx -> tx (e.g. an EMA of the parameters).
    model_parts: the model cuts its batch into independent parts by an automatic
      choice of its own (the CNN's `conv_parts=0`), so an automatic request for step
      micro-batches gives 1: the automatic choice of parts is made once
      (`research.platform_policy.batch_parts`).
    flops_loss_fn: the same loss with its time loops unrolled, to count a step's
      FLOPs (XLA's cost analysis counts a while loop's body once); None: `loss_fn`.
    init_carry: batch size B -> the initial state carried across train steps
      (truncated backpropagation through time; the data's sampling must be
      'streams'); None: no carried state.
  """

  module: nn.Module
  init_params: Callable[[jax.Array], Any]
  loss_fn: Callable
  gather_fn: Callable = parallel.take_examples
  wrap_optimizer: Callable[[optax.GradientTransformation], optax.GradientTransformation] | None = (
    None
  )
  model_parts: bool = False
  flops_loss_fn: Callable | None = None
  init_carry: Callable[[int], Any] | None = None

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` as this model trains with it: wrapped by `wrap_optimizer`, if any."""
    return self.wrap_optimizer(tx) if self.wrap_optimizer else tx

  def microbatches(self, requested: int) -> int:
    """The step micro-batches to ask a driver for, given the config's `requested`
    (0: automatic): 1 instead of automatic where the model takes the parts itself."""
    return 1 if self.model_parts and requested == 0 else requested

  def state_init(
    self, tx: optax.GradientTransformation, batch_size: int
  ) -> Callable[[jax.Array], state_lib.TrainState]:
    """rng -> the initial train state for optimiser `tx` (wrapped as `optimizer`
    says), with a carry for `batch_size` streams where the model carries one."""
    carry = None if self.init_carry is None else functools.partial(self.init_carry, batch_size)
    return state_lib.train_state_init(
      self.init_params, self.module.apply, self.optimizer(tx), init_carry=carry
    )

  def init_state(
    self, tx: optax.GradientTransformation, rng: jax.Array, batch_size: int = 1
  ) -> state_lib.TrainState:
    """The initial train state (float32 params from `init_params(rng)`; a carry for
    `batch_size` streams where the model carries one) for optimiser `tx`, outside
    the trainer: benchmarks, tests."""
    return jax.jit(self.state_init(tx, batch_size))(rng)


class Family(Protocol):
  """The typed interface a model family implements (see research/families/)."""

  name: str  # Recorded in the manifest; a workdir resumes only the same family.
  config: Any  # The experiment's ConfigDict.
  eval_split: str  # Name under which `evaluate`'s metrics are written.

  def load_data(self) -> TrainData:
    """Reads (this process's share of) the data; keeps evaluation data itself."""

  def build(self, data: TrainData) -> Model:
    """The model, its initial parameters and its loss for this data."""

  def evaluate(self, run: 'Run', state: Any, step: int) -> dict[str, float]:
    """Periodic evaluation (may log and write artifacts); returns scalars."""

  def report(self, run: 'Run', state: Any) -> dict[str, Any]:
    """Final evaluation and artifacts; returns what final_metrics.json gets."""


@dataclasses.dataclass
class Run:
  """A started run, as the family's hooks see it."""

  settings: settings_lib.TrainSettings
  workdir: str | None
  data: TrainData
  model: Model
  driver: Any
  source: batch_plans.IndexSource  # Which examples each step trains on.
  optimizer: optimizers.OptimizerConfig
  total_steps: int
  log: Log
  writer: metrics_lib.MetricWriter | None = None
  checkpointer: checkpoint_lib.Checkpointer | None = None
  param_counts: dict[str, int] = dataclasses.field(default_factory=dict)
  history: list[dict[str, float]] = dataclasses.field(default_factory=list)
  examples_per_second: float | None = None  # Training throughput, set before `report`.
  skipped_steps: int = 0  # Non-finite steps skipped (optimizer.skip_nonfinite).
  input_pipeline: str = 'device'  # The resolved `settings.input_pipeline`: device | stream.
  abstract_state: Any = None  # The train state's shapes (`jax.eval_shape`).
  meter: efficiency.Meter = dataclasses.field(
    default_factory=lambda: efficiency.Meter(efficiency.WallClock())
  )
  _placed: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

  def placed(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """`arrays` (this process's share) on the run's devices, put there on the first
    call for `name` and reused after (evaluation data, evaluated many times)."""
    if name not in self._placed:
      self._placed[name] = self.driver.put_data(arrays)
    return self._placed[name]

  @property
  def steps_per_epoch(self) -> int:
    return self.source.steps_per_epoch

  def write(self, step: int, split: str, scalars: dict[str, Any], **extra) -> None:
    """Scalars to metrics.jsonl and TensorBoard (no-op without a workdir)."""
    if self.writer is not None:
      self.writer.write(
        step, split, {k: v for k, v in scalars.items() if isinstance(v, (int, float))}, **extra
      )

  def image(self, step: int, tag: str, png: bytes) -> None:
    """A PNG on TensorBoard (no-op without a workdir)."""
    if self.writer is not None:
      self.writer.image(step, tag, png)

  def text(self, step: int, tag: str, text: str) -> None:
    """Text on TensorBoard (no-op without a workdir)."""
    if self.writer is not None:
      self.writer.text(step, tag, text)

  def path(self, name: str) -> str | None:
    """`<workdir>/<name>`, or None without a workdir or off the primary process."""
    if self.workdir is None or not distributed.is_primary():
      return None
    return files.join(self.workdir, name)


def _prepare(
  family: Family, workdir: str | None, log: Log, clock: efficiency.WallClock | None = None
) -> Run:
  """Settings, data, model and driver of a family, nothing started yet."""
  clock = clock or efficiency.WallClock()
  settings = settings_lib.train_settings(family.config)
  for batch in (settings.batch_size, settings.eval_batch_size):
    parallel.check_batch_size(batch, jax.device_count())
  with clock.part('data'):
    data = family.load_data()
  if data.summary:
    log(data.summary)
  model = family.build(data)
  source = _index_source(settings, data)
  total = (
    settings.num_epochs * source.steps_per_epoch if settings.num_epochs else settings.num_steps
  )
  driver = parallel.make_driver(
    settings.driver,
    model.loss_fn,
    model.gather_fn,
    fsdp=settings.fsdp,
    fsdp_min_size=settings.fsdp_min_size,
    microbatches=model.microbatches(settings.microbatches),
  )
  optimizer = settings_lib.optimizer_config(family.config.optimizer, total, source.steps_per_epoch)
  pipeline, why = input_pipeline.resolve(settings.input_pipeline, data.train, driver)
  log(f'Input pipeline: {pipeline} ({why}).')
  return Run(
    settings=settings,
    workdir=workdir,
    data=data,
    model=model,
    driver=driver,
    source=source,
    optimizer=optimizer,
    total_steps=total,
    log=log,
    input_pipeline=pipeline,
    meter=efficiency.Meter(clock),
  )


def _index_source(settings, data: TrainData) -> batch_plans.IndexSource:
  if data.sampling not in batch_plans.SAMPLINGS:
    raise ValueError(f'sampling must be one of {batch_plans.SAMPLINGS}')
  if data.num_train < 1:
    raise UserInputError('the training data is empty')
  return batch_plans.IndexSource(
    data.num_train,
    settings.batch_size // jax.process_count(),
    data.sampling,
    settings.seed,
    jax.process_index() if jax.process_count() > 1 else None,
  )


def _initial_state(family: Family, run: Run, resume: bool, rng: jax.Array) -> Any:
  """Counts parameters, writes the manifest, initialises or restores the state.

  Shape-first: the state's shapes come from `jax.eval_shape`, and the driver builds
  (or restores) each array straight into its sharding, never whole on one device.
  """
  m = run.model
  init = m.state_init(optimizers.make_optimizer(run.optimizer), run.settings.batch_size)
  abstract = jax.eval_shape(init, rng)
  run.abstract_state = abstract
  run.param_counts = state_lib.count_params(abstract.params)
  run.log('Parameters: ' + ', '.join(f'{k} {v:,}' for k, v in run.param_counts.items()))
  if run.workdir is None:
    return run.driver.init_state(init, rng, abstract)
  if resume:
    manifest.check_resumable(run.workdir, family.name, run.param_counts)
  if distributed.is_primary():
    manifest.write_manifest(
      run.workdir,
      family.name,
      _to_dict(family.config),
      run.data.facts,
      {'parameters': run.param_counts, 'input_pipeline': run.input_pipeline},
    )
  run.checkpointer = checkpoint_lib.Checkpointer(run.workdir)
  run.writer = metrics_lib.MetricWriter(run.workdir, enabled=distributed.is_primary())
  run.writer.hparams(traverse_util.flatten_dict(_to_dict(family.config), sep='.'))
  restored = _restore(run, run.driver.restore_target(abstract)) if resume else None
  if restored is not None:
    return run.driver.place_restored(restored)
  return run.driver.init_state(init, rng, abstract)


def _restore(run: Run, target: Any) -> Any:
  """The newest checkpoint restored into `target` (shapes and shardings), or None."""
  assert run.checkpointer is not None  # Set with the workdir, before any restore.
  try:
    step, restored = run.checkpointer.restore_latest(target, run.log)
  except ValueError as e:
    raise UserInputError(
      f'no checkpoint in {run.checkpointer.directory} fits this '
      f'config (another model or data set?): {e}'
    ) from None
  run.log(
    'No checkpoint to resume from: starting from scratch.'
    if step is None
    else f'Resumed from the checkpoint at step {step}.'
  )
  return None if step is None else restored


def _to_dict(config: Any) -> dict[str, Any]:
  config = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  return json.loads(json.dumps(config, default=str))


class _Hooks:
  """What happens at the loop's boundaries: logs, scalars, evaluation, checkpoints."""

  def __init__(self, family: Family, run: Run, start_step: int):
    self.family, self.run, s = family, run, run.settings
    self.epoch_sums = metrics_lib.MetricSums()
    self.schedule = optimizers.make_schedule(run.optimizer)
    self.eval_every = s.eval_every_steps or s.eval_every_epochs * run.steps_per_epoch
    self.epoch_every = run.steps_per_epoch if s.num_epochs else 0
    self.every = (self.epoch_every, self.eval_every, s.checkpoint_every_steps, s.log_every_steps)
    self.last = {
      'step': start_step,
      'time': time.perf_counter(),
      'epoch_time': time.perf_counter(),
      'epoch_step': start_step,
    }
    self.hook_seconds = 0.0

  def __call__(self, step: int, state: Any, sums: metrics_lib.MetricSums) -> None:
    t0 = time.perf_counter()
    run, s = self.run, self.run.settings
    values = sums.result()
    run.skipped_steps += int(values.get('skipped_steps', 0))
    self.epoch_sums.merge(sums)
    due = lambda every: every and step % every == 0
    clock = run.meter.clock
    with clock.part('logging'):
      self._scalars(step, values)
      if due(self.epoch_every):
        self._end_epoch(step)
      elif due(s.log_every_steps) and s.progress and not sys.stderr.isatty():
        run.log(f'[Step {step}/{run.total_steps}] {metrics_lib.format_metrics(values)}')
    evaluated = due(self.eval_every) and step < run.total_steps  # `report` covers the end.
    if evaluated:
      with clock.part('evaluation'):
        self._evaluate(step, state)
    # Only where asked: a boundary is also every log interval. The end and early stops
    # are checkpointed after the loop (`train_and_evaluate`).
    if (
      due(s.checkpoint_every_steps)
      or (s.checkpoint_at_epoch_end and due(self.epoch_every))
      or (s.checkpoint_at_eval and evaluated)
    ):
      _checkpoint(run, step, state)
    self.hook_seconds += time.perf_counter() - t0

  def _scalars(self, step: int, values: dict[str, float]) -> None:
    now = time.perf_counter()
    steps = step - self.last['step']
    rate = steps * self.run.settings.batch_size / max(now - self.last['time'], 1e-9)
    self.run.write(
      step,
      'train',
      dict(
        values,
        learning_rate=float(self.schedule(step - 1)),
        examples_per_second=rate,
        **self.run.meter.interval(step),
      ),
    )
    self.last.update(step=step, time=now)

  def _end_epoch(self, step: int) -> None:
    run, now = self.run, time.perf_counter()
    epoch = step // run.steps_per_epoch
    values = self.epoch_sums.result()
    seconds = now - self.last['epoch_time']
    examples = min(
      (step - self.last['epoch_step']) * run.settings.batch_size,
      run.data.num_train * jax.process_count(),
    )
    shown = {k: v for k, v in values.items() if k == 'loss' or 'accuracy' in k}
    run.log(
      f'[Epoch {epoch}] {metrics_lib.format_metrics(shown)} ({seconds:.1f} s, '
      f'{examples / seconds:.0f} examples/s)'
    )
    run.history.append(
      dict(values, epoch=epoch, epoch_seconds=seconds, examples_per_second=examples / seconds)
    )
    run.write(step, 'epoch', dict(values, epoch_seconds=seconds), epoch=epoch)
    self.epoch_sums = metrics_lib.MetricSums()
    self.last.update(epoch_time=now, epoch_step=step)

  def _evaluate(self, step: int, state: Any) -> None:
    values = self.family.evaluate(self.run, state, step)
    if values:
      self.run.write(step, self.family.eval_split, values)


def _checkpoint(run: Run, step: int, state: Any) -> None:
  """Starts saving `state` at `step` (orbax writes it in the background), unless the
  run has no workdir or already saved this step."""
  if run.checkpointer is not None and run.checkpointer.latest_step() != step:
    with run.meter.clock.part('checkpointing'):
      run.checkpointer.save(step, run.driver.host_state(state))


def _stop_reason(requested: bool, over_budget: bool) -> str | None:
  """'preempted', 'time_budget' or None, from flags already agreed by all processes."""
  if requested:
    return 'preempted'
  return 'time_budget' if over_budget else None


def _train(
  family: Family, run: Run, state: Any, rng: jax.Array, stop: preemption.StopOnSignal
) -> step_loop.LoopResult:
  s = run.settings
  start_step = int(jax.device_get(run.driver.host_state(state).step))
  hooks = _Hooks(family, run, start_step)
  began = time.perf_counter()

  def should_stop():
    over = s.max_train_seconds and (
      time.perf_counter() - began - hooks.hook_seconds >= s.max_train_seconds
    )
    flags = (stop.signalled(), bool(over))
    if jax.process_count() == 1:
      return _stop_reason(*flags)
    # Every process must stop at the same step: the flags are OR-ed on the devices
    # behind the chunk just dispatched and read with its metrics, a chunk later, so
    # no process waits for the others at every chunk.
    agreed = run.driver.any_process(flags)
    return lambda: _stop_reason(*agreed())

  trace = profiling.StepTrace(s.profile_window, run.path('profile'))
  boundaries = step_loop.Boundaries(hooks.every, run.total_steps, at=trace.steps)
  if run.workdir is not None:  # Only a workdir run reports its efficiency.
    _measure(family, run, rng)
  with run.meter.clock.part('data'):
    data = _train_input(run, start_step, boundaries)
  run.meter.start(start_step)
  try:
    with run.meter.clock.part('train_steps'):
      return step_loop.run_steps(
        run.driver,
        state,
        data,
        run.source,
        rng,
        start_step=start_step,
        boundaries=boundaries,
        steps_per_dispatch=s.steps_per_dispatch,
        on_boundary=hooks,
        should_stop=should_stop,
        skip_nonfinite=family.config.optimizer.skip_nonfinite,
        progress=s.progress,
        watch=step_loop.Instruments(run.meter.clock, trace),
      )
  finally:
    trace.close()  # Where a stop or an error came within the profile's steps.
    if isinstance(data, input_pipeline.Stream):
      data.close()


def _measure(family: Family, run: Run, rng: jax.Array) -> None:
  """Sets the run's FLOPs per train step and the peak its MFU is measured against."""
  s, meter = run.settings, run.meter
  try:
    meter.flops_per_step = efficiency.train_step_flops(
      run.model.flops_loss_fn or run.model.loss_fn,
      run.model.gather_fn,
      run.abstract_state,
      run.data.train,
      s.batch_size,
      rng,
    )
  except Exception as e:  # pylint: disable=broad-except  # A report must not end a run.
    run.log(f'FLOPs per step unknown (no TFLOP/s or MFU reported): {e}')
  dtype = getattr(getattr(family.config, 'model', None), 'dtype', 'float32')
  meter.peak = efficiency.peak_tflops(jax.devices()[0], str(dtype), s.peak_tflops_per_device)


def _train_input(run: Run, start_step: int, boundaries: step_loop.Boundaries) -> Any:
  """The training data as the loop reads it: this process's split placed on its
  devices ('device'), or a stream of the chunks the loop will run ('stream')."""
  if run.input_pipeline == 'device':
    return run.driver.put_data(run.data.train)
  chunks = boundaries.chunks(start_step, run.settings.steps_per_dispatch)
  batches = input_pipeline.host_batches(run.data.train, run.model.gather_fn, run.source, chunks)
  return input_pipeline.Stream(batches, run.driver.put_batch)


def train_and_evaluate(
  family: Family, workdir: str, resume: bool = False, log: Log = print
) -> dict[str, Any]:
  """Runs `family` end to end in `workdir` and returns its final metrics.

  Writes manifest.json, checkpoints/, metrics.jsonl, tensorboard/, the family's
  artifacts and final_metrics.json. A stop request (SIGTERM/SIGINT on any process)
  checkpoints and raises `Preempted`; `resume=True` continues bit-identically.

  Raises:
    UserInputError: for bad settings, data or workdirs, a workdir in use by a live
      run (see `workdir.WorkdirLock`) or a checkpoint that could not be written.
    NonFiniteLossError: naming the step whose loss or gradient was not finite.
    Preempted: after a requested stop (a checkpoint was saved).
  """
  workdir = workdir_lib.prepare_workdir(workdir, resume)
  with workdir_lib.WorkdirLock(workdir, log, primary=distributed.is_primary()):
    return _train_in_workdir(family, workdir, resume, log)


def _train_in_workdir(family: Family, workdir: str, resume: bool, log: Log) -> dict[str, Any]:
  clock = efficiency.WallClock()
  with clock.listen():
    return _train_timed(family, workdir, resume, log, clock)


def _train_timed(
  family: Family, workdir: str, resume: bool, log: Log, clock: efficiency.WallClock
) -> dict[str, Any]:
  run = _prepare(family, workdir, log, clock)
  init_key, train_key = jax.random.split(jax.random.key(run.settings.seed))
  state = _initial_state(family, run, resume, init_key)
  assert run.checkpointer is not None and run.writer is not None  # A workdir run.
  try:
    with preemption.StopOnSignal() as stop:
      result = _train(family, run, state, train_key, stop)
      _checkpoint(run, result.step, result.state)  # The end, or where a stop left off.
    if result.stopped == 'preempted':  # Its checkpoint is awaited below.
      raise Preempted(result.step)
    if result.stopped == 'time_budget':
      log(
        f'Stopped at step {result.step}: max_train_seconds = '
        f'{run.settings.max_train_seconds} reached.'
      )
    final = _final(family, run, result)
  finally:
    try:
      run.checkpointer.wait()  # Raises if the last save could not be written.
    finally:
      run.checkpointer.close()
      run.writer.close()
  return final


def _final(family: Family, run: Run, result: step_loop.LoopResult) -> dict[str, Any]:
  if result.train_seconds:
    run.examples_per_second = result.examples_trained / result.train_seconds
  with run.meter.clock.part('evaluation'):
    final = family.report(run, result.state)
  final.update(
    steps=result.step,
    parameters=run.param_counts,
    train_history=run.history,
    train_seconds=result.train_seconds,
    train_examples_per_second=run.examples_per_second,
    stopped=result.stopped,
    skipped_steps=run.skipped_steps,
    **run.meter.summary(result.step),
  )
  run.write(result.step, 'final', final)
  path = run.path('final_metrics.json')
  if path is not None:
    files.write_json(path, final)
  return final


def train_in_memory(family: Family, log: Log = print) -> tuple[Run, Any]:
  """Trains `family` without a workdir (no checkpoints, no files): e.g. a helper
  model inside another run. Returns the run and the final device state."""
  run = _prepare(family, None, log)
  init_key, train_key = jax.random.split(jax.random.key(run.settings.seed))
  state = _initial_state(family, run, False, init_key)
  with preemption.StopOnSignal() as stop:
    result = _train(family, run, state, train_key, stop)
  return run, result.state
