r"""Re-runs the README's experiments over several seeds and writes one table.

  scripts/reproduce.sh                                  # everything, several hours
  scripts/reproduce.sh --experiments=reverse,addition --seeds=3
  scripts/reproduce.sh --experiments=ptb_small --jobs=3     # the 3 seeds at once
  python -m experiments.reproduce --workdir=runs/reproduce --experiments=lstm

Each (experiment, seed) run is the experiment's own entry point with its default
config and `--config.seed=S`, in `<workdir>/<experiment>/seed<S>`; a run whose
`final_metrics.json` exists is not run again, so an interrupted reproduction picks
up where it stopped. `--jobs=N` runs N of them at once (on a machine with cores
or accelerators to spare; each run still uses all it sees). The table
(`<workdir>/table.md`, also printed) gives, per headline metric, the median, min and
max over the seeds, the median wall time of a run, and the machine (lscpu's model
name and core count, and how many runs ran at once).
"""

import concurrent.futures
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One README experiment: its entry point, flags and headline metrics.

  Attributes:
    module: the entry point's experiment name (`experiments.<module>.main`).
    flags: its command-line flags, the config included.
    metrics: (key in final_metrics.json, label, scale) per headline metric; the
      table shows value * scale. A dotted key reads nested dictionaries.
    seeds: how many seeds a full reproduction runs.
  """

  module: str
  flags: tuple[str, ...]
  metrics: tuple[tuple[str, str, float], ...]
  seeds: int = 3


_EXACT = (
  ('test_greedy_exact_accuracy', 'exact match, greedy (%)', 100.0),
  ('test_beam_exact_accuracy', 'exact match, beam (%)', 100.0),
  ('test_greedy_exact_accuracy_min_over_lengths', 'worst input length, greedy (%)', 100.0),
)
_BPC = (('validation_bits_per_char', 'validation bits/char', 1.0),)
# Zaremba et al. 2014, Table 1, the small non-regularised LSTM.
_PTB = (
  ('test_perplexity', 'test perplexity (paper: 114.5)', 1.0),
  ('validation_perplexity', 'validation perplexity (paper: 120.7)', 1.0),
)
# Held out (17-24 letters, never trained on) and in distribution (the report's
# training strings, 1-16 letters).
_LENGTH_GENERALISATION = (
  ('test_greedy_exact_accuracy', 'exact match on 17-24 letters, greedy (%)', 100.0),
  ('test_beam_exact_accuracy', 'exact match on 17-24 letters, beam (%)', 100.0),
  *(
    (
      f'test_exact_accuracy_by_length.{n}.greedy_exact_accuracy',
      f'exact match at {n} letters, greedy (%)',
      100.0,
    )
    for n in (17, 20, 22, 24)
  ),
  ('train_greedy_exact_accuracy', 'in distribution, 1-16 letters, greedy (%)', 100.0),
  (
    'train_greedy_exact_accuracy_min_over_lengths',
    'in distribution, worst length, greedy (%)',
    100.0,
  ),
)

EXPERIMENTS = {
  'cnn': Experiment(
    'cnn',
    ('--config=experiments/cnn/configs/default.py',),
    (('test_accuracy', 'test accuracy (%)', 100.0),),
  ),
  # Needs the Debian package dataset-fashion-mnist (its files are read offline).
  'fashion_mnist': Experiment(
    'cnn',
    ('--config=experiments/cnn/configs/fashion_mnist.py',),
    # The closest network in the data set's README table of submitted results.
    (('test_accuracy', 'test accuracy (%; published 3 conv + 2 FC + dropout: 92.6)', 100.0),),
  ),
  'lstm': Experiment('lm', ('--config=experiments/lm/configs/default.py',), _BPC),
  'gru': Experiment(
    'lm', ('--config=experiments/lm/configs/default.py', '--config.model.cell=gru'), _BPC
  ),
  'ptb_small': Experiment(
    'lm',
    ('--config=experiments/lm/configs/ptb_small.py',),
    _PTB,
  ),
  'ptb_small_gru': Experiment(
    'lm',
    ('--config=experiments/lm/configs/ptb_small.py', '--config.model.cell=gru'),
    _PTB,
  ),
  'reverse': Experiment('seq2seq', ('--config=experiments/seq2seq/configs/default.py',), _EXACT),
  'addition': Experiment('seq2seq', ('--config=experiments/seq2seq/configs/addition.py',), _EXACT),
  **{
    'length_generalisation' + (positional and f'_{positional}'): Experiment(
      'seq2seq',
      (
        '--config=experiments/seq2seq/configs/length_generalisation.py',
        *((f'--config.model.positional={positional}',) if positional else ()),
      ),
      _LENGTH_GENERALISATION,
    )
    # '': the config's own, sinusoidal.
    for positional in ('', 'randomized_rotary', 'rotary', 'randomized_sinusoidal')
  },
  'ddpm': Experiment(
    'ddpm',
    ('--config=experiments/ddpm/configs/default.py',),
    (
      ('prompt_accuracy', 'samples classified as their prompt (%)', 100.0),
      ('paraphrase_accuracy', 'same, paraphrases never trained on (%)', 100.0),
      ('frechet_distance', 'Frechet distance', 1.0),
      ('attributes.thickness.agreement', 'asked thickness followed (%, chance 50)', 100.0),
      ('attributes.size.agreement', 'asked size followed (%, chance 50)', 100.0),
      ('attributes.slant.agreement', 'asked slant followed (%, chance 50)', 100.0),
    ),
    seeds=2,
  ),
}


def machine() -> str:
  """'<lscpu model name>, <n> cores' (or the platform's processor where lscpu fails)."""
  try:
    out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
    model = next(
      line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('Model name')
    )
  except (OSError, subprocess.CalledProcessError, StopIteration):
    model = platform.processor() or 'unknown CPU'
  return f'{model}, {os.cpu_count()} cores'


def run_seed(name: str, experiment: Experiment, seed: int, workdir: str, log=print) -> dict:
  """Runs (or reads back) one seed; returns {'metrics': final_metrics, 'seconds': wall}.

  A run stopped before its end (preempted: the entry point checkpoints and exits 0
  on SIGTERM) resumes from its checkpoint on the next call; 'seconds' adds up the
  wall time of every call that ran it.

  Raises:
    RuntimeError: if the run fails (its last lines of stderr in the message) or
      stops before writing its final metrics.
  """
  run_dir = os.path.join(workdir, name, f'seed{seed}')
  final = os.path.join(run_dir, 'final_metrics.json')
  timing = os.path.join(run_dir, 'wall_seconds.txt')
  if not (os.path.exists(final) and os.path.exists(timing)):
    command = [
      sys.executable,
      '-m',
      f'experiments.{experiment.module}.main',
      *experiment.flags,
      f'--config.seed={seed}',
      f'--workdir={run_dir}',
      '--resume',
    ]
    log(f'[{name} seed {seed}] ' + ' '.join(command[1:]))
    start = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    # The timing file of a run stopped earlier holds the time of the calls so far.
    seconds = time.monotonic() - start + _read_seconds(timing)
    if result.returncode != 0:
      raise RuntimeError(f'{name} seed {seed} failed:\n' + result.stderr[-3000:])
    os.makedirs(run_dir, exist_ok=True)
    _write_seconds(timing, seconds)
    if not os.path.exists(final):
      raise RuntimeError(
        f'{name} seed {seed} stopped before its end (preempted?) after {seconds / 60:.1f} min '
        f'in all; its checkpoint in {run_dir} is kept: run again to resume'
      )
  with open(final, encoding='utf-8') as f:
    return {'metrics': json.load(f), 'seconds': _read_seconds(timing)}


def run_all(
  names: list[str], seeds: int, workdir: str, jobs: int = 1, log=print
) -> dict[str, list[dict]]:
  """Runs every (experiment, seed), `jobs` at a time; {name: [run_seed's result per seed]}.

  `seeds` 0 takes each experiment's own count. The result lists are in seed order
  whatever order the runs end in.

  Raises:
    RuntimeError: a run's failure; runs not yet started then never start, those
      under way are let finish.
  """
  tasks = [(name, seed) for name in names for seed in range(seeds or EXPERIMENTS[name].seeds)]
  failed = threading.Event()

  def run(name: str, seed: int) -> dict | None:
    if failed.is_set():
      return None  # Not started: an earlier run failed.
    try:
      return run_seed(name, EXPERIMENTS[name], seed, workdir, log)
    except RuntimeError:
      failed.set()
      raise

  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
    futures = {task: pool.submit(run, *task) for task in tasks}
  results: dict[str, list[dict]] = {name: [] for name in names}
  # Runs start in order, so a failed run comes before every run it kept from starting.
  for (name, _), future in futures.items():
    results[name].append(future.result())  # Re-raises a run's RuntimeError.
  return results


def _read_seconds(path: str) -> float:
  """The seconds written in `path`, 0 if there is no such file."""
  if not os.path.exists(path):
    return 0.0
  with open(path, encoding='utf-8') as f:
    return float(f.read())


def _write_seconds(path: str, seconds: float) -> None:
  with open(path, 'w', encoding='utf-8') as f:
    f.write(f'{seconds:.1f}\n')


def _metric(metrics: dict, key: str) -> float:
  """metrics[key], where 'a.b' means metrics['a']['b']."""
  value: Any = metrics
  for part in key.split('.'):
    value = value[part]
  return float(value)


def table(results: dict[str, list[dict]], experiments: dict[str, Experiment], where: str) -> str:
  """The Markdown table of `results` ({experiment: [run_seed's result per seed]}).

  One row per headline metric: median, min and max over the seeds, the seed count
  and the median wall time of one run.
  """
  lines = [
    f'Machine: {where}.',
    '',
    '| experiment | metric | median | min | max | seeds | wall time per run (median) |',
    '|---|---|---|---|---|---|---|',
  ]
  for name, runs in results.items():
    minutes = statistics.median(r['seconds'] for r in runs) / 60
    for key, label, scale in experiments[name].metrics:
      values = [_metric(r['metrics'], key) * scale for r in runs]
      lines.append(
        f'| {name} | {label} | {statistics.median(values):.2f} | {min(values):.2f} | '
        f'{max(values):.2f} | {len(values)} | {minutes:.1f} min |'
      )
  return '\n'.join(lines) + '\n'


_EXPERIMENTS = flags.DEFINE_list('experiments', list(EXPERIMENTS), 'Which experiments to run.')
_SEEDS = flags.DEFINE_integer('seeds', 0, 'Seeds per experiment (0: 3, and 2 for the DDPM).')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/reproduce', 'Where the runs and table go.')
_JOBS = flags.DEFINE_integer('jobs', 1, 'How many runs at once.', lower_bound=1)


def main(argv):
  del argv
  unknown = sorted(set(_EXPERIMENTS.value) - set(EXPERIMENTS))
  if unknown:
    sys.exit(f'error: unknown experiments {unknown}: use some of {sorted(EXPERIMENTS)}')
  workdir = os.path.join(ROOT, _WORKDIR.value)
  try:
    results = run_all(_EXPERIMENTS.value, _SEEDS.value, workdir, _JOBS.value)
  except RuntimeError as e:
    sys.exit(f'error: {e}')
  where = machine() + (f', {_JOBS.value} runs at once' if _JOBS.value > 1 else '')
  text = table(results, EXPERIMENTS, where)
  with open(os.path.join(workdir, 'table.md'), 'w', encoding='utf-8') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  app.run(main)
