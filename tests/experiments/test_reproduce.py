"""The reproduction driver: real tiny runs per seed, kept between calls; the table."""

import os
import subprocess
import threading
import time

import pytest

from experiments import reproduce

TINY_LM = reproduce.Experiment(
  'lm',
  ('--config=experiments/lm/configs/tiny.py', '--config.sample.num_next_words=0'),
  reproduce._BPC,
)  # pylint: disable=protected-access


@pytest.fixture(name='tiny_lm')
def _tiny_lm(tmp_path):
  text = tmp_path / 'text.txt'
  text.write_text(''.join(f'The cat sat on the mat {i}.\n' for i in range(200)))
  return reproduce.Experiment(
    TINY_LM.module, TINY_LM.flags + (f'--config.text_file={text}',), TINY_LM.metrics
  )


def test_each_seed_runs_once_and_the_seed_reaches_the_run(tiny_lm, tmp_path):
  runs = [
    reproduce.run_seed('lm', tiny_lm, s, str(tmp_path / 'w'), log=lambda _: None) for s in (0, 1)
  ]
  bpc = [r['metrics']['validation_bits_per_char'] for r in runs]
  assert bpc[0] != bpc[1]  # Different seeds, different initialisations.
  assert all(r['seconds'] > 0 for r in runs)
  # A finished seed is read back, not run again (this entry point would fail).
  broken = reproduce.Experiment('no_such_experiment', (), tiny_lm.metrics)
  again = reproduce.run_seed('lm', broken, 1, str(tmp_path / 'w'), log=lambda _: None)
  assert again == runs[1]
  with pytest.raises(RuntimeError, match='no_such_experiment seed 2 failed'):
    reproduce.run_seed('no_such_experiment', broken, 2, str(tmp_path / 'w'), log=lambda _: None)


def test_a_preempted_seed_resumes_and_its_wall_time_adds_up(tmp_path, monkeypatch):
  # The entry point exits 0 on SIGTERM after a checkpoint; simulate that, then a
  # resumed call that finishes. A fake clock: the first call takes 60 s, the second 30.
  clock = [0.0]
  calls = []

  def fake_run(command, **_):
    calls.append(command)
    if len(calls) == 1:
      clock[0] += 60.0
    else:
      clock[0] += 30.0
      with open(tmp_path / 'w' / 'lm' / 'seed3' / 'final_metrics.json', 'w') as f:
        f.write('{"validation_bits_per_char": 2.5}')
    return subprocess.CompletedProcess(command, 0, '', '')

  monkeypatch.setattr(reproduce.subprocess, 'run', fake_run)
  monkeypatch.setattr(reproduce.time, 'monotonic', lambda: clock[0])
  with pytest.raises(RuntimeError, match=r'lm seed 3 stopped before its end .* run again'):
    reproduce.run_seed('lm', TINY_LM, 3, str(tmp_path / 'w'), log=lambda _: None)
  done = reproduce.run_seed('lm', TINY_LM, 3, str(tmp_path / 'w'), log=lambda _: None)
  assert done == {'metrics': {'validation_bits_per_char': 2.5}, 'seconds': 90.0}
  assert all('--resume' in c for c in calls) and len(calls) == 2


def test_table_has_median_min_max_per_metric_and_the_machine():
  runs = [
    {
      'metrics': {
        'prompt_accuracy': a,
        'frechet_distance': f,
        'paraphrase_accuracy': a,
        'attributes': {n: {'agreement': g} for n in ('thickness', 'size', 'slant')},
      },
      'seconds': s,
    }
    for a, f, g, s in ((0.99, 20.0, 0.6, 60.0), (0.90, 30.0, 0.9, 120.0), (0.97, 12.0, 0.7, 600.0))
  ]
  text = reproduce.table({'ddpm': runs}, reproduce.EXPERIMENTS, 'Some CPU, 2 cores')
  lines = text.splitlines()
  assert lines[0] == 'Machine: Some CPU, 2 cores.'
  assert (
    '| ddpm | samples classified as their prompt (%) | 97.00 | 90.00 | 99.00 | 3 | 2.0 min |'
  ) in lines
  assert '| ddpm | Frechet distance | 20.00 | 12.00 | 30.00 | 3 | 2.0 min |' in lines
  # Nested metrics, read by dotted key.
  assert (
    '| ddpm | asked slant followed (%, chance 50) | 70.00 | 60.00 | 90.00 | 3 | 2.0 min |'
  ) in lines
  assert 'model name' not in reproduce.machine().lower() and 'cores' in reproduce.machine()


