r"""Accelerator check: every family trains a few hundred steps in fp32 and in bf16.

Run (scripts/accelerator_check.sh sets up the environment):
  scripts/accelerator_check.sh                       # within 8 min on one GPU (--budget_s)
  scripts/accelerator_check.sh --tiny                # tiny sizes, a CPU smoke test
  python -m benchmarks.accelerator_check --families=cnn,ddpm --dtypes=bfloat16

Each (family, dtype) row is the family its experiment trains, built from the
experiment's ':gpu' config (`row_config`: cnn, lm for 'lstm' and for 'gru' with
model.cell='gru', seq2seq for 'transformer', ddpm) at that config's batch size, model
sizes and steps per dispatch, with `model.dtype` set to the row's dtype. The family
loads its default (offline) data set and builds its model as `research.families` does
for the trainer; the check keeps the training split on the devices and trains through
`research.train.parallel.DataParallel` on uniformly drawn examples. --tiny instead
builds each family at tiny sizes on random data (`benchmarks.jax_models`).

It prints a table: examples/s, achieved TFLOP/s per device and MFU against the peak of
the row's own dtype (`research.train.efficiency.PEAK_TFLOPS`: TF32 for fp32 on NVIDIA
GPUs; n/a where the table has no entry, e.g. CPU), the issue's bf16 MFU target for an
H100 and whether the row meets it, compile time (first call minus a steady chunk),
peak device memory (`Device.memory_stats()`, n/a where the backend has none) and the
last loss. FLOPs per step are XLA's cost analysis of one lowered train step
(`efficiency.train_step_flops`; recurrent models on their unrolled twin,
`Model.flops_loss_fn`, since XLA counts a while loop's body once; compiled where the
devices' PJRT plugin analyses no lowered program, as CUDA's in jax 0.11). Outside --tiny every
row runs in its own process, so its peak memory is its own, and this process never
opens the device (a TPU admits one process at a time); the bf16 rows run first, so the
targets are judged even where the budget stops later rows.

Time: budgeted, not measured at these sizes: 320 timed steps a row (--steps), no row
starts after --budget_s (450 s) and a running one is stopped there, so the whole check
ends within 8 minutes. (At the
smaller benchmark sizes it used before, the 10 rows took 423 s on one H100.)
"""

import argparse
import dataclasses
import importlib
import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from benchmarks import jax_models
from benchmarks import measure
from research import families as families_lib
from research.train import efficiency
from research.train import optimizers
from research.train import parallel
from research.train import trainer
from research.train.settings import DTYPES

FAMILIES = ('cnn', 'lstm', 'gru', 'transformer', 'ddpm')
# The experiment whose config and family (`research.families.FAMILIES`) each row trains.
EXPERIMENTS = {'cnn': 'cnn', 'lstm': 'lm', 'gru': 'lm', 'transformer': 'seq2seq', 'ddpm': 'ddpm'}
# Full-size rows train the configs sized for one accelerator host (get_config('gpu')).
CONFIG_ARG = 'gpu'
# The MFU targets for bf16 on one H100 ("Accelerator-sized runs").
BF16_MFU_TARGETS = {'cnn': 0.25, 'lstm': 0.15, 'gru': 0.15, 'transformer': 0.40, 'ddpm': 0.25}
_TINY = {
  'cnn': dict(batch=4, image=8, channels=3, hidden=8, classes=10),
  'lstm': dict(batch=4, seq=6, embed=8, hidden=8, vocab=12),
  'gru': dict(batch=4, seq=6, embed=8, hidden=8, vocab=12),
  'transformer': dict(
    batch=4, src_len=6, tgt_len=6, d=16, heads=2, enc_layers=1, dec_layers=1, ff=16, vocab=12
  ),
  'ddpm': dict(
    batch=4,
    image=8,
    channels=1,
    widths=(8,),
    num_res_blocks=1,
    attention_resolutions=(),
    heads=2,
    groups=4,
    timesteps=10,
  ),
}


def row_config(family: str, dtype_name: str) -> ml_collections.ConfigDict:
  """The config a full-size row of `family` trains: its experiment's ':gpu' config
  (the lm one with `model.cell` = 'lstm' or 'gru'), computing in `dtype_name`."""
  module = importlib.import_module(f'experiments.{EXPERIMENTS[family]}.configs.default')
  config = module.get_config(CONFIG_ARG)
  config.model.dtype = dtype_name
  if EXPERIMENTS[family] == 'lm':
    config.model.cell = family
  return config


