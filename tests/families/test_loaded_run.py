"""Runs load back: `load_run` restores what training ended with, for every family.

Each family trains a few steps into a workdir once per module (checkpoints at steps 2
and 4); the test keeps the train state the trainer held at those steps and checks
the loaded parameters and the per-family calls against it.
"""

import json
import os
import subprocess
import sys

import chex
import jax
import numpy as np
from PIL import Image
import pytest

from experiments.cnn.configs import default as cnn_default
from experiments.ddpm.configs import tiny as ddpm_tiny
from experiments.lm.configs import tiny as lm_tiny
from experiments.seq2seq.configs import default as seq2seq_default
import research
from research import families
from research.data import image_classification
from research.data import text as text_lib
from research.data import tokenizers
from research.families import cnn
from research.generation import decoding
from research.tasks import sample_quality
from research.train import optimizers
from research.train import trainer

# One worker runs the file, so each family trains once (module-scoped fixtures).
pytestmark = pytest.mark.xdist_group('test_loaded_run')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 4  # Checkpoints at steps 2 and 4.


def _short(config, **overrides):
  """`config` locked (a mistyped override fails), trained STEPS steps, checkpointed
  and evaluated every 2, whole batches (fewer compiles), no progress bar."""
  config.lock()
  config.update(
    num_epochs=0,
    num_steps=STEPS,
    eval_every_steps=2,
    eval_every_epochs=0,
    checkpoint_every_steps=2,
    microbatches=1,
    progress=False,
    **overrides,
  )
  return config


def _train(family, workdir, keep_report=False):
  """Trains `family` in `workdir`. Returns ({step: host train state}, final metrics):
  the states its evaluation (step 2) and report (the last step) were given."""
  states = {}

  def keep(run, state):
    host = jax.device_get(run.driver.host_state(state))
    states[int(host.step)] = host

  # The families' own evaluations and reports (sample grids, judging classifiers,
  # decoding tables) are only run where a test reads them.
  evaluate, report = family.evaluate, family.report
  family.evaluate = lambda run, state, step: (
    keep(run, state) or (evaluate(run, state, step) if keep_report else {})
  )
  family.report = lambda run, state: keep(run, state) or (report(run, state) if keep_report else {})
  final = trainer.train_and_evaluate(family, str(workdir), log=lambda line: None)
  assert sorted(states) == [2, STEPS]
  return states, final


def _images(n, seed, size=8):
  rng = np.random.default_rng(seed)
  return image_classification.ImageDataset(
    rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
    rng.integers(0, 10, n).astype(np.int32),
    num_classes=10,
    class_names=tuple(f'digit {k}' for k in range(10)),
    name='random',
    version='0',
  )


@pytest.fixture(scope='module')
def cnn_run(tmp_path_factory):
  c = _short(
    cnn_default.get_config(), image_size=8, batch_size=16, model=dict(hidden_dim=16, conv_parts=1)
  )
  workdir = tmp_path_factory.mktemp('cnn')
  states, _ = _train(cnn.CNNClassifier(c, datasets=(_images(32, 0), _images(16, 1))), workdir)
  return workdir, states, c


TEXT = 'the cat sat on the mat. the dog sat on the log. ' * 8


@pytest.fixture(scope='module')
def lm_run(tmp_path_factory):
  c = _short(
    lm_tiny.get_config(), seq_len=8, sample=dict(prompts=('the ',), length=12, num_next_words=0)
  )
  vocab = tokenizers.CharTokenizer.from_text(TEXT)
  train, valid = text_lib.split_text(TEXT)
  corpus = text_lib.TextCorpus(vocab.encode(train), vocab.encode(valid), vocab, 'cats', '0')
  workdir = tmp_path_factory.mktemp('lm')
  states, final = _train(families.CharLanguageModel(c, corpus=corpus), workdir, keep_report=True)
  return workdir, states, final


