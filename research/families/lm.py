"""The character-level LSTM/GRU language model as a trainer family.

Training draws random windows of the training text (the whole text stays on the
device); evaluation scores every character of the validation text once and compares
bits per character with a bigram model counted on the same training text.
"""

import dataclasses
from typing import Any

import jax
import numpy as np

from research.data import shard
from research.data import text as text_lib
from research.data import tokenizers
from research.errors import UserInputError
from research.generation import next_words
from research.models import recurrence
from research.models import rnn
from research.tasks import language_model as lm
from research.train import evaluation
from research.train import files
from research.train import settings
from research.train import trainer


@dataclasses.dataclass
class CharLanguageModel:
  """Trains a CharLM on `config.dataset` (or `config.text_file`); reports validation
  bits per character against the bigram baseline, and sampled completions.

  Attributes:
    config: the experiment's ConfigDict.
    corpus: the whole corpus already in memory (e.g. synthetic); None reads
      `config.dataset` or `config.text_file`.
  """

  config: Any
  corpus: text_lib.TextCorpus | None = None
  name: str = 'lm'
  eval_split: str = 'validation'

  def load_data(self) -> trainer.TrainData:
    c = self.config
    if c.seq_len < 1:
      raise UserInputError(f'seq_len must be >= 1, got {c.seq_len}')
    corpus = self.corpus or text_lib.load_corpus(
      c.dataset,
      train_split=c.train_split,
      validation_split=c.validation_split,
      text_file=c.text_file,
      data_dir=c.data_dir or None,
    )
    self.vocab = corpus.vocab
    self.bigram_bpc = text_lib.bigram_bits_per_char(
      corpus.train, corpus.validation, corpus.vocab.size, c.bigram_smoothing
    )
    # Each process trains on (and evaluates) its own contiguous share of the text.
    train = corpus.train[shard.process_slice(len(corpus.train))]
    valid = corpus.validation[shard.process_slice(len(corpus.validation))]
    offsets = lm.train_offsets(len(train), c.seq_len)
    self.eval_offsets = lm.eval_offsets(len(valid), c.seq_len)
    self.eval_arrays = lm.window_data(valid, self.eval_offsets, c.seq_len)
    summary = (
      f'Data: {corpus.name} {corpus.version}: {len(corpus.train):,} '
      f'training and {len(corpus.validation):,} validation characters, '
      f'vocabulary {corpus.vocab.size}; bigram baseline '
      f'{self.bigram_bpc:.4f} bits/char'
    )
    return trainer.TrainData(
      lm.window_data(train, offsets, c.seq_len),
      len(offsets),
      sampling='windows',
      summary=summary,
      facts={
        'name': corpus.name,
        'version': corpus.version,
        'text_file': c.text_file,
        'train_characters': len(corpus.train),
        'vocab_size': corpus.vocab.size,
        'validation_characters': len(corpus.validation),
        'chars': ''.join(corpus.vocab.chars),
        'unknown_id': tokenizers.UNK_ID,
      },
    )

  def build(self, data: trainer.TrainData) -> trainer.Model:
    c = self.config
    if c.model.cell not in recurrence.CELLS:
      raise UserInputError(f'unknown model.cell {c.model.cell!r}: use one of {recurrence.CELLS}')
    model = settings.model_settings(rnn.CharLMConfig, c.model, vocab_size=self.vocab.size)
    module = rnn.CharLM(model)
    init = lambda rng: module.init(
      {'params': rng}, np.zeros((1, c.seq_len), np.int32), train=False
    )['params']
    # The same model with its time loop unrolled, for a step's FLOP count only.
    unrolled = rnn.CharLM(dataclasses.replace(model, unroll=c.seq_len))
    return trainer.Model(
      module,
      init,
      lm.make_loss_fn(module),
      lm.make_window_gather(c.seq_len),
      flops_loss_fn=lm.make_loss_fn(unrolled),
    )

  def evaluate(self, run: trainer.Run, state: Any, step: int) -> dict[str, float]:
    values, _ = evaluation.evaluate(
      run.driver,
      state,
      run.placed('validation', self.eval_arrays),
      len(self.eval_offsets),
      run.settings.eval_batch_size,
    )
    values.update(lm.perplexity_and_bpc(values['loss']))
    run.log(
      f'[Step {step}] validation loss = {values["loss"]:.4f} | bits/char = '
      f'{values["bits_per_char"]:.4f} (bigram {self.bigram_bpc:.4f})'
    )
    return values

  def report(self, run: trainer.Run, state: Any) -> dict[str, Any]:
    step = int(jax.device_get(run.driver.host_state(state).step))
    v = self.evaluate(run, state, step)
    s = self.config.sample
    samples = lm.complete_prompts(
      run.model.module,
      run.driver.host_state(state).params,
      self.vocab,
      list(s.prompts),
      jax.random.fold_in(jax.random.key(self.config.seed), 1),
      length=s.length,
      temperature=float(s.temperature),
      top_k=int(s.top_k),
    )
    for sample in samples:
      run.log(f'Sample: {sample!r}')
    words = self._next_words(run, state)
    if (path := run.path('samples.txt')) is not None:
      files.write_text(path, '\n\n'.join(samples) + '\n')
      run.text(step, 'samples', '\n\n'.join(samples))
    return {
      'validation_loss': v['loss'],
      'validation_perplexity': v['perplexity'],
      'validation_bits_per_char': v['bits_per_char'],
      'validation_accuracy': v['accuracy'],
      'bigram_bits_per_char': self.bigram_bpc,
      'tokens_per_second': (run.examples_per_second or 0.0) * self.config.seq_len,
      'samples': samples,
      'next_words': words,
    }

  def _next_words(self, run: trainer.Run, state: Any) -> dict[str, list[tuple[str, float]]]:
    """{prompt: [(word, probability)] likeliest first} for `sample.next_word_prompts`."""
    s, params = self.config.sample, run.driver.host_state(state).params
    if not s.num_next_words:
      return {}
    found = {}
    for prompt in s.next_word_prompts:
      found[prompt] = next_words.next_words(
        run.model.module, params, self.vocab, prompt, num_words=s.num_next_words
      )
      listed = ', '.join(f'{w!r} {p:.3f}' for w, p in found[prompt])
      run.log(f'Next words after {prompt!r}: {listed}')
    return found
