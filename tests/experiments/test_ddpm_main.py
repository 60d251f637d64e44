"""The DDPM entry point end to end on tiny data, and bad input."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from experiments.ddpm.configs import tiny
from research import families
from research.data import image_classification

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_end_to_end_writes_grids_metrics_and_quality(offline_data_dir, tmp_path,
                                                     monkeypatch):
  c = tiny.get_config()
  c.data_dir = offline_data_dir
  lines, reads = [], []
  load = image_classification.load_image_classification
  monkeypatch.setattr(image_classification, 'load_image_classification',
                      lambda name, split, **kw: reads.append(split) or load(
                          name, split, **kw))
  final = families.train_and_evaluate('ddpm', c, str(tmp_path), log=lines.append)
  # The judging classifier reuses the DDPM's data: each split is read once.
  assert reads == [c.train_split, c.test_split]
  for name in ('manifest.json', 'metrics.jsonl', 'final_metrics.json',
               'samples_step2.png', 'samples_final.png'):
    assert (tmp_path / name).stat().st_size > 0, name
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']
  grid = Image.open(tmp_path / 'samples_final.png')
  # 10 prompts x 2 samples of 8x8 with 2-pixel gaps, upscaled 2x.
  assert grid.size == (2 * (2 * 10 + 2), 2 * (10 * 10 + 2))
  manifest = json.loads((tmp_path / 'manifest.json').read_text())
  assert manifest['experiment'] == 'ddpm'
  assert manifest['data']['prompts'][7] == 'a handwritten seven'
  assert 0 <= final['prompt_accuracy'] <= 1 and final['num_samples'] == 30
  # The distance's features are the judge's fc1 (16 wide here): 30 samples, full rank.
  assert final['frechet_feature_dims'] == 16
  assert not any(l.startswith('Note: the Fréchet distance fits') for l in lines)
  assert final['frechet_distance'] >= 0 and final['sampling_seconds_per_image'] > 0
  assert lines[1].startswith('[Epoch 1] loss = ')
  assert any(l.startswith('Samples classified as their prompt: ') for l in lines)
  records = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [r['split'] for r in records] == ['train', 'epoch', 'train', 'epoch', 'final']


@pytest.mark.parametrize('override,message', [
    ('--config.sampler=euler', "unknown sampler 'euler'"),
    ('--config.image_size=30', 'image size must be a positive multiple of 4'),
])
def test_bad_input_gives_one_clear_line(tmp_path, override, message):
  out = subprocess.run(
      [sys.executable, '-m', 'experiments.ddpm.main', f'--workdir={tmp_path}/run',
       '--config=experiments/ddpm/configs/default.py', override],
      cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert out.returncode == 1
  assert message in out.stderr.strip().splitlines()[-1]
