r"""The whole main job beside the seed's program in PyTorch, one after the other.

Runs `experiments/cnn/main.py` with its default config (what `scripts/train.sh`
runs, set-up excluded) and `benchmarks/torch_seed_program.py` (the same split and
recipe in PyTorch) as subprocesses, alternating (ours, PyTorch, PyTorch, ours, ...),
and reports for each run: test accuracy, training seconds (the wall time of the
epochs, compilation and checkpoints included), whole-program seconds, training
examples/s and peak RSS. Our
first run uses an empty compilation cache (cold: every program compiles), later
runs reuse it (warm), as a user's second run does.

Run:
  python -m benchmarks.main_job                 # 2 rounds, ~8 min on 2 cores
  python -m benchmarks.main_job --rounds=3 --out=runs/benchmark
`scripts/benchmark.sh` appends this table to its report (`--main_job_rounds`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

OURS, TORCH = 'ours (JAX)', 'PyTorch seed program'


def _run(cmd: list[str]) -> tuple[float, float]:
  """Runs `cmd` to completion; (wall seconds, peak RSS MiB of that process)."""
  # stderr goes to a file, not a pipe: a pipe read only after the wait would fill up
  # and block a long run that logs a lot.
  with tempfile.TemporaryFile('w+') as stderr:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
      stderr.seek(0)
      raise RuntimeError(f'{" ".join(cmd)} exited with {code}:\n{stderr.read()[-2000:]}')
  return wall, usage.ru_maxrss / 1024


def run_ours(workdir: str, cache_dir: str, seed: int) -> dict:
  """One main job (fp32 default config) in `workdir`; its final metrics and costs."""
  cmd = [
    sys.executable,
    '-m',
    'experiments.cnn.main',
    '--config=experiments/cnn/configs/default.py',
    f'--workdir={workdir}',
    f'--compilation_cache={cache_dir}',
    f'--config.seed={seed}',
    '--config.progress=false',
  ]
  wall, rss = _run(cmd)
  with open(os.path.join(workdir, 'final_metrics.json')) as f:
    final = json.load(f)
  # The epochs' wall time, first-step compilation and per-epoch checkpoints included,
  # as the PyTorch program times its epochs (its own train_seconds leaves both out).
  seconds = sum(epoch['epoch_seconds'] for epoch in final['train_history'])
  examples = sum(
    epoch['examples_per_second'] * epoch['epoch_seconds'] for epoch in final['train_history']
  )
  return dict(
    test_accuracy=final['test_accuracy'],
    train_seconds=seconds,
    examples_per_second=examples / seconds,
    program_seconds=wall,
    peak_rss_mib=rss,
  )


def run_torch(out_json: str, seed: int, threads: int) -> dict:
  """One run of the PyTorch seed program; its summary and costs."""
  cmd = [
    sys.executable,
    '-m',
    'benchmarks.torch_seed_program',
    f'--out={out_json}',
    f'--seed={seed}',
    f'--threads={threads}',
  ]
  wall, rss = _run(cmd)
  with open(out_json) as f:
    summary = json.load(f)
  return dict(
    test_accuracy=summary['test_accuracy'],
    train_seconds=summary['train_seconds'],
    examples_per_second=summary['train_examples_per_second'],
    program_seconds=wall,
    peak_rss_mib=rss,
  )


def compare(rounds: int, seed: int = 0, threads: int = 2, log=print) -> list[dict]:
  """`rounds` rounds of both programs, alternating which goes first.

  Returns:
    one dict per run: program, round, cache ('cold'/'warm', ours only) and the
    measures of `run_ours` / `run_torch`.
  """
  runs = []
  with tempfile.TemporaryDirectory() as tmp:
    cache = os.path.join(tmp, 'jax_cache')
    for r in range(rounds):
      order = (OURS, TORCH) if r % 2 == 0 else (TORCH, OURS)
      for program in order:
        if program == OURS:
          row = run_ours(os.path.join(tmp, f'ours{r}'), cache, seed)
          row['cache'] = 'cold' if not any(x['program'] == OURS for x in runs) else 'warm'
        else:
          row = run_torch(os.path.join(tmp, f'torch{r}.json'), seed, threads)
          row['cache'] = '–'
        row.update(program=program, round=r + 1)
        runs.append(row)
        log(
          f'[main_job] round {r + 1} {program}: {row["train_seconds"]:.1f} s training, '
          f'{row["program_seconds"]:.1f} s in all, {row["test_accuracy"]:.2%}'
        )
  return runs


def table(runs: list[dict]) -> str:
  """Markdown: one row per run, then our median / PyTorch median per measure."""
  lines = [
    '| program | round | compile cache | test accuracy | training s | examples/s | '
    'whole program s | peak RSS MiB |',
    '|---|---:|---|---:|---:|---:|---:|---:|',
  ]
  for r in runs:
    lines.append(
      f'| {r["program"]} | {r["round"]} | {r["cache"]} | {r["test_accuracy"]:.2%} | '
      f'{r["train_seconds"]:.1f} | {r["examples_per_second"]:.0f} | '
      f'{r["program_seconds"]:.1f} | {r["peak_rss_mib"]:,.0f} |'
    )
  med = lambda program, key: statistics.median(r[key] for r in runs if r['program'] == program)
  if any(r['program'] == OURS for r in runs) and any(r['program'] == TORCH for r in runs):
    ratio = lambda key: med(TORCH, key) / med(OURS, key)
    lines += [
      '',
      f'Ours / PyTorch speed (medians; > 1 means ours is faster): training '
      f'{ratio("train_seconds"):.2f}x, whole program {ratio("program_seconds"):.2f}x; '
      f'test accuracy {med(OURS, "test_accuracy"):.2%} vs '
      f'{med(TORCH, "test_accuracy"):.2%}.',
    ]
  return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--rounds', type=int, default=2, help='runs of each program')
  p.add_argument('--seed', type=int, default=0, help='seed of both programs')
  p.add_argument('--torch_threads', type=int, default=2)
  p.add_argument('--out', default='runs/benchmark', help='directory for main_job.md')
  args = p.parse_args(argv)
  if args.rounds < 1 or args.torch_threads < 1:
    p.error('--rounds and --torch_threads must be >= 1')
  text = '## The main job beside the seed program in PyTorch\n\n' + table(
    compare(args.rounds, args.seed, args.torch_threads)
  )
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'main_job.md'), 'w') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
