r"""Side-by-side training benchmark: our JAX steps against PyTorch peers.

Run (scripts/benchmark.sh sets up the venv, torch and the allocator variables):
  scripts/benchmark.sh                      # every model, lever + main job, full size (~30 min)
  scripts/benchmark.sh --quick              # tiny sizes, smoke test (< 1 min)
  python -m benchmarks.run --models=cnn_train,lstm --frameworks=jax

Every (model, framework, mode) runs in its own worker process, importing only one
framework. Workers of one model are started one after another (so compilations do
not overlap), then timed in rounds A, B, C, A, B, C, ... so that noise on a shared
machine hits every peer alike. The report gives medians with min and max over the
rounds, and MFU against the fp32 matmul peak measured in the same run. Beside each
model's JAX row, one more JAX worker per speed lever we tried (`benchmarks/levers.py`:
those on in our CPU path turned off, the others turned on; `--levers`, all at full
size) runs in the same rounds, and the report's second table gives each one's step
against the default's. Then (full size, with torch) the whole main job runs beside the
seed's program in PyTorch (`benchmarks/main_job.py`, 2 rounds, ~8 min) and the report
gets their table.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

from benchmarks import levers as levers_lib
from benchmarks import measure

_NOT_IMPLEMENTED = {'unet': ('research.models.unet', 'UNet')}


def _available(model: str) -> bool:
  """False for families whose JAX model is not written yet (the row says so)."""
  if model not in _NOT_IMPLEMENTED:
    return True
  import importlib.util

  module, _ = _NOT_IMPLEMENTED[model]
  return importlib.util.find_spec(module) is not None


class Worker:
  """A benchmark subprocess speaking `measure.serve`'s line protocol."""

  def __init__(self, model, framework, mode, args):
    self.model, self.framework, self.mode = model, framework, mode
    cmd = [
      sys.executable,
      '-m',
      'benchmarks.run',
      f'--worker={framework}',
      f'--models={model}',
      f'--worker_mode={mode}',
      f'--torch_threads={args.torch_threads}',
      f'--rep_seconds={args.rep_seconds}',
      f'--warmup_steps={args.warmup_steps}',
    ]
    if args.quick:
      cmd.append('--quick')
    lever = levers_lib.BY_NAME.get(mode) if framework == 'jax' else None
    self.proc = subprocess.Popen(
      cmd,
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      env=levers_lib.with_xla_flags(os.environ, lever),
      stderr=None if args.verbose else subprocess.DEVNULL,
      text=True,
      bufsize=1,
    )
    self.info = None
    self.step_s: list[float] = []
    self.peak_rss_mib = None
    self.error = None

  def _recv(self):
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f'worker exited with code {self.proc.wait()}')
    return json.loads(line)

  def ready(self):
    try:
      self.info = self._recv()['ready']
    except (RuntimeError, ValueError, KeyError) as e:
      self.error = str(e)

  def ask(self, cmd):
    if self.error:
      return None
    try:
      self.proc.stdin.write(json.dumps({'cmd': cmd}) + '\n')
      self.proc.stdin.flush()
      return self._recv()
    except (RuntimeError, ValueError, BrokenPipeError) as e:
      self.error = str(e)
      return None

  def finish(self):
    reply = self.ask('done')
    if reply:
      self.peak_rss_mib = reply['peak_rss_mib']
    self.proc.wait(timeout=60)


def _peers(model, args):
  peers = []
  if 'jax' in args.frameworks:
    peers.append(('jax', 'jit'))
    peers += [
      ('jax', lever.name) for lever in levers_lib.for_model(model) if lever.name in args.levers
    ]
  if 'torch' in args.frameworks:
    for mode in args.torch_modes:
      if mode == 'channels_last' and model not in measure.CONV_MODELS:
        continue
      if model == 'matmul' and mode != 'eager':
        continue
      peers.append(('torch', mode))
  return peers


