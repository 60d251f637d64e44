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


# Reversal runs the length split (test lengths 6-7, never trained on), addition the
# stratified one.
LENGTH_SPLIT = {
  'split': 'length',
  'test_min_length': 6,
  'test_max_length': 7,
  'equal_lengths': True,
}
SPLITS = {'reverse': LENGTH_SPLIT, 'addition': {}}


@pytest.mark.parametrize('task', ['reverse', 'addition'])
def test_trains_decodes_and_reports(tmp_path, task):
  split_flags = [f'--config.generated.{k}={v}' for k, v in SPLITS[task].items()]
  run = _main(f'--workdir={tmp_path}', f'--config.task={task}', *TINY, *split_flags)
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
  config = default.get_config()
  config.task, g = task, config.generated
  g.num_train, g.num_test, g.max_length = 48, 20, 5  # As in TINY.
  g.update(SPLITS[task])
  train, test, _ = seq2seq_family.load_splits(config)
  assert _by_length_counts(final, 'test') == _length_counts(test.inputs)
  if task == 'addition':
    assert 'train_greedy_exact_accuracy' not in final
    return
  # The length split also decodes as many training strings as there are test ones.
  assert 'Exact sequences per input length (training strings)' in run.stdout
  assert _by_length_counts(final, 'train') == _length_counts(train.inputs[:20])
  assert set(_by_length_counts(final, 'train')) == {'1', '2', '3', '4', '5'}


def _length_counts(inputs):
  lengths, counts = np.unique((inputs != 0).sum(-1), return_counts=True)
  return {str(n): c for n, c in zip(lengths, counts, strict=True)}


def _by_length_counts(final, split):
  """Examples per length of final['<split>_exact_accuracy_by_length'], after checking
  that per-length exact match agrees with the overall one (computed apart, on device)."""
  by_length = final[f'{split}_exact_accuracy_by_length']
  total = final['test_examples' if split == 'test' else 'train_decoded_examples']
  assert sum(v['examples'] for v in by_length.values()) == total
  for d in ('greedy', 'beam'):
    per = [v[f'{d}_exact_accuracy'] for v in by_length.values()]
    weighted = sum(v[f'{d}_exact_accuracy'] * v['examples'] for v in by_length.values())
    assert weighted / total == pytest.approx(final[f'{split}_{d}_exact_accuracy'])
    assert final[f'{split}_{d}_exact_accuracy_min_over_lengths'] == min(per)
  return {k: v['examples'] for k, v in by_length.items()}


def test_length_generalisation_config_tests_on_longer_strings_only():
  config = length_generalisation.get_config()
  config.generated.num_train, config.generated.num_test = 200, 40
  train, test, references = seq2seq_family.load_splits(config)
  lengths = lambda d: set((d.inputs != 0).sum(-1).tolist())
  assert lengths(train) <= set(range(1, 17)) and lengths(test) == set(range(17, 25))
  # Every training length gets 200 / 16 strings (the first 8 lengths one more).
  counts = _length_counts(train.inputs)
  assert counts == {str(n): 13 if n <= 8 else 12 for n in range(1, 17)}
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