@dataclasses.dataclass(frozen=True)
class Setup:
  """A family ready to train: its model and data (built by the family), the batch
  size, the step micro-batches to ask the driver for and the steps per call."""

  model: trainer.Model
  data: trainer.TrainData
  batch_size: int
  microbatches: int
  steps_per_dispatch: int


def build(family: str, dtype_name: str, tiny: bool) -> Setup:
  """The `family` computing in `dtype_name`: built from `row_config` on its
  experiment's data set, or with --tiny at tiny sizes on four batches of random
  examples (`benchmarks.jax_models`)."""
  if tiny:
    s = _TINY[family]
    extra = {'dropout_rate': 0.1} if family == 'transformer' else {}
    model, data = jax_models.family_model(family, s, 4 * s['batch'], dtype_name, **extra)
    return Setup(model, data, s['batch'], model.microbatches(0), 1)
  config = row_config(family, dtype_name)
  experiment = families_lib.FAMILIES[EXPERIMENTS[family]](config)
  data = experiment.load_data()
  model = experiment.build(data)
  return Setup(
    model,
    data,
    config.batch_size,
    model.microbatches(config.microbatches),
    config.steps_per_dispatch,
  )


_STATES: dict[tuple[str, bool], Any] = {}


def _initial_state(family: str, tiny: bool, model: trainer.Model):
  """The initial train state on the host. Parameters are float32 whatever the
  compute dtype, so the fp32 and bf16 rows of one process share it (and its compile)."""
  if (family, tiny) not in _STATES:
    tx = optimizers.make_optimizer(
      optimizers.OptimizerConfig(name='adam', learning_rate=measure.LEARNING_RATE)
    )
    _STATES[family, tiny] = jax.device_get(model.init_state(tx, jax.random.key(0)))
  return _STATES[family, tiny].replace(apply_fn=model.module.apply)


def _abstract(tree: Any) -> Any:
  # Shapes and dtypes only: no sharding that would tie a lowering to a device.
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


def flops_per_step(setup: Setup, state: Any) -> float | None:
  """XLA's FLOPs per device of one train step of `setup` (lowered, never compiled),
  recurrent models counted on their unrolled twin (`Model.flops_loss_fn`)."""
  m = setup.model
  loss_fn = m.flops_loss_fn or m.loss_fn
  return efficiency.train_step_flops(
    loss_fn, m.gather_fn, _abstract(state), setup.data.train, setup.batch_size, jax.random.key(2)
  )


def _peak_memory_bytes() -> int | None:
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get('peak_bytes_in_use')