@pytest.fixture(scope='module')
def seq2seq_run(tmp_path_factory):
  c = _short(
    seq2seq_default.get_config(),
    batch_size=16,
    steps_per_dispatch=1,
    generated=dict(num_train=64, num_test=16, max_length=6, num_letters=5),
    model=dict(emb_dim=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, mlp_dim=32),
    optimizer=dict(warmup_steps=1),
  )
  family = families.Seq2Seq(c)
  workdir = tmp_path_factory.mktemp('seq2seq')
  states, _ = _train(family, workdir)
  return workdir, states, family


@pytest.fixture(scope='module')
def ddpm_run(tmp_path_factory):
  c = _short(ddpm_tiny.get_config(), image_size=8, num_diffusion_steps=20, text=dict(num_heads=2))
  family = families.PromptDDPM(c, datasets=(_images(32, 0), _images(8, 1)))
  workdir = tmp_path_factory.mktemp('ddpm')
  states, _ = _train(family, workdir)
  return workdir, states, family


def test_cnn_loads_its_last_state_and_classifies_as_it(cnn_run):
  workdir, states, c = cnn_run
  loaded = research.load_run(str(workdir))
  assert isinstance(loaded, families.LoadedClassifier)
  assert loaded.step == STEPS and loaded.workdir == str(workdir)
  chex.assert_trees_all_equal(loaded.params, states[STEPS].params)
  assert loaded.class_names[3] == 'digit 3'  # Recorded in the manifest, no data read.
  images = _images(5, 2).image
  labels, probabilities = loaded.classify(images, batch_size=4)  # A padded last batch.
  classifier = sample_quality.make_classifier_fn(
    loaded.model, states[STEPS].params, cnn.preprocessing(c, train=False)
  )
  expected = jax.nn.softmax(classifier(images)[0])
  np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(labels, np.argmax(expected, -1))
  with pytest.raises(research.UserInputError, match=r'uint8 images of shape \(N, 8, 8, 1 or 3\)'):
    loaded.classify(images.astype(np.float32))


def test_a_given_step_loads_that_checkpoint(cnn_run):
  workdir, states, _ = cnn_run
  loaded = research.load_run(str(workdir), step=2)
  assert loaded.step == 2
  chex.assert_trees_all_equal(loaded.params, states[2].params)
  with pytest.raises(research.UserInputError, match=r'no checkpoint at step 3; it has \[2, 4\]'):
    research.load_run(str(workdir), step=3)


def test_lm_continues_text_as_its_report_sampled(lm_run):
  workdir, states, final = lm_run
  loaded = research.load_run(str(workdir), family='lm')
  chex.assert_trees_all_equal(loaded.params, states[STEPS].params)
  # The report sampled its prompt with the config's settings and this key.
  rng = jax.random.fold_in(jax.random.key(loaded.config.seed), 1)
  assert loaded.continue_text('the ', 12, rng=rng) == final['samples'][0]
  greedy = loaded.continue_text('the ', 5, temperature=0.0)
  assert greedy.startswith('the ') and len(greedy) <= 9
  with pytest.raises(research.UserInputError, match='non-empty prompt'):
    loaded.continue_text('', 5)


def test_seq2seq_translates_as_its_final_state_decodes(seq2seq_run):
  workdir, states, family = seq2seq_run
  loaded = research.load_run(str(workdir))
  assert isinstance(loaded, families.LoadedSeq2Seq)
  chex.assert_trees_all_equal(loaded.params, states[STEPS].params)
  sources = ['abc', 'edcba', 'a']
  vocab = family.train_set.vocab
  inputs = np.zeros((3, loaded.model.config.max_input_length), np.int32)
  for n, s in enumerate(sources):
    inputs[n, : len(s)] = vocab.encode(s)
  expected = decoding.decode_transformer(loaded.model, states[STEPS].params, inputs, beam_size=0)
  greedy = loaded.translate(sources, beam_size=0)
  assert greedy == [vocab.decode(row) for row in np.asarray(expected)]
  assert loaded.translate(sources, beam_size=1) == greedy  # One beam is greedy.
  with pytest.raises(research.UserInputError, match="character 'z' is not in the vocabulary"):
    loaded.translate(['abz'])
  with pytest.raises(research.UserInputError, match='has 7 tokens; the model reads at most 6'):
    loaded.translate(['abcdeab'])


