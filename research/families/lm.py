"""The LSTM/GRU language model as a trainer family: characters, or Penn Treebank words.

Training draws random windows of the training text (the whole text stays on the
device); evaluation scores every character of the validation text once and compares
bits per character with a bigram model counted on the same training text.

With `carry_state=True` (the Penn Treebank configs) training reads `batch_size`
parallel streams of consecutive windows instead, the recurrent state carried from
one step to the next in the train state (truncated backpropagation through time,
`research.train.steps.CarriedTrainState`), and evaluation carries the state through
`eval_streams` whole streams of the validation (and test) text. `dataset='ptb'` is
the word-level Penn Treebank (`research.data.ptb`), reported in perplexity.
"""

import dataclasses
import functools
from typing import Any

import jax
from jax.experimental import multihost_utils
import numpy as np

from research.data import ptb
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
  bits per character against the bigram baseline, and sampled completions; on
  `dataset='ptb'`, words, with validation and test perplexity.

  Attributes:
    config: the experiment's ConfigDict.
    corpus: the whole corpus already in memory (e.g. synthetic): characters, or
      words (`research.data.ptb.WordCorpus`); None reads `config.dataset` or
      `config.text_file`.
  """

  config: Any
  corpus: text_lib.TextCorpus | ptb.WordCorpus | None = None
  name: str = 'lm'
  eval_split: str = 'validation'
  vocab: Any = None  # The tokenizer, set by `load_data`: characters or PTB words.
  bigram_bpc: float | None = None  # Characters only.

  @property
  def carries_state(self) -> bool:
    """Whether training carries the recurrent state across windows (streams)."""
    return bool(self.config.get('carry_state', False))

  def load_data(self) -> trainer.TrainData:
    c = self.config
    if c.seq_len < 1:
      raise UserInputError(f'seq_len must be >= 1, got {c.seq_len}')
    self.eval_sets: dict[str, tuple[Any, dict[str, np.ndarray]]] = {}
    if isinstance(self.corpus, ptb.WordCorpus):
      return self._load_words(self.corpus)
    if c.dataset == 'ptb' and not c.text_file and self.corpus is None:
      return self._load_words(ptb.load_ptb())
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
    summary = (
      f'Data: {corpus.name} {corpus.version}: {len(corpus.train):,} '
      f'training and {len(corpus.validation):,} validation characters, '
      f'vocabulary {corpus.vocab.size}; bigram baseline '
      f'{self.bigram_bpc:.4f} bits/char'
    )
    facts = {
      'name': corpus.name,
      'version': corpus.version,
      'text_file': c.text_file,
      'train_characters': len(corpus.train),
      'vocab_size': corpus.vocab.size,
      'validation_characters': len(corpus.validation),
      'chars': ''.join(corpus.vocab.chars),
      'unknown_id': tokenizers.UNK_ID,
    }
    return self._train_data(corpus.train, corpus.validation, summary, facts)

  def _load_words(self, corpus: ptb.WordCorpus) -> trainer.TrainData:
    """The word-level Penn Treebank: perplexity on validation and test, no bigram."""
    self.vocab, self.bigram_bpc = corpus.vocab, None
    test = corpus.test[shard.process_slice(len(corpus.test))]
    self.eval_sets['test'] = self._eval_data(test)
    summary = (
      f'Data: {corpus.name} {corpus.version}: {len(corpus.train):,} training, '
      f'{len(corpus.validation):,} validation and {len(corpus.test):,} test words, '
      f'vocabulary {corpus.vocab.size} (10,000 words and the special ids)'
    )
    facts = {
      'name': corpus.name,
      'version': corpus.version,
      'train_words': len(corpus.train),
      'validation_words': len(corpus.validation),
      'test_words': len(corpus.test),
      'vocab_size': corpus.vocab.size,
      'tokenizer': tokenizers.to_record(corpus.vocab),
    }
    return self._train_data(corpus.train, corpus.validation, summary, facts)

  def _train_data(self, train_N, valid_N, summary: str, facts: dict) -> trainer.TrainData:
    """Windows (or streams) of this process's contiguous share of the text."""
    c = self.config
    train = train_N[shard.process_slice(len(train_N))]
    valid = valid_N[shard.process_slice(len(valid_N))]
    self.eval_sets['validation'] = self._eval_data(valid)
    if self.carries_state:
      streams = c.batch_size // jax.process_count()
      offsets, reset = lm.stream_windows(len(train), streams, c.seq_len)
      data = lm.window_data(train, offsets, c.seq_len, reset)
      return trainer.TrainData(data, len(offsets), 'streams', facts, summary)
    offsets = lm.train_offsets(len(train), c.seq_len)
    data = lm.window_data(train, offsets, c.seq_len)
    return trainer.TrainData(data, len(offsets), 'windows', facts, summary)

  def _eval_data(self, tokens_N) -> tuple[Any, dict[str, np.ndarray]]:
    """(window offsets or None, arrays) that evaluation reads for a text."""
    c = self.config
    if self.carries_state:
      return None, lm.stream_eval_arrays(tokens_N, int(c.eval_streams), c.seq_len)
    offsets = lm.eval_offsets(len(tokens_N), c.seq_len)
    return offsets, lm.window_data(tokens_N, offsets, c.seq_len)

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
    zero_carry = functools.partial(rnn.zero_lm_carry, model)
    self.stream_evaluator = lm.make_stream_evaluator(module, zero_carry)
    return trainer.Model(
      module,
      init,
      lm.make_loss_fn(module),
      lm.make_window_gather(c.seq_len),
      flops_loss_fn=lm.make_loss_fn(unrolled),
      init_carry=zero_carry if self.carries_state else None,
    )

  def evaluate(
    self, run: trainer.Run, state: Any, step: int, split: str = 'validation'
  ) -> dict[str, float]:
    offsets, arrays = self.eval_sets[split]
    if self.carries_state:
      values = self._evaluate_streams(run, state, arrays)
    else:
      values, _ = evaluation.evaluate(
        run.driver, state, run.placed(split, arrays), len(offsets), run.settings.eval_batch_size
      )
    values.update(lm.perplexity_and_bpc(values['loss']))
    if self.bigram_bpc is None:  # Words: perplexity, as the published tables give it.
      shown = f'perplexity = {values["perplexity"]:.2f}'
    else:
      shown = f'bits/char = {values["bits_per_char"]:.4f} (bigram {self.bigram_bpc:.4f})'
    run.log(f'[Step {step}] {split} loss = {values["loss"]:.4f} | {shown}')
    return values

  def _evaluate_streams(self, run: trainer.Run, state: Any, arrays) -> dict[str, float]:
    """Loss and accuracy over whole streams, the state carried (`eval_streams`);
    each process scores its own share of the text."""
    params = run.driver.host_state(state).params
    if jax.process_count() > 1:  # This process's copy, whatever the sharding.
      params = multihost_utils.process_allgather(params, tiled=True)
    sums = np.asarray(jax.device_get(self.stream_evaluator(params, arrays)), np.float64).sum(0)
    if jax.process_count() > 1:
      sums = np.asarray(multihost_utils.process_allgather(sums)).sum(0)
    return {'loss': sums[0] / sums[2], 'accuracy': sums[1] / sums[2]}

  def report(self, run: trainer.Run, state: Any) -> dict[str, Any]:
    step = int(jax.device_get(run.driver.host_state(state).step))
    v = self.evaluate(run, state, step)
    final = {
      'validation_loss': v['loss'],
      'validation_perplexity': v['perplexity'],
      'validation_bits_per_char': v['bits_per_char'],
      'validation_accuracy': v['accuracy'],
      'bigram_bits_per_char': self.bigram_bpc,
      'tokens_per_second': (run.examples_per_second or 0.0) * self.config.seq_len,
    }
    if 'test' in self.eval_sets:
      t = self.evaluate(run, state, step, split='test')
      final.update(
        test_loss=t['loss'], test_perplexity=t['perplexity'], test_accuracy=t['accuracy']
      )
      run.write(step, 'test', t)
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
    return dict(final, samples=samples, next_words=words)

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
