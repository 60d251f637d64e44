r"""Accelerator check: every family trains a few hundred steps in fp32 and in bf16.

Run (scripts/accelerator_check.sh sets up the environment):
  scripts/accelerator_check.sh                       # < 8 min on one GPU (below)
  scripts/accelerator_check.sh --tiny                # tiny sizes, a CPU smoke test
  python -m benchmarks.accelerator_check --families=cnn,ddpm --dtypes=bfloat16

Each (family, dtype) row builds the family at the benchmark's size
(`benchmarks.measure`), keeps a small synthetic data set on the devices and trains
through `research.train.parallel.DataParallel` in chunks of `--steps_per_dispatch`
steps (a `lax.scan` off CPU). It prints a table: examples/s, achieved TFLOP/s and MFU
against the device's peak dense bf16 FLOP/s (fp32 rows too, so the two compare),
compile time (first call minus a steady chunk), peak device memory
(`Device.memory_stats()`, n/a where the backend has none) and the last loss.
FLOPs per step come from XLA's cost analysis of one train step (recurrent models:
of an unrolled twin, since XLA counts a while loop's body once). Outside --tiny
every row runs in its own process, so its peak memory is its own, and this process
never opens the device (a TPU admits one process at a time).

Time: the 10 rows took 423 s on one H100 (jax 0.11.2, 2026-11-27; 42 s a row on average:
process start, compile, 300 steps); no row starts after --budget_s (450 s) and a
running one is stopped there, so the whole check ends within 8 minutes.
"""

import argparse
import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import jax_models
from benchmarks import measure
from research.train import optimizers
from research.train import parallel
from research.train import steps
from research.train import trainer
from research.train.settings import DTYPES

FAMILIES = ('cnn', 'lstm', 'gru', 'transformer', 'ddpm')
# Dense bf16 peak FLOP/s by `device_kind` substring, first match wins.
PEAK_BF16_FLOPS = (
  ('H100 PCIe', 756e12),
  ('H100', 989e12),
  ('H200', 989e12),
  ('GH200', 989e12),
  ('A100', 312e12),
  ('L40S', 362e12),
  ('L4', 121e12),
  ('A10G', 70e12),
  ('TPU v4', 275e12),
  ('TPU v5 lite', 197e12),
  ('TPU v5', 459e12),
  ('TPU v6 lite', 918e12),
)
# Where a family's sizes come from in `benchmarks.measure`, and the --tiny sizes.
_SPEC_NAME = {
  'cnn': 'cnn_train',
  'lstm': 'lstm',
  'gru': 'gru',
  'transformer': 'transformer',
  'ddpm': 'unet',
}
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


def peak_flops(device_kind: str) -> float | None:
  """The dense bf16 peak FLOP/s of a device kind, None when not in the table."""
  for key, flops in PEAK_BF16_FLOPS:
    if key.lower() in device_kind.lower():
      return flops
  return None


@dataclasses.dataclass(frozen=True)
class Setup:
  """A family ready to train: its model (built by the family), data and batch size."""

  model: trainer.Model
  data: dict[str, np.ndarray]
  batch_size: int
  flops_loss_fn: Callable | None = None  # Loss of an unrolled twin, for FLOPs.


def build(family: str, dtype_name: str, tiny: bool) -> Setup:
  """The `family` at the benchmark's size (or --tiny), computing in `dtype_name`, on
  four batches of random examples."""
  s = _TINY[family] if tiny else measure.spec(_SPEC_NAME[family], quick=False)
  extra = {'dropout_rate': 0.1} if family == 'transformer' else {}
  model, data = jax_models.family_model(family, s, 4 * s['batch'], dtype_name, **extra)
  twin = None
  if family in ('lstm', 'gru'):
    twin, _ = jax_models.family_model(family, s, 4 * s['batch'], unroll=s['seq'])
  return Setup(model, data.train, s['batch'], twin.loss_fn if twin else None)


@functools.cache
def _initial_state(family: str, tiny: bool):
  """The initial train state on the host. Parameters are float32 whatever the
  compute dtype, so the fp32 and bf16 rows share it (and its compile)."""
  setup = build(family, 'float32', tiny)
  tx = optimizers.make_optimizer(
    optimizers.OptimizerConfig(name='adam', learning_rate=measure.LEARNING_RATE)
  )
  return jax.device_get(setup.model.init_state(tx, jax.random.key(0)))


@functools.cache
def _flops_per_step(family: str, tiny: bool) -> float | None:
  """XLA's FLOP count of one train step (lowered only, never compiled). Counted on
  the fp32 program: the bf16 one does the same math."""
  setup = build(family, 'float32', tiny)
  data = jax.tree.map(jnp.asarray, setup.data)
  idx = jnp.arange(setup.batch_size, dtype=jnp.int32)
  batch = dict(setup.model.gather_fn(data, idx), mask=jnp.ones(setup.batch_size))
  step = functools.partial(steps.train_step, loss_fn=setup.flops_loss_fn or setup.model.loss_fn)
  state = _initial_state(family, tiny)
  return jax_models._cost_flops(  # pylint: disable=protected-access
    jax.jit(step).lower(state, batch, jax.random.key(0))
  )