def start_workers(model, args):
  """Starts every peer of `model`, one after another: compilations never overlap."""
  workers = []
  for framework, mode in _peers(model, args):
    w = Worker(model, framework, mode, args)
    w.ready()
    workers.append(w)
  return workers


def timed_rounds(workers, reps):
  """Rounds A, B, C, A, B, C, ...: noise on the machine hits every peer alike."""
  for _ in range(reps):
    for w in workers:
      reply = w.ask('rep')
      if reply:
        w.step_s.append(reply['step_s'])


def finish_workers(model, workers, args):
  """Stops the workers; returns one result dict per peer."""
  for w in workers:
    w.finish()
  return [_result(model, w, args.quick) for w in workers]


def _result(model, w, quick):
  s = measure.spec(model, quick)
  examples, tokens = measure.units(model, s)
  r = dict(
    model=model,
    framework=w.framework,
    mode=w.mode,
    error=w.error,
    examples_per_step=examples,
    tokens_per_step=tokens,
  )
  if w.error or not w.step_s:
    r['error'] = w.error or 'no repetitions'
    return r
  step = measure.Summary.of(w.step_s)
  info = w.info
  compile_s = info.get('compile_s')
  if compile_s is None:  # PyTorch compiles (or warms up) inside its first step.
    compile_s = max(info['first_step_s'] - step.median, 0.0)
  r.update(
    step_s=step.__dict__,
    compile_s=compile_s,
    params=info.get('params'),
    flops_per_step=(2 * s['n'] ** 3 if model == 'matmul' else info.get('flops_per_step')),
    peak_rss_mib=w.peak_rss_mib,
    steps_per_rep=info['steps_per_rep'],
  )
  if examples:
    r['examples_per_s'] = step.scaled(examples).__dict__
  if tokens:
    r['tokens_per_s'] = step.scaled(tokens).__dict__
  return r


def _fmt(summary, digits=0):
  if not summary:
    return '–'
  f = f'{{:,.{digits}f}}'
  return f'{f.format(summary["median"])} ({f.format(summary["min"])}–{f.format(summary["max"])})'


def _step_ms(r) -> str:
  """A row's step time in ms: median (min–max)."""
  return _fmt({k: v * 1e3 for k, v in r['step_s'].items() if k != 'n'}, 1)


def _throughput(r):
  return (r.get('tokens_per_s') or r.get('examples_per_s') or {}).get('median')


def _finish_results(results):
  """Adds GFLOP/s, MFU (against the run's best matmul) and our / best-PyTorch ratio."""
  # The best matmul repetition of the run (probes at its start and end): the least
  # disturbed measure of what the cores can do.
  peak = max(
    (
      r['flops_per_step'] / r['step_s']['min']
      for r in results
      if r['model'] == 'matmul' and 'step_s' in r
    ),
    default=None,
  )
  by_model = {}
  for r in results:
    by_model.setdefault(r['model'], []).append(r)
  for rows in by_model.values():
    # The same math on both sides: XLA's count of the JAX step serves both.
    flops = next((r['flops_per_step'] for r in rows if r.get('flops_per_step')), None)
    speed = lambda r: _throughput(r) or 1 / r['step_s']['median']
    best_torch = max(
      (speed(r) for r in rows if r['framework'] == 'torch' and 'step_s' in r), default=None
    )
    default = next((r for r in rows if _is_default(r) and 'step_s' in r), None)
    for r in rows:
      if 'step_s' not in r:
        continue
      if _is_lever(r) and default:
        r['vs_default'] = r['step_s']['median'] / default['step_s']['median']
      if flops:
        r['gflop_per_step'] = flops / 1e9
        if peak:
          r['mfu'] = flops / r['step_s']['median'] / peak
      if _is_default(r) and best_torch:
        r['ratio_vs_best_torch'] = speed(r) / best_torch
  return peak


# --quick's default: one model per kind of step (conv, scan, attention); the
# U-Net's compile alone would take half of the one-minute budget.
QUICK_MODELS = ('cnn_train', 'lstm', 'transformer')

