"""The transformer encoder-decoder as a trainer family: generated string tasks
(reversal, addition) offline, or tfds translation; reports greedy and beam decoding."""

import dataclasses
import time
from typing import Any, cast

import jax.numpy as jnp

from research.data import seq2seq_tasks
from research.data import tokenizers
from research.data import translation
from research.errors import UserInputError
from research.models import transformer
from research.tasks import seq2seq
from research.train import evaluation
from research.train import files
from research.train import metrics as metrics_lib
from research.train import parallel
from research.train import settings
from research.train import trainer

TASKS = seq2seq_tasks.TASKS + ('translate',)  # The generated tasks, and tfds translation.


def load_splits(config: Any):
  """(train, test, references): the whole splits, and for translation the full
  reference texts of the test split (None for generated tasks)."""
  if config.task not in TASKS:
    raise UserInputError(f'unknown task {config.task!r}: use one of {TASKS}')
  if config.task == 'translate':
    t = config.translate
    cfg = translation.TranslationConfig(
      dataset=t.dataset,
      source_language=t.source_language,
      target_language=t.target_language,
      max_input_length=t.max_input_length,
      max_target_length=t.max_target_length,
      data_dir=t.data_dir or None,
    )
    train, _ = translation.load_split(cfg, t.train_split)
    test, references = translation.load_split(cfg, t.test_split)
    return train, test, references
  g = config.generated
  train, test = seq2seq_tasks.make_task(
    seq2seq_tasks.TaskConfig(
      name=config.task,
      num_train=g.num_train,
      num_test=g.num_test,
      seed=config.seed,
      min_length=g.min_length,
      max_length=g.max_length,
      num_letters=g.num_letters,
      num_digits=g.num_digits,
      split=g.split,
      test_min_length=g.test_min_length,
      test_max_length=g.test_max_length,
      equal_lengths=g.equal_lengths,
    )
  )
  return train, test, None