def _peak_memory_bytes() -> int | None:
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get('peak_bytes_in_use')


def run_row(
  family: str, dtype_name: str, *, tiny: bool, num_steps: int, steps_per_dispatch: int
) -> dict[str, Any]:
  """Trains one (family, dtype) for `num_steps` steps after a warm-up chunk.

  Returns:
    a JSON-able dict: examples_per_s, flops_per_step, compile_s, peak_memory_bytes,
    loss (the last chunk's mean) and the sizes.
  """
  setup = build(family, dtype_name, tiny)
  state = _initial_state(family, tiny).replace(apply_fn=setup.model.module.apply)
  flops = _flops_per_step(family, tiny)
  driver = parallel.DataParallel(
    setup.model.loss_fn, setup.model.gather_fn, microbatches=setup.model.microbatches(0)
  )
  state, data = driver.put_replicated(state), driver.put_data(setup.data)
  s, b = steps_per_dispatch, setup.batch_size
  # Examples are indices into the data; for text, window offsets.
  n = len(setup.data.get('offsets', next(iter(setup.data.values()))))
  num_chunks = max(1, num_steps // s)
  order = np.random.default_rng(1).integers(0, n, (num_chunks + 2, s, b))
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
    'examples_per_s': num_chunks * s * b / seconds,
    'step_ms': 1e3 * seconds / (num_chunks * s),
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
    f'--steps_per_dispatch={args.steps_per_dispatch}',
  ]
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


def format_table(rows: list[dict[str, Any]]) -> str:
  """Markdown table of the rows, MFU against their device's dense bf16 peak."""
  ran = [r for r in rows if 'device_kind' in r]
  device_kind = ran[0]['device_kind'] if ran else 'unknown device'
  num_devices = ran[0]['num_devices'] if ran else 1
  peak = peak_flops(device_kind)
  peak_txt = 'unknown peak' if peak is None else f'peak {peak / 1e12:.0f} TFLOP/s bf16'
  lines = [
    f'{device_kind} x {num_devices} ({peak_txt})',
    '',
    '| family | dtype | batch | steps | examples/s | TFLOP/s | MFU | compile s '
    '| peak mem GiB | loss |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for r in rows:
    if 'error' in r:
      lines.append(f'| {r["family"]} | {r["dtype"]} | error: {r["error"][-120:]} |')
      continue
    achieved = (
      None
      if r['flops_per_step'] is None
      else r['flops_per_step'] * r['examples_per_s'] / r['batch']
    )
    mfu = None if achieved is None or peak is None else achieved / (peak * num_devices)
    lines.append(
      f'| {r["family"]} | {r["dtype"]} | {r["batch"]} | {r["steps"]} | '
      f'{r["examples_per_s"]:.0f} | {_fmt(achieved, ".2f", 1e-12)} | '
      f'{_fmt(mfu, ".1%")} | {r["compile_s"]:.1f} | '
      f'{_fmt(r["peak_memory_bytes"], ".2f", 2.0**-30)} | {r["loss"]:.3f} |'
    )
  return '\n'.join(lines)


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--families', default=','.join(FAMILIES))
  p.add_argument('--dtypes', default=','.join(DTYPES))
  p.add_argument(
    '--steps', type=int, default=None, help='timed train steps per row (default 300; 2 with --tiny)'
  )
  p.add_argument(
    '--steps_per_dispatch',
    type=int,
    default=None,
    help='steps per compiled call (default 5; 1 with --tiny)',
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
  args.steps = args.steps or (2 if args.tiny else 300)
  args.steps_per_dispatch = args.steps_per_dispatch or (1 if args.tiny else 5)
  fams, dts = args.families.split(','), args.dtypes.split(',')
  if not set(fams) <= set(FAMILIES) or not set(dts) <= set(DTYPES):
    p.error(f'families must be among {FAMILIES} and dtypes among {tuple(DTYPES)}')
  if args.steps < 1 or args.steps_per_dispatch < 1 or args.budget_s <= 0:
    p.error('--steps and --steps_per_dispatch must be >= 1, --budget_s > 0')
  return args, fams, dts


_NO_ACCELERATOR = 'no accelerator found: use --tiny (or --allow_cpu for full sizes)'


def _check_platform(args) -> None:
  if not (args.tiny or args.allow_cpu) and jax.default_backend() == 'cpu':
    sys.exit(_NO_ACCELERATOR)


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
  rows = []
  for family in families:
    for dtype_name in dtypes:
      left_s = deadline - time.monotonic()
      if left_s <= 0:
        rows.append({'family': family, 'dtype': dtype_name, 'error': 'not run: --budget_s spent'})
      elif isolate:
        rows.append(_row_in_subprocess(family, dtype_name, args, left_s))
        if _NO_ACCELERATOR in rows[-1].get('error', ''):
          sys.exit(_NO_ACCELERATOR)
      else:
        rows.append(run_row(family, dtype_name, **kw))
      print(f'[accelerator_check] {family} {dtype_name} done', file=sys.stderr)
  print(format_table(rows))


if __name__ == '__main__':
  main()