def test_every_experiment_names_an_existing_entry_point_and_config():
  for name, experiment in reproduce.EXPERIMENTS.items():
    main = os.path.join(reproduce.ROOT, 'experiments', experiment.module, 'main.py')
    assert os.path.exists(main), name
    configs = [f.split('=', 1)[1] for f in experiment.flags if f.startswith('--config=')]
    assert len(configs) == 1 and os.path.exists(os.path.join(reproduce.ROOT, configs[0])), name


def test_length_generalisation_rows_read_the_per_length_buckets():
  # Shaped as the seq2seq family's final metrics: buckets keyed by length as text.
  by_length = {
    str(n): {'greedy_exact_accuracy': a, 'beam_exact_accuracy': a}
    for n, a in ((17, 0.6), (20, 0.1), (22, 0.05), (24, 0.0))
  }
  runs = [
    {
      'metrics': {
        'test_greedy_exact_accuracy': 0.08,
        'test_beam_exact_accuracy': 0.09,
        'test_exact_accuracy_by_length': by_length,
        'train_greedy_exact_accuracy': 0.995,
        'train_greedy_exact_accuracy_min_over_lengths': 0.97,
      },
      'seconds': 600.0,
    }
  ]
  lines = reproduce.table(
    {'length_generalisation': runs}, reproduce.EXPERIMENTS, 'Some CPU'
  ).splitlines()
  assert (
    '| length_generalisation | exact match at 17 letters, greedy (%) | 60.00 | 60.00 '
    '| 60.00 | 1 | 10.0 min |'
  ) in lines
  assert any('at 20 letters, greedy (%) | 10.00 |' in line for line in lines)
  assert any('on 17-24 letters, greedy (%) | 8.00 |' in line for line in lines)
  assert any('in distribution, worst length, greedy (%) | 97.00 |' in line for line in lines)


def test_jobs_run_seeds_at_once_and_results_stay_in_seed_order(monkeypatch):
  # Two fake runs that each wait for the other: they only both end if they overlap.
  barrier = threading.Barrier(2, timeout=10)

  def fake_run_seed(name, experiment, seed, workdir, log):
    del experiment, workdir, log
    barrier.wait()
    time.sleep(0.05 * (1 - seed))  # Seed 1 ends first.
    return {'metrics': {'seed': seed}, 'seconds': 1.0, 'name': name}

  monkeypatch.setattr(reproduce, 'run_seed', fake_run_seed)
  results = reproduce.run_all(['ptb_small'], 2, '/unused', jobs=2)
  assert [r['metrics']['seed'] for r in results['ptb_small']] == [0, 1]


def test_a_failed_run_stops_the_runs_not_yet_started(monkeypatch):
  started = []

  def fake_run_seed(name, experiment, seed, workdir, log):
    del experiment, workdir, log
    started.append((name, seed))
    if seed == 1:
      raise RuntimeError(f'{name} seed {seed} failed')
    return {'metrics': {}, 'seconds': 1.0}

  monkeypatch.setattr(reproduce, 'run_seed', fake_run_seed)
  with pytest.raises(RuntimeError, match='ptb_small seed 1 failed'):
    reproduce.run_all(['ptb_small', 'cnn'], 3, '/unused', jobs=1)
  assert started == [('ptb_small', 0), ('ptb_small', 1)]