@dataclasses.dataclass
class Seq2Seq:
  """Trains the transformer teacher-forced; evaluates held-out data teacher-forced
  periodically and by greedy and beam decoding at the end (examples.txt, BLEU).

  Attributes:
    config: the experiment's ConfigDict.
    splits: whole (train, test) splits already in memory (e.g. synthetic; no BLEU
      references); None makes or reads `config.task`'s.
  """

  config: Any
  splits: tuple[seq2seq_tasks.Seq2SeqDataset, seq2seq_tasks.Seq2SeqDataset] | None = None
  name: str = 'seq2seq'
  eval_split: str = 'test_teacher_forced'

  def load_data(self) -> trainer.TrainData:
    self.train_set: seq2seq_tasks.Seq2SeqDataset
    self.test_set: seq2seq_tasks.Seq2SeqDataset
    self.references: list[str] | None
    self.train_set, self.test_set, self.references = (
      load_splits(self.config) if self.splits is None else (*self.splits, None)
    )
    # Each process trains on (and evaluates) its own contiguous share of the splits.
    local = self.train_set.process_shard()
    self.test_local = self.test_set.process_shard()
    t = self.train_set
    return trainer.TrainData(
      local.arrays(),
      len(local),
      facts={
        'name': t.name,
        'task': self.config.task,
        'train_examples': len(t),
        'test_examples': len(self.test_set),
        'vocab_size': t.vocab.size,
        'tokenizer': tokenizers.to_record(t.vocab),
        'max_input_length': int(t.inputs.shape[1]),
        'max_target_length': int(t.targets.shape[1]),
      },
    )

  def build(self, data: trainer.TrainData) -> trainer.Model:
    t, m = self.train_set, self.config.model
    if m.emb_dim < 1 or m.num_heads < 1 or m.emb_dim % m.num_heads:
      raise UserInputError(
        f'model.emb_dim ({m.emb_dim}) must be a positive multiple '
        f'of model.num_heads ({m.num_heads})'
      )
    module = transformer.Transformer(
      settings.model_settings(
        transformer.TransformerConfig,
        m,
        input_vocab_size=t.vocab.size,
        output_vocab_size=t.vocab.size,
        max_input_length=t.inputs.shape[1],
        max_target_length=t.targets.shape[1],
      )
    )
    src, tgt = (jnp.zeros((1,) + a.shape[1:], jnp.int32) for a in (t.inputs, t.targets))
    init = lambda rng: module.init({'params': rng}, src, tgt, train=False)['params']
    return trainer.Model(
      module, init, seq2seq.make_loss_fn(module, label_smoothing=self.config.label_smoothing)
    )

  def evaluate(self, run: trainer.Run, state: Any, step: int) -> dict[str, float]:
    local = self.test_local
    values, _ = evaluation.evaluate(
      run.driver,
      state,
      run.placed('test', local.arrays()),
      len(local),
      run.settings.eval_batch_size,
    )
    run.log(f'  held-out (teacher-forced) {metrics_lib.format_metrics(values)}')
    return values

  def report(self, run: trainer.Run, state: Any) -> dict[str, Any]:
    c = self.config
    model = cast(transformer.Transformer, run.model.module)  # Built by `build`.
    driver = parallel.make_driver(
      c.driver, seq2seq.make_decode_eval_fn(model, beam_size=c.beam_size, alpha=c.length_penalty)
    )
    local = self.test_local
    data = driver.put_data(local.arrays())
    # One batch per dispatch: a first batch compiles, the timed pass only decodes.
    decode = lambda n: evaluation.evaluate(
      driver, state, data, n, c.eval_batch_size, steps_per_dispatch=1
    )
    decode(min(len(local), c.eval_batch_size))
    t0 = time.perf_counter()
    values, outputs = decode(len(local))
    seconds = time.perf_counter() - t0
    # `outputs` holds every process's rows already (evaluation.evaluate gathers them).
    final = self._summarise(run, values, outputs, seconds)
    if self.references is None and c.generated.split == 'length':
      final.update(self._in_distribution(run, driver, state))
    return final

  def _in_distribution(self, run, driver, state) -> dict[str, Any]:
    """Greedy and beam exact match, overall and per length, on as many training
    strings as there are test ones (the first; their lengths are mixed): the length
    split's check that the training lengths are solved."""
    c = self.config
    head = self.train_set.rows(slice(len(self.test_set)))
    local = head.process_shard()
    values, outputs = evaluation.evaluate(
      driver,
      state,
      driver.put_data(local.arrays()),
      len(local),
      c.eval_batch_size,
      steps_per_dispatch=1,
    )
    return {
      'train_greedy_exact_accuracy': values['greedy_exact_accuracy'],
      'train_beam_exact_accuracy': values['beam_exact_accuracy'],
      'train_decoded_examples': len(outputs['greedy']),
      **self._by_length(run, head, outputs, 'train', 'training strings'),
    }

  def _summarise(self, run, values, outputs, seconds) -> dict[str, Any]:
    c, n = self.config, len(outputs['greedy'])
    final = {
      'test_loss': values['loss'],
      'test_token_accuracy': values['token_accuracy'],
      'test_greedy_exact_accuracy': values['greedy_exact_accuracy'],
      'test_beam_exact_accuracy': values['beam_exact_accuracy'],
      'test_examples': n,
      'beam_size': c.beam_size,
      'decode_sequences_per_second': n / seconds,
      'train_tokens_per_second': (run.examples_per_second or 0.0)
      * self.train_set.num_target_tokens()
      / len(self.train_set),
    }
    run.log(
      f'Test: token accuracy = {100 * final["test_token_accuracy"]:.2f}% | exact '
      f'sequences: greedy = {100 * final["test_greedy_exact_accuracy"]:.2f}%, beam '
      f'(size {c.beam_size}) = {100 * final["test_beam_exact_accuracy"]:.2f}% '
      f'({n} held-out examples; decoding {n / seconds:,.0f} sequences/s)'
    )
    vocab = self.test_set.vocab
    if self.references is not None:
      for name in seq2seq.DECODERS:
        hyps = [vocab.decode(s) for s in outputs[name]]
        final[f'test_bleu_{name}'] = translation.corpus_bleu(hyps, self.references[:n])
      run.log(
        f'BLEU: greedy = {final["test_bleu_greedy"]:.2f}, beam = {final["test_bleu_beam"]:.2f}'
      )
    else:  # Generated tasks have a few input lengths: each is reported.
      final.update(self._by_length(run, self.test_set, outputs, 'test', 'held-out'))
    text = seq2seq.examples_text(
      vocab,
      self.test_set.inputs,
      self.test_set.targets,
      outputs['greedy'],
      outputs['beam'],
      c.num_examples_to_print,
    )
    run.log('Decoded test examples:\n' + text)
    if run.path('') is not None:
      files.write_text(run.path('examples.txt'), text + '\n')
      run.text(run.total_steps, 'test/decoded_examples', text)
    return final

  def _by_length(self, run, dataset, outputs, split, label) -> dict[str, Any]:
    """Exact match per input length of the first examples of `dataset` (those
    decoded in `outputs`), as metrics prefixed `split`; logs the table as `label`."""
    n = len(outputs['greedy'])
    metrics, table = seq2seq.length_summary(
      dataset.inputs[:n], dataset.targets[:n], outputs, split=split
    )
    run.log(f'Exact sequences per input length ({label}):\n' + table)
    return metrics