COLUMNS = (
  'model',
  'framework',
  'mode',
  'examples/s',
  'tokens/s',
  'step ms',
  'compile s',
  'peak RSS MiB',
  'GFLOP/step',
  'MFU',
  'ours / best PyTorch',
)


def report(results, peak, args) -> str:
  """The markdown report: one row per (model, framework, mode)."""
  lines = [
    '# Training benchmark: JAX (ours) vs PyTorch',
    '',
    f'- {time.strftime("%Y-%m-%d %H:%M:%S")}, {os.cpu_count()} CPUs, '
    f'{"quick (tiny sizes, smoke test only)" if args.quick else "full size"}, '
    f'{args.reps} interleaved rounds of ~{args.rep_seconds} s per peer; '
    'median (min–max) over rounds.',
    f'- fp32 peak (best 2048³ matmul repetition, either framework, probed at the '
    f'start and end of this run): '
    f'{peak / 1e9:,.1f} GFLOP/s'
    if peak
    else '- fp32 peak: not measured',
    '- JAX rows run `research.train.steps` as the experiments do, with their '
    'micro-batches (their configs: on CPU, transformer and U-Net train steps trace '
    'two independent halves of the batch, which XLA runs on both cores; the CNN '
    'convolves 8 interleaved parts of the batch independently, `model.conv_parts`).',
    '- FLOPs: XLA cost analysis of the compiled JAX step (scans counted unrolled; '
    'the LSTM/GRU counted with every input step projected, as PyTorch does, though '
    'our first layer projects its 107-row embedding table instead), used for both '
    'frameworks; MFU = FLOPs/step / step time / peak.',
    f'- Shared machine, load average at start {os.getloadavg()[0]:.1f}: compare '
    'within a model, not across runs.',
    '',
    '| ' + ' | '.join(COLUMNS) + ' |',
    '|' + '|'.join(['---'] * 3 + ['---:'] * (len(COLUMNS) - 3)) + '|',
  ]
  for r in results:
    if _is_lever(r):
      continue
    if r.get('not_implemented'):
      lines.append(
        f'| {r["model"]} | {r["framework"]} | – | not yet implemented |'
        + ' – |' * (len(COLUMNS) - 4)
      )
      continue
    if 'step_s' not in r:
      err = (r.get('error') or '').replace('|', '/')[:60]
      lines.append(
        f'| {r["model"]} | {r["framework"]} | {r["mode"]} | failed: {err} |'
        + ' – |' * (len(COLUMNS) - 4)
      )
      continue
    cells = [
      r['model'],
      r['framework'],
      r['mode'],
      _fmt(r.get('examples_per_s'), 1),
      _fmt(r.get('tokens_per_s')),
      _step_ms(r),
      f'{r["compile_s"]:.1f}',
      f'{r["peak_rss_mib"]:,.0f}' if r.get('peak_rss_mib') else '–',
      f'{r["gflop_per_step"]:,.2f}' if r.get('gflop_per_step') else '–',
      f'{r["mfu"]:.0%}' if r.get('mfu') is not None else '–',
      f'**{r["ratio_vs_best_torch"]:.2f}×**' if r.get('ratio_vs_best_torch') else '',
    ]
    lines.append('| ' + ' | '.join(cells) + ' |')
  lever_rows = [r for r in results if _is_lever(r)]
  if lever_rows:
    lines += ['', lever_table(lever_rows, results)]
  return '\n'.join(lines) + '\n'


def _is_default(r) -> bool:
  """Our row as the experiments run the step (no lever flipped)."""
  return r['framework'] == 'jax' and r['mode'] == 'jit'


def _is_lever(r) -> bool:
  return r['framework'] == 'jax' and r['mode'] in levers_lib.BY_NAME


LEVER_COLUMNS = (
  'model',
  'lever',
  'in our CPU path',
  'the row runs',
  'step ms, as run',
  'step ms, lever flipped',
  'flipped / as run',
  'peak RSS MiB',
)


