"""The LM experiment end to end on a tiny text: main, resume, and user errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments.lm.configs import tiny
from research import families
from research.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = ''.join(f'The cat sat on the mat number {i}.\nThe dog did not.\n' for i in range(60))


@pytest.fixture(name='text_file')
def _text_file(tmp_path):
  path = tmp_path / 'tiny.txt'
  path.write_text(TEXT, encoding='utf-8')
  return str(path)


def _config(text_file, **overrides):
  c = tiny.get_config()
  c.text_file = text_file
  for k, v in overrides.items():
    c[k] = v
  return c


def _main(*args):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run(
    [sys.executable, '-m', 'experiments.lm.main', *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_main_runs_end_to_end(tmp_path, text_file):
  run = _main(
    '--config=experiments/lm/configs/tiny.py',
    f'--workdir={tmp_path / "w"}',
    f'--config.text_file={text_file}',
    '--config.model.cell=gru',
  )
  assert run.returncode == 0, run.stderr[-3000:]
  final = json.loads((tmp_path / 'w' / 'final_metrics.json').read_text())
  assert final['steps'] == 6
  assert np.isfinite(final['validation_bits_per_char'])
  assert final['bigram_bits_per_char'] > 0
  assert final['samples'][0].startswith('The cat sat on the')
  assert 'bits/char' in run.stdout and 'Sample:' in run.stdout
  words = final['next_words']['The cat sat on the']
  assert len(words) == 5 and all(w.isalpha() for w, _ in words)
  probs = [p for _, p in words]
  assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
  assert "Next words after 'The cat sat on the':" in run.stdout
  for name in ('manifest.json', 'metrics.jsonl', 'samples.txt'):
    assert (tmp_path / 'w' / name).exists()
  manifest = json.loads((tmp_path / 'w' / 'manifest.json').read_text())
  assert manifest['experiment'] == 'lm' and 'T' in manifest['data']['chars']


def test_bad_input_is_one_line_and_exit_1(tmp_path, text_file):
  run = _main(
    '--config=experiments/lm/configs/tiny.py',
    f'--workdir={tmp_path / "w"}',
    f'--config.text_file={text_file}',
    '--config.model.cell=rnn',
  )
  assert run.returncode == 1
  assert run.stderr.strip().splitlines()[-1].startswith("error: unknown model.cell 'rnn'")
  assert 'Traceback' not in run.stderr


def test_resume_equals_an_uninterrupted_run(tmp_path, text_file):
  log = lambda _: None
  straight = families.train_and_evaluate('lm', _config(text_file), str(tmp_path / 'a'), log=log)
  interrupted = _config(text_file, num_steps=3)
  interrupted.optimizer.total_steps = 6  # The same lr schedule as the full run.
  families.train_and_evaluate('lm', interrupted, str(tmp_path / 'b'), log=log)
  resumed = families.train_and_evaluate(
    'lm', _config(text_file), str(tmp_path / 'b'), resume=True, log=log
  )
  assert resumed['steps'] == straight['steps'] == 6
  np.testing.assert_allclose(resumed['validation_loss'], straight['validation_loss'], rtol=1e-5)
  assert resumed['samples'] == straight['samples']
  with pytest.raises(UserInputError, match='already holds checkpoints'):
    families.train_and_evaluate('lm', _config(text_file), str(tmp_path / 'a'), log=log)
