"""The seq2seq entry point, end to end on tiny generated data (subprocesses)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ['--config.num_epochs=2', '--config.batch_size=16', '--config.eval_batch_size=16',
        '--config.generated.num_train=48', '--config.generated.num_test=20',
        '--config.generated.max_length=5', '--config.model.emb_dim=16',
        '--config.model.mlp_dim=32', '--config.model.num_heads=2',
        '--config.model.num_encoder_layers=1', '--config.model.num_decoder_layers=1',
        '--config.optimizer.warmup_steps=1', '--config.steps_per_dispatch=2',
        '--config.beam_size=2', '--config.num_examples_to_print=2']


def _main(*args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'experiments.seq2seq.main', *args],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


@pytest.mark.parametrize('task', ['reverse', 'addition'])
def test_trains_decodes_and_reports(tmp_path, task):
  run = _main(f'--workdir={tmp_path}', f'--config.task={task}', *TINY)
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'Test: token accuracy' in run.stdout
  assert 'reference' in run.stdout and 'beam' in run.stdout
  final = json.loads((tmp_path / 'final_metrics.json').read_text())
  for key in ('test_token_accuracy', 'test_greedy_exact_accuracy',
              'test_beam_exact_accuracy', 'decode_sequences_per_second',
              'train_tokens_per_second'):
    assert key in final
  assert 0.0 <= final['test_greedy_exact_accuracy'] <= 1.0
  assert final['test_examples'] == 20
  assert (tmp_path / 'examples.txt').exists() and (tmp_path / 'manifest.json').exists()


def test_user_mistakes_give_one_line_and_exit_1(tmp_path):
  run = _main(f'--workdir={tmp_path}', '--config.task=sort')
  assert run.returncode == 1
  assert run.stderr.strip().splitlines()[-1].startswith('error: unknown task')
  typo = _main(f'--workdir={tmp_path}', '--config.beam_sise=3')
  assert typo.returncode != 0