def lever_table(lever_rows, results) -> str:
  """Markdown: each lever's step against the default JAX row of its model (same rounds)."""
  default = {r['model']: r for r in results if _is_default(r) and 'step_s' in r}
  lines = [
    '## Levers: each one flipped against the step as the experiments run it',
    '',
    '- Same interleaved rounds as the rows above; one worker process per lever. A lever '
    'on in our CPU path (kept) is turned off in its row; one that is off (dropped, or '
    'an option such as bfloat16) is turned on. flipped / as run > 1: the flipped step '
    'is slower than the step as the experiments run it by default.',
    '',
    '| ' + ' | '.join(LEVER_COLUMNS) + ' |',
    '|' + '|'.join(['---'] * 4 + ['---:'] * (len(LEVER_COLUMNS) - 4)) + '|',
  ]
  for r in lever_rows:
    lever = levers_lib.BY_NAME[r['mode']]
    base = default.get(r['model'])
    head = [r['model'], lever.name, 'on' if lever.on else 'off', lever.what]
    if 'step_s' not in r or base is None:
      err = (r.get('error') or 'no default row').replace('|', '/')[:60]
      lines.append('| ' + ' | '.join(head + [f'failed: {err}'] + ['–'] * 3) + ' |')
      continue
    lines.append(
      '| '
      + ' | '.join(
        head
        + [
          _step_ms(base),
          _step_ms(r),
          f'**{r["vs_default"]:.2f}**',
          f'{r["peak_rss_mib"]:,.0f}' if r.get('peak_rss_mib') else '–',
        ]
      )
      + ' |'
    )
  return '\n'.join(lines)


