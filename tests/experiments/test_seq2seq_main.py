"""The seq2seq entry point, end to end on tiny generated data (subprocesses), and
the splits the length-generalisation config asks for."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments.seq2seq.configs import default
from experiments.seq2seq.configs import length_generalisation
from research.families import seq2seq as seq2seq_family

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = [
  '--config.num_epochs=2',
  '--config.batch_size=16',
  '--config.eval_batch_size=16',
  '--config.generated.num_train=48',
  '--config.generated.num_test=20',
  '--config.generated.max_length=5',
  '--config.model.emb_dim=16',
  '--config.model.mlp_dim=32',
  '--config.model.num_heads=2',
  '--config.model.num_encoder_layers=1',
  '--config.model.num_decoder_layers=1',
  '--config.optimizer.warmup_steps=1',
  '--config.steps_per_dispatch=2',
  '--config.beam_size=2',
  '--config.num_examples_to_print=2',
]


def _main(*args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run(
    [sys.executable, '-m', 'experiments.seq2seq.main', *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


@pytest.mark.parametrize('task', ['reverse', 'addition'])
def test_trains_decodes_and_reports(tmp_path, task):
  run = _main(f'--workdir={tmp_path}', f'--config.task={task}', *TINY)
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'Test: token accuracy' in run.stdout
  assert 'reference' in run.stdout and 'beam' in run.stdout
  final = json.loads((tmp_path / 'final_metrics.json').read_text())
  for key in (
    'test_token_accuracy',
    'test_greedy_exact_accuracy',
    'test_beam_exact_accuracy',
    'decode_sequences_per_second',
    'train_tokens_per_second',
  ):
    assert key in final
  assert 0.0 <= final['test_greedy_exact_accuracy'] <= 1.0
  assert final['test_examples'] == 20
  assert (tmp_path / 'examples.txt').exists() and (tmp_path / 'manifest.json').exists()
  assert 'Exact sequences per input length' in run.stdout
  by_length = _check_by_length(final)
  config = default.get_config()
  config.task, g = task, config.generated
  g.num_train, g.num_test, g.max_length = 48, 20, 5  # As in TINY.
  _, test, _ = seq2seq_family.load_splits(config)
  lengths, counts = np.unique((test.inputs != 0).sum(-1), return_counts=True)
  assert {k: v['examples'] for k, v in by_length.items()} == {
    str(n): c for n, c in zip(lengths, counts, strict=True)
  }  # Bucketed the test set's lengths.


def _check_by_length(final):
  """Per-length exact match agrees with the overall one (computed apart, on device)."""
  by_length = final['test_exact_accuracy_by_length']
  assert sum(v['examples'] for v in by_length.values()) == final['test_examples']
  for d in ('greedy', 'beam'):
    per = [v[f'{d}_exact_accuracy'] for v in by_length.values()]
    weighted = sum(v[f'{d}_exact_accuracy'] * v['examples'] for v in by_length.values())
    assert weighted / final['test_examples'] == pytest.approx(final[f'test_{d}_exact_accuracy'])
    assert final[f'test_{d}_exact_accuracy_min_over_lengths'] == min(per)
  return by_length


def test_length_generalisation_config_tests_on_longer_strings_only():
  config = length_generalisation.get_config()
  config.generated.num_train, config.generated.num_test = 200, 40
  train, test, references = seq2seq_family.load_splits(config)
  lengths = lambda d: set((d.inputs != 0).sum(-1).tolist())
  assert lengths(train) <= set(range(1, 17)) and lengths(test) == set(range(17, 25))
  assert train.inputs.shape[1] == test.inputs.shape[1] == 24 and references is None


def test_user_mistakes_give_one_line_and_exit_1(tmp_path):
  run = _main(f'--workdir={tmp_path}', '--config.task=sort')
  assert run.returncode == 1
  assert run.stderr.strip().splitlines()[-1].startswith('error: unknown task')
  overlap = _main(
    f'--workdir={tmp_path}',
    '--config.generated.split=length',
    '--config.generated.test_min_length=10',
    '--config.generated.test_max_length=20',
  )
  assert overlap.returncode == 1
  assert 'overlap the training lengths 1..16' in overlap.stderr.strip().splitlines()[-1]
  typo = _main(f'--workdir={tmp_path}', '--config.beam_sise=3')
  assert typo.returncode != 0
