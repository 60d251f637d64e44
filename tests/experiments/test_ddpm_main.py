"""The DDPM entry point end to end on tiny data, and bad input."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from experiments.ddpm.configs import tiny
from research import families
from research.data import glyph_attributes
from research.data import image_classification
from research.data import prompt_grammar
from research.families import ddpm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_end_to_end_writes_grids_metrics_and_quality(offline_data_dir, tmp_path, monkeypatch):
  c = tiny.get_config()
  c.data_dir = offline_data_dir
  lines, reads = [], []
  load = image_classification.load_image_classification
  monkeypatch.setattr(
    image_classification,
    'load_image_classification',
    lambda name, split, **kw: reads.append(split) or load(name, split, **kw),
  )
  final = families.train_and_evaluate('ddpm', c, str(tmp_path), log=lines.append)
  # The judging classifier reuses the DDPM's data: each split is read once.
  assert reads == [c.train_split, c.test_split]
  for name in (
    'manifest.json',
    'metrics.jsonl',
    'final_metrics.json',
    'samples_step2.png',
    'samples_final.png',
    'samples_showcase.png',
  ):
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
  assert 0 < final['frechet_varying_features'] <= 16  # Dead ReLU units left out.
  assert not any(line.startswith('Note: the Fréchet distance fits') for line in lines)
  assert final['frechet_distance'] >= 0 and final['sampling_seconds_per_image'] > 0
  # One showcase row per free-form prompt; 'draw' is a word training never saw.
  assert Image.open(tmp_path / 'samples_showcase.png').size[1] == 2 * (
    len(c.prompts.showcase) * 10 + 2
  )
  assert any("never trained on (read as unknown): ['draw']" in line for line in lines)
  # Paraphrases: 10 classes x 1 ('draw a seven'), the words new to the model named.
  assert 0 <= final['paraphrase_accuracy'] <= 1
  assert final['unknown_paraphrase_words'] == ['draw']
  assert set(final['attributes']) == {'thickness', 'size', 'slant'}
  assert set(final['attributes']['slant']) == {'agreement', 'mean_upright', 'mean_slanted'}
  assert next(line for line in lines if line.startswith('[Epoch ')).startswith('[Epoch 1] loss = ')
  assert any(line.startswith('Samples classified as their prompt: ') for line in lines)
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [r['split'] for r in records] == ['train', 'epoch', 'train', 'epoch', 'final']


def test_every_ddpm_seed_is_judged_by_the_same_classifier():
  # The judge takes the DDPM's data fields but keeps its own seed, so the Fréchet
  # distances of two DDPM seeds are measured in the same features.
  judges = []
  for seed in (0, 7):
    c = tiny.get_config()
    c.seed = seed
    judges.append(ddpm.judge_config(c))
  assert judges[0].seed == judges[1].seed == tiny.get_config().classifier.seed
  assert judges[0].to_dict() == judges[1].to_dict()
  assert judges[0].image_size == tiny.get_config().image_size  # Data fields do follow.


def test_training_prompts_name_each_images_class_and_only_its_measured_attributes(offline_data_dir):
  c = tiny.get_config()
  c.data_dir = offline_data_dir
  c.prompts.describe_rate = c.prompts.attribute_rate = 1.0  # Name every measured one.
  c.prompts.unknown_word_rate = 0.0
  family = ddpm.PromptDDPM(c)
  data = family.load_data()
  levels = data.train['levels']
  assert levels.shape == (64, 3) and set(np.unique(levels)) == {0, 1, 2}
  batch = {k: jnp.asarray(v) for k, v in data.train.items()}
  tokens = jax.jit(family._prompt_fn(), static_argnums=2)(jax.random.key(0), batch, True)
  words = {w for pair in glyph_attributes.WORDS.values() for w in pair}
  for row, label, lv in zip(np.asarray(tokens), data.train['label'], levels, strict=True):
    prompt = family.tokenizer.decode(row).split()
    assert set(prompt) & set(prompt_grammar.class_names('mnist', '0123456789', True)[label])
    named = {w for w in prompt if w in words}
    asked = {
      glyph_attributes.WORDS[a][v - 1] for a, v in zip(c.prompts.attributes, lv, strict=True) if v
    }
    assert named == asked, (prompt, lv)


@pytest.mark.parametrize(
  'override,message',
  [
    ('--config.sampler=euler', "unknown sampler 'euler'"),
    ('--config.image_size=30', 'image size must be a positive multiple of 4'),
    ("--config.prompts.templates=('a {name}',)", 'must use exactly the fields'),
    ("--config.prompts.attributes=('colour',)", "unknown attribute 'colour'"),
    ('--config.text.max_length=6', 'raise text.max_length'),
  ],
)
def test_bad_input_gives_one_clear_line(tmp_path, override, message):
  out = subprocess.run(
    [
      sys.executable,
      '-m',
      'experiments.ddpm.main',
      f'--workdir={tmp_path}/run',
      '--config=experiments/ddpm/configs/default.py',
      override,
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert out.returncode == 1
  assert message in out.stderr.strip().splitlines()[-1]