def _parse(argv):
  p = argparse.ArgumentParser(
    description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument(
    '--models',
    default=None,
    help=f'comma-separated subset of {",".join(measure.MODELS)} (default: '
    f'all; with --quick: {",".join(QUICK_MODELS)})',
  )
  p.add_argument('--frameworks', default='jax,torch', help="'jax', 'torch' or both")
  p.add_argument(
    '--torch_modes',
    default='eager,channels_last,compile',
    help='PyTorch modes: eager, channels_last (conv models), compile',
  )
  p.add_argument(
    '--quick',
    action='store_true',
    help='tiny sizes, 2 short rounds, no torch.compile: a smoke test',
  )
  p.add_argument('--reps', type=int, default=None, help='interleaved rounds (5; quick 2)')
  p.add_argument(
    '--rep_seconds',
    type=float,
    default=None,
    help='target length of one round per peer (3 s; quick 0.1 s)',
  )
  p.add_argument(
    '--levers',
    default=None,
    help='comma-separated levers (benchmarks/levers.py) to time flipped beside '
    "each model's JAX row: 'all' (the default at full size), 'none' (the "
    f'default with --quick), or some of {",".join(levers_lib.BY_NAME)}',
  )
  p.add_argument('--warmup_steps', type=int, default=2, help='untimed steps after compile')
  p.add_argument('--torch_threads', type=int, default=2, help='torch.set_num_threads')
  p.add_argument(
    '--main_job_rounds',
    type=int,
    default=None,
    help='runs of the main job and of the PyTorch seed program after the '
    'steps (benchmarks/main_job.py; default 2, 0 with --quick or without torch)',
  )
  p.add_argument('--out', default='runs/benchmark', help='directory for the report')
  p.add_argument('--verbose', action='store_true', help="show the workers' stderr")
  p.add_argument('--worker', choices=('jax', 'torch'), help=argparse.SUPPRESS)
  p.add_argument('--worker_mode', default='', help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.models is None:
    args.models = ','.join(QUICK_MODELS if args.quick else measure.MODELS)
  args.models = [m for m in args.models.split(',') if m]
  args.frameworks = [f for f in args.frameworks.split(',') if f]
  args.torch_modes = [m for m in args.torch_modes.split(',') if m]
  if args.quick and '--torch_modes' not in ' '.join(argv or sys.argv):
    args.torch_modes = ['eager']
  if args.main_job_rounds is None:
    args.main_job_rounds = 0 if args.quick or 'torch' not in args.frameworks else 2
  if args.main_job_rounds < 0:
    p.error('--main_job_rounds must be >= 0')
  if args.levers is None:
    args.levers = 'none' if args.quick else 'all'
  args.levers = {'all': list(levers_lib.BY_NAME), 'none': []}.get(
    args.levers, [n for n in args.levers.split(',') if n]
  )
  unknown = sorted(set(args.levers) - set(levers_lib.BY_NAME))
  if unknown:
    p.error(f'--levers: unknown {unknown}; known: {", ".join(levers_lib.BY_NAME)}, all, none')
  args.reps = args.reps or (2 if args.quick else 5)
  args.rep_seconds = args.rep_seconds or (0.1 if args.quick else 3.0)
  for name, values, allowed in (
    ('models', args.models, measure.MODELS),
    ('frameworks', args.frameworks, ('jax', 'torch')),
    ('torch_modes', args.torch_modes, ('eager', 'channels_last', 'compile')),
  ):
    bad = sorted(set(values) - set(allowed))
    if bad or not values:
      p.error(f'--{name}: unknown or empty {bad}; allowed: {", ".join(allowed)}')
  if args.reps < 1 or args.rep_seconds <= 0:
    p.error('--reps must be >= 1 and --rep_seconds > 0')
  return args


def _serve_worker(args):
  model = args.models[0]
  if args.worker == 'jax':
    from benchmarks import jax_models

    lever = levers_lib.BY_NAME.get(args.worker_mode)
    # A lever's row builds and traces (in serve's compile) its step with the lever flipped.
    with levers_lib.flipped(lever, jax_models) if lever else contextlib.nullcontext():
      bench = jax_models.build(model, args.quick)
      measure.serve(bench, warmup_steps=args.warmup_steps, rep_seconds=args.rep_seconds)
    return
  from benchmarks import torch_models

  bench = torch_models.build(model, args.worker_mode, args.quick, args.torch_threads)
  measure.serve(bench, warmup_steps=args.warmup_steps, rep_seconds=args.rep_seconds)


def _write(results, args) -> str:
  peak = _finish_results(results)
  text = report(results, peak, args)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'report.md'), 'w') as f:
    f.write(text)
  with open(os.path.join(args.out, 'results.json'), 'w') as f:
    json.dump({'peak_flops': peak, 'results': results}, f, indent=1)
  return text


def main(argv=None):
  args = _parse(argv)
  if args.worker:
    return _serve_worker(args)
  # The matmul probes stay alive (idle) and run again at the end.
  probes = start_workers('matmul', args)
  timed_rounds(probes, args.reps)
  results = []
  for model in [m for m in args.models if m != 'matmul']:
    start = time.perf_counter()
    if not _available(model):
      results.append(dict(model=model, framework='jax', mode='–', not_implemented=True))
      print(f'[benchmark] {model}: not yet implemented', file=sys.stderr)
      continue
    workers = start_workers(model, args)
    timed_rounds(workers, args.reps)
    results += finish_workers(model, workers, args)
    print(f'[benchmark] {model}: {time.perf_counter() - start:.0f} s', file=sys.stderr)
    _write(results, args)  # After every model: a long run leaves partial results.
  timed_rounds(probes, args.reps)
  results = finish_workers('matmul', probes, args) + results
  text = _write(results, args)
  if args.main_job_rounds:
    from benchmarks import main_job  # pylint: disable=g-import-not-at-top

    runs = main_job.compare(
      args.main_job_rounds,
      threads=args.torch_threads,
      log=lambda line: print(line, file=sys.stderr),
    )
    text += '\n## The main job beside the seed program in PyTorch\n\n' + main_job.table(runs)
    with open(os.path.join(args.out, 'report.md'), 'w') as f:
      f.write(text)
  print(text)
  print(f'[benchmark] wrote {os.path.join(args.out, "report.md")}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