def test_ddpm_samples_with_the_parameter_average(ddpm_run):
  workdir, states, family = ddpm_run
  loaded = research.load_run(str(workdir), family='ddpm')
  ema = optimizers.ema_params(states[STEPS].opt_state)
  chex.assert_trees_all_equal(loaded.params, ema)
  prompts = ['a thick seven', 'a handwritten two']
  key = jax.random.key(3)
  samples = loaded.sample(prompts, rng=key)
  assert samples.dtype == np.uint8 and samples.shape == (2, 8, 8, 1)
  tokens = family.tokenizer.encode_batch(prompts, loaded.config.text.max_length)
  # The training state's average, tokenised by the training tokenizer, sampled by the
  # same compiled program.
  np.testing.assert_array_equal(samples, loaded.family.sampler(ema, tokens, key))
  assert loaded.unknown_words(['a purple seven']) == ['purple']
  with pytest.raises(research.UserInputError, match='has no words'):
    loaded.sample(['!'])


def test_workdirs_without_a_run_or_checkpoint_say_so(tmp_path, cnn_run):
  with pytest.raises(research.UserInputError, match='holds no training run'):
    research.load_run(str(tmp_path))
  with pytest.raises(research.UserInputError, match='holds no training run'):
    research.load_run(str(tmp_path / 'missing'))
  (tmp_path / 'manifest.json').write_text((cnn_run[0] / 'manifest.json').read_text())
  with pytest.raises(research.UserInputError, match='holds no checkpoint yet'):
    research.load_run(str(tmp_path))
  with pytest.raises(research.UserInputError, match="holds a 'cnn' run, not a 'ddpm' run"):
    research.load_run(str(cnn_run[0]), family='ddpm')


def test_manifests_record_what_loading_needs(cnn_run, seq2seq_run):
  facts = json.loads((cnn_run[0] / 'manifest.json').read_text())['data']
  assert facts['class_names'][0] == 'digit 0'
  facts = json.loads((seq2seq_run[0] / 'manifest.json').read_text())['data']
  assert facts['tokenizer'] == {'kind': 'chars', 'chars': 'abcde', 'strict': True}


@pytest.mark.parametrize(
  'tokenizer',
  [
    tokenizers.CharTokenizer('abc', strict=True),
    tokenizers.ByteTokenizer(),
    tokenizers.WordTokenizer(('a', 'seven')),
  ],
)
def test_tokenizer_records_read_back(tokenizer):
  record = json.loads(json.dumps(tokenizers.to_record(tokenizer)))  # As a manifest holds it.
  assert tokenizers.from_record(record) == tokenizer


def test_sample_command_writes_a_grid(ddpm_run, tmp_path):
  output = tmp_path / 'grid.png'
  command = [
    sys.executable,
    '-m',
    'experiments.ddpm.sample',
    f'--workdir={ddpm_run[0]}',
    '--prompt=a thick seven',
    '--prompt=a two',
    '--num_samples=3',
    f'--output={output}',
    '--step=2',
  ]
  out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert str(output) in out.stdout
  # 2 prompts x 3 samples of 8x8 with 2-pixel gaps, upscaled 2x.
  assert Image.open(output).size == (2 * (3 * 10 + 2), 2 * (2 * 10 + 2))
  bad = subprocess.run(
    command[:3] + [f'--workdir={tmp_path}', '--prompt=a two'],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith('error: workdir'), bad.stderr