def run_row(
  family: str,
  dtype_name: str,
  *,
  tiny: bool,
  num_steps: int,
  steps_per_dispatch: int | None = None,
) -> dict[str, Any]:
  """Trains one (family, dtype) for `num_steps` steps after two warm-up chunks.

  Args:
    family: one of `FAMILIES`.
    dtype_name: the compute dtype, one of `DTYPES`.
    tiny: tiny sizes on random data instead of `row_config`'s.
    num_steps: timed train steps (rounded down to whole chunks, at least one).
    steps_per_dispatch: steps per compiled call; None: the config's (1 with tiny).

  Returns:
    a JSON-able dict: examples_per_s, seconds (timed), flops_per_step (per
    device), compile_s, peak_memory_bytes, loss (the last chunk's mean) and sizes.
  """
  setup = build(family, dtype_name, tiny)
  parallel.check_batch_size(setup.batch_size, jax.device_count())
  state = _initial_state(family, tiny, setup.model)
  flops = flops_per_step(setup, state)
  driver = parallel.DataParallel(
    setup.model.loss_fn, setup.model.gather_fn, microbatches=setup.microbatches
  )
  state, data = driver.put_replicated(state), driver.put_data(setup.data.train)
  s, b = steps_per_dispatch or setup.steps_per_dispatch, setup.batch_size
  # Uniform draws of example indices (for text, of window offsets).
  num_chunks = max(1, num_steps // s)
  order = np.random.default_rng(1).integers(0, setup.data.num_train, (num_chunks + 2, s, b))
  mask = np.ones((s, b), np.float32)
  rng = jax.random.key(2)

  def chunk(i, state):
    return driver.train(state, data, order[i], mask, rng)

  start = time.perf_counter()
  state, _ = jax.block_until_ready(chunk(0, state))  # Compiles.
  first_s = time.perf_counter() - start
  start = time.perf_counter()
  state, _ = jax.block_until_ready(chunk(1, state))
  steady_chunk_s = time.perf_counter() - start
  start = time.perf_counter()
  for i in range(num_chunks):
    state, metrics = chunk(i + 2, state)
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  loss_sum, count = jax.device_get(metrics['loss'])
  return {
    'family': family,
    'dtype': dtype_name,
    'batch': b,
    'steps': num_chunks * s,
    'seconds': seconds,
    'examples_per_s': num_chunks * s * b / seconds,
    'flops_per_step': flops,
    'compile_s': max(first_s - steady_chunk_s, 0.0),
    'peak_memory_bytes': _peak_memory_bytes(),
    'loss': float(np.sum(loss_sum) / max(np.sum(count), 1.0)),
    'device_kind': jax.devices()[0].device_kind,
    'num_devices': jax.device_count(),
  }


def _row_in_subprocess(family: str, dtype_name: str, args, timeout_s: float) -> dict[str, Any]:
  cmd = [
    sys.executable,
    '-m',
    'benchmarks.accelerator_check',
    f'--row={family}:{dtype_name}',
    f'--steps={args.steps}',
  ]
  cmd += [f'--steps_per_dispatch={args.steps_per_dispatch}'] * bool(args.steps_per_dispatch)
  cmd += ['--tiny'] * args.tiny + ['--allow_cpu'] * args.allow_cpu
  try:
    out = subprocess.run(
      cmd,
      capture_output=True,
      text=True,
      timeout=timeout_s,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
  except subprocess.TimeoutExpired:
    return {
      'family': family,
      'dtype': dtype_name,
      'error': f'stopped after {timeout_s:.0f} s (--budget_s)',
    }
  if out.returncode:
    return {'family': family, 'dtype': dtype_name, 'error': out.stderr.strip()[-300:]}
  return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(x, spec: str, scale: float = 1.0) -> str:
  return 'n/a' if x is None or (isinstance(x, float) and math.isnan(x)) else format(x * scale, spec)


def target_cell(family: str, dtype_name: str, mfu: float | None) -> str:
  """The issue's bf16 MFU target of `family` and whether `mfu` meets it ('-' for
  other dtypes; 'unmeasured' without an MFU, e.g. on CPU)."""
  if dtype_name != 'bfloat16':
    return '-'
  target = BF16_MFU_TARGETS[family]
  verdict = 'unmeasured' if mfu is None else 'met' if mfu >= target else 'below'
  return f'target {target:.0%}: {verdict}'


def _peaks_text(device_kind: str) -> str:
  peaks = {d: efficiency.table_peak_tflops(device_kind, d) for d in DTYPES}
  if not any(peaks.values()):
    return 'no peak in PEAK_TFLOPS: MFU n/a'
  known = ', '.join(f'{d} {_fmt(p, "g")}' for d, p in peaks.items())
  return f"MFU against PEAK_TFLOPS per device, the row dtype's: {known} TFLOP/s"


def format_table(rows: list[dict[str, Any]]) -> str:
  """Markdown table of the rows: each row's MFU against its own dtype's dense peak
  (`efficiency.table_peak_tflops`) and, for bf16 rows, the issue's target."""
  ran = [r for r in rows if 'device_kind' in r]
  device_kind = ran[0]['device_kind'] if ran else 'unknown device'
  num_devices = ran[0]['num_devices'] if ran else 1
  lines = [
    f'{device_kind} x {num_devices} ({_peaks_text(device_kind)}; '
    "bf16 target: the issue's MFU target on one H100)",
    '',
    '| family | dtype | batch | steps | examples/s | TFLOP/s/device | MFU | bf16 target '
    '| compile s | peak mem GiB | loss |',
    '|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|',
  ]
  for r in rows:
    if 'error' in r:
      lines.append(f'| {r["family"]} | {r["dtype"]} | error: {r["error"][-120:]} |')
      continue
    peak = efficiency.table_peak_tflops(r['device_kind'], r['dtype'])
    rates = efficiency.rates(r['flops_per_step'], peak, r['steps'], r['seconds'])
    mfu = rates.get('mfu')
    lines.append(
      f'| {r["family"]} | {r["dtype"]} | {r["batch"]} | {r["steps"]} | '
      f'{r["examples_per_s"]:.0f} | {_fmt(rates.get("tflops_per_device"), ".2f")} | '
      f'{_fmt(mfu, ".1%")} | {target_cell(r["family"], r["dtype"], mfu)} | '
      f'{r["compile_s"]:.1f} | {_fmt(r["peak_memory_bytes"], ".2f", 2.0**-30)} | '
      f'{r["loss"]:.3f} |'
    )
  return '\n'.join(lines)


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--families', default=','.join(FAMILIES))
  p.add_argument('--dtypes', default=','.join(DTYPES))
  p.add_argument(
    '--steps', type=int, default=None, help='timed train steps per row (default 320; 2 with --tiny)'
  )
  p.add_argument(
    '--steps_per_dispatch',
    type=int,
    default=None,
    help="steps per compiled call (default: the config's; 1 with --tiny)",
  )
  p.add_argument('--tiny', action='store_true', help='tiny sizes: a CPU smoke test')
  p.add_argument(
    '--isolate',
    choices=('auto', 'yes', 'no'),
    default='auto',
    help='one process per row, so that its peak memory is its own '
    '(auto: unless --tiny); this process then never opens the device',
  )
  p.add_argument(
    '--budget_s',
    type=float,
    default=450.0,
    help='no row starts after this many seconds (a row in its own '
    'process is stopped there), so the check ends in time',
  )
  p.add_argument(
    '--allow_cpu',
    action='store_true',
    help='run full sizes on CPU (slow; --tiny is the CPU smoke test)',
  )
  p.add_argument('--row', help=argparse.SUPPRESS)  # family:dtype, one row as JSON.
  args = p.parse_args(argv)
  # 320: whole chunks of the configs' 8 or 16 steps per call.
  args.steps = args.steps or (2 if args.tiny else 320)
  fams, dts = args.families.split(','), args.dtypes.split(',')
  if not set(fams) <= set(FAMILIES) or not set(dts) <= set(DTYPES):
    p.error(f'families must be among {FAMILIES} and dtypes among {tuple(DTYPES)}')
  spd = args.steps_per_dispatch
  if args.steps < 1 or (spd is not None and spd < 1) or args.budget_s <= 0:
    p.error('--steps and --steps_per_dispatch must be >= 1, --budget_s > 0')
  return args, fams, dts


_NO_ACCELERATOR = 'no accelerator found: use --tiny (or --allow_cpu for full sizes)'


def _check_platform(args) -> None:
  if not (args.tiny or args.allow_cpu) and jax.default_backend() == 'cpu':
    sys.exit(_NO_ACCELERATOR)


def run_order(families: list[str], dtypes: list[str]) -> list[tuple[str, str]]:
  """The (family, dtype) rows in the order they run: bf16 first, so where the budget
  stops the check the rows with targets have run."""
  rows = [(f, d) for f in families for d in dtypes]
  return sorted(rows, key=lambda fd: fd[1] != 'bfloat16')


def main(argv: list[str] | None = None) -> None:
  args, families, dtypes = _parse(argv)
  kw = dict(tiny=args.tiny, num_steps=args.steps, steps_per_dispatch=args.steps_per_dispatch)
  isolate = args.isolate == 'yes' or (args.isolate == 'auto' and not args.tiny)
  if args.row or not isolate:
    _check_platform(args)
  if args.row:
    print(json.dumps(run_row(*args.row.split(':'), **kw)))
    return
  deadline = time.monotonic() + args.budget_s
  results = {}
  for family, dtype_name in run_order(families, dtypes):
    left_s = deadline - time.monotonic()
    if left_s <= 0:
      row = {'family': family, 'dtype': dtype_name, 'error': 'not run: --budget_s spent'}
    elif isolate:
      row = _row_in_subprocess(family, dtype_name, args, left_s)
      if _NO_ACCELERATOR in row.get('error', ''):
        sys.exit(_NO_ACCELERATOR)
    else:
      row = run_row(family, dtype_name, **kw)
    results[family, dtype_name] = row
    print(f'[accelerator_check] {family} {dtype_name} done', file=sys.stderr)
  rows = [results[f, d] for f in families for d in dtypes]
  print(format_table(rows))


if __name__ == '__main__':
  main()
