"""The Penn Treebank configs hold Zaremba et al. 2014's settings, and the word-level
run trains, evaluates validation and test and samples words (on a tiny corpus)."""

import jax
import numpy as np
import pytest

from experiments.lm.configs import ptb_medium
from experiments.lm.configs import ptb_small
from research import families
from research.data import ptb
from research.models import rnn
from research.train import optimizers
from research.train import settings
from research.train import state as state_lib
from research.train import trainer


def _rates_by_epoch(c, steps_per_epoch=10):
  opt = settings.optimizer_config(c.optimizer, 0, steps_per_epoch)
  schedule = optimizers.make_schedule(opt)
  return [float(schedule(e * steps_per_epoch)) for e in range(c.num_epochs)]


def test_small_config_is_the_papers_small_setting():
  c = ptb_small.get_config()
  assert (c.dataset, c.carry_state, c.eval_streams) == ('ptb', True, 1)
  assert (c.batch_size, c.seq_len, c.num_epochs) == (20, 20, 13)
  m = c.model
  assert (m.cell, m.num_layers, m.hidden_dim, m.embed_dim) == ('lstm', 2, 200, 200)
  assert (m.dropout_rate, m.init_range) == (0.0, 0.1)
  # Rate 1 and clipping 5 on a loss summed over 20 steps: x20 and /20 on our mean.
  assert (c.optimizer.name, c.optimizer.momentum, c.optimizer.weight_decay) == ('sgd', 0.0, 0.0)
  assert c.optimizer.clip_grad_norm == pytest.approx(5.0 / 20)
  # Rate 1 (x20) for 4 epochs, then halved every epoch.
  want = [20.0] * 4 + [20.0 * 0.5**k for k in range(1, 10)]
  np.testing.assert_allclose(_rates_by_epoch(c), want)


def test_medium_config_is_the_papers_medium_setting():
  c = ptb_medium.get_config()
  m = c.model
  assert (c.seq_len, c.num_epochs, m.hidden_dim, m.embed_dim) == (35, 39, 650, 650)
  assert (m.dropout_rate, m.embed_dropout, m.init_range) == (0.5, True, 0.05)
  assert c.optimizer.clip_grad_norm == pytest.approx(5.0 / 35)
  rates = _rates_by_epoch(c)
  np.testing.assert_allclose(rates[:6], [35.0] * 6)
  np.testing.assert_allclose(rates[6:9], [35.0 / 1.2, 35.0 / 1.2**2, 35.0 / 1.2**3], rtol=1e-6)
  gpu = ptb_medium.get_config('gpu')
  assert (gpu.batch_size, gpu.steps_per_dispatch, gpu.max_train_seconds) == (20, 8, 0.0)


def test_small_model_has_the_papers_parameters_in_the_init_range():
  c = ptb_small.get_config()
  config = settings.model_settings(rnn.CharLMConfig, c.model, vocab_size=10_002)
  module = rnn.CharLM(config)
  params = module.init(jax.random.key(0), np.zeros((1, 20), np.int32), train=False)['params']
  counts = state_lib.count_params(params)
  # Embedding V x 200, two LSTMs 4 x 200 x (200 + 200) + 2 x 800 (Torch's b_ih and
  # b_hh), softmax 200 x V + V.
  assert counts == {
    'embed': 10_002 * 200,
    'layer_0': 321_600,
    'layer_1': 321_600,
    'output': 200 * 10_002 + 10_002,
    'total': 4_654_002,
  }
  leaves = jax.tree.leaves(params)
  assert max(float(np.abs(x).max()) for x in leaves) <= np.float32(0.1)
  assert min(float(np.abs(x).max()) for x in leaves) > 0.09  # Biases drawn too.


def _tiny_corpus():
  rng = np.random.default_rng(0)
  words = [f'w{i}' for i in range(30)]

  def text(lines):
    return ''.join(' ' + ' '.join(rng.choice(words, 6)) + ' \n' for _ in range(lines))

  return ptb.load_ptb({'train': text(60), 'valid': text(8), 'test': text(10)})


def test_a_word_level_run_reports_validation_and_test_perplexity():
  c = ptb_small.get_config()
  c.update(num_epochs=1, batch_size=4, seq_len=5, eval_every_epochs=0, progress=False)
  c.model.update(embed_dim=8, hidden_dim=8)
  c.sample.length = 4
  corpus = _tiny_corpus()
  family = families.CharLanguageModel(c, corpus=corpus)
  run, state = trainer.train_in_memory(family, log=lambda _: None)
  assert (
    run.data.sampling == 'streams' and run.total_steps == run.steps_per_epoch == 20
  )  # (420 // 4 - 1) // 5
  final = family.report(run, state)
  assert 1 < final['test_perplexity'] < corpus.vocab.size
  assert final['test_perplexity'] != final['validation_perplexity']
  # A sampled continuation is the prompt and 4 tokens (words, or a line's end).
  (sample,) = final['samples']
  assert sample.startswith('the company said ')
  assert len(corpus.vocab.encode(sample[len('the company said ') :])) == 4
