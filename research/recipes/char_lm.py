"""Train a character-level LSTM/GRU language model and report bits per character.

Training runs a fixed number of steps on random windows of the training text (the
whole text stays on the device, see `research.tasks.language_model`); every
`eval_every` steps it evaluates the validation text, writes metrics and saves a
checkpoint. At the end it compares the validation bits per character with a bigram
model counted on the same training text and prints a few sampled completions.
"""

import json
import math
import os
import time
from typing import Any, Callable

import jax
import numpy as np
from tqdm import auto as tqdm

from research.data import text as text_lib
from research.errors import UserInputError
from research.models import rnn
from research.recipes import common
from research.tasks import language_model
from research.train import distributed
from research.train import loop
from research.train import metrics as metrics_lib
from research.train import optimizers
from research.train import parallel
from research.train import preemption
from research.train import workdir as workdir_lib


def check_config(config) -> None:
  """Rejects settings the model or loop cannot use, with a message saying why."""
  positive = ('seq_len', 'num_steps', 'eval_every', 'steps_per_dispatch')
  for name in positive:
    if config[name] < 1:
      raise UserInputError(f'{name} must be >= 1, got {config[name]}')
  m = config.model
  if m.cell not in rnn.CELLS:
    raise UserInputError(f'unknown cell {m.cell!r}: use one of {rnn.CELLS}')
  for name in ('embed_dim', 'hidden_dim', 'num_layers', 'unroll'):
    if m[name] < 1:
      raise UserInputError(f'model.{name} must be >= 1, got {m[name]}')
  if not 0 <= m.dropout_rate < 1:
    raise UserInputError(f'dropout_rate must be in [0, 1), got {m.dropout_rate}')
  if config.max_train_seconds < 0:
    raise UserInputError(f'max_train_seconds must be >= 0, got {config.max_train_seconds}')
  s = config.sample
  if s.length < 0 or s.top_k < 0:
    raise UserInputError(f'sample.length and sample.top_k must be >= 0, got '
                         f'{s.length} and {s.top_k}')
  if any(not p for p in s.prompts):
    raise UserInputError('sample.prompts must be non-empty strings')
  parallel.check_batch_size(config.batch_size, jax.device_count())
  parallel.check_batch_size(config.eval_batch_size, jax.device_count())


def model_config(config, vocab_size: int) -> rnn.CharLMConfig:
  """The CharLMConfig of the config's `model` section."""
  m = config.model
  return rnn.CharLMConfig(
      vocab_size=vocab_size, embed_dim=m.embed_dim, hidden_dim=m.hidden_dim,
      num_layers=m.num_layers, cell=m.cell, dropout_rate=m.dropout_rate,
      unroll=m.unroll, dtype=common.compute_dtype(m.dtype))


def build(config, vocab_size: int):
  """Model, optimiser and driver for the config."""
  model = rnn.CharLM(model_config(config, vocab_size))
  tx = optimizers.make_optimizer(common.optimizer_config(config.optimizer,
                                                         total_steps=config.num_steps))
  driver = parallel.make_driver(config.driver, language_model.make_loss_fn(model),
                                language_model.make_window_gather(config.seq_len),
                                microbatches=config.microbatches)
  return model, tx, driver


def train_steps(driver, state, data, num_windows: int, config, rng: jax.Array, *,
                on_eval: Callable[[int, Any, dict[str, float]], None],
                stop_requested: Callable[[], bool] = lambda: False,
                log: Callable[[str], None] = print) -> tuple[Any, dict[str, float]]:
  """Trains from the state's step to `config.num_steps` on random windows.

  Window offsets of the chunk starting at step s are drawn from (seed, s), so a
  resumed run sees the same data as an uninterrupted one. Every `eval_every` steps,
  and at the end, calls `on_eval(step, state, train_metrics_since_last_call)`
  (which checkpoints). When `stop_requested()` turns True it does the same after
  the current chunk and raises `loop.Preempted`.

  Returns:
    the final state and throughput facts: 'train_seconds' (after compilation,
    evaluation excluded), 'tokens_per_second', 'stopped_early' (1.0 if
    `max_train_seconds` ended training).

  Raises:
    loop.NonFiniteLossError: naming the first step whose loss or gradient norm
      was not finite.
    loop.Preempted: after a requested stop (a checkpoint was saved).
  """
  step = int(jax.device_get(driver.host_state(state).step))
  tokens_per_step = config.batch_size * config.seq_len
  sums = metrics_lib.MetricSums()
  bar = tqdm.tqdm(total=config.num_steps, initial=step, desc='train', unit='step',
                  disable=not config.progress, leave=False)
  clock = {'start': None, 'tokens': 0, 'eval': 0.0, 'began': time.perf_counter()}

  def consume(pending):
    chunk_metrics, first, n = pending
    chunk_metrics, _ = loop.check_finite(jax.device_get(chunk_metrics), first)
    losses = chunk_metrics['loss'][0] / np.maximum(chunk_metrics['loss'][1], 1)
    sums.add(chunk_metrics)
    if clock['start'] is None:  # Time from the end of the compiled first chunk.
      clock['start'] = time.perf_counter()
    else:
      clock['tokens'] += n * tokens_per_step
    bar.update(n)
    bar.set_postfix(loss=f'{losses[-1]:.4f}')

  pending, stopped_early = None, False
  try:
    while step < config.num_steps:
      n = min(config.steps_per_dispatch, config.num_steps - step,
              config.eval_every - step % config.eval_every)
      idx = np.random.default_rng([config.seed, step]).integers(
          0, num_windows, (n, config.batch_size))
      state, chunk_metrics = driver.train(state, data, idx, np.ones(idx.shape), rng)
      if pending is not None:
        consume(pending)  # The device is already busy with this chunk.
      pending, step = (chunk_metrics, step, n), step + n
      elapsed = time.perf_counter() - clock['began']
      stopped_early = bool(config.max_train_seconds) and (
          elapsed - clock['eval'] >= config.max_train_seconds)
      preempted = stop_requested()
      if (step % config.eval_every == 0 or step == config.num_steps or stopped_early
          or preempted):
        consume(pending)
        pending = None
        t_eval = time.perf_counter()
        on_eval(step, state, sums.result())
        clock['eval'] += time.perf_counter() - t_eval
        sums = metrics_lib.MetricSums()
      if preempted:
        raise loop.Preempted(step)
      if stopped_early:
        log(f'Stopped at step {step}: max_train_seconds = {config.max_train_seconds} '
            'reached.')
        break
  finally:
    bar.close()
  seconds = (time.perf_counter() - clock['start'] - clock['eval']
             if clock['start'] is not None else 0.0)
  return state, {'train_seconds': seconds,
                 'tokens_per_second': clock['tokens'] / seconds if seconds else math.nan,
                 'stopped_early': float(stopped_early)}


def sample_completions(model, params, vocab: text_lib.Vocab, config) -> list[str]:
  """Completes each of `config.sample.prompts` with `config.sample.length` characters."""
  s = config.sample
  if not s.prompts or not s.length:
    return []
  ids = [vocab.encode(p) for p in s.prompts]
  width = max(len(i) for i in ids)
  prompt = np.zeros((len(ids), width), np.int32)
  mask = np.zeros((len(ids), width), np.float32)
  for row, i in enumerate(ids):
    prompt[row, :len(i)], mask[row, :len(i)] = i, 1.0
  rng = jax.random.fold_in(jax.random.key(config.seed), 1)
  out = rnn.generate(model, params, prompt, mask, rng, num_steps=s.length,
                     temperature=float(s.temperature), top_k=int(s.top_k))
  return [p + vocab.decode(row) for p, row in zip(s.prompts, jax.device_get(out))]


def evaluate_text(driver, state, data, num_windows: int, eval_batch_size: int
                  ) -> dict[str, float]:
  """Validation loss, accuracy, perplexity and bits per character."""
  values, _ = loop.evaluate(driver, state, data, num_windows, eval_batch_size)
  return dict(values, **language_model.perplexity_and_bpc(values['loss']))


def train_and_evaluate(config, workdir: str, resume: bool = False,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
  """Trains per `config`, evaluates and checkpoints every `eval_every` steps.

  Writes to `workdir`: manifest.json, vocab.json, checkpoints/, metrics.jsonl,
  tensorboard/, samples.txt and final_metrics.json.

  Returns:
    the final metrics: validation loss, perplexity and bits per character, the
    bigram baseline's bits per character, throughput and the samples.
  """
  check_config(config)
  workdir = workdir_lib.prepare_workdir(workdir, resume)
  corpus = text_lib.load_corpus(
      config.dataset, train_split=config.train_split,
      validation_split=config.validation_split, text_file=config.text_file,
      data_dir=config.data_dir or None)
  vocab = corpus.vocab
  model, tx, driver = build(config, vocab.size)
  # Each process trains on (and evaluates) its own contiguous share of the text.
  train_text = corpus.train[distributed.shard_for_process(len(corpus.train))]
  validation_text = corpus.validation[
      distributed.shard_for_process(len(corpus.validation))]
  train_offsets = language_model.train_offsets(len(train_text), config.seq_len)
  eval_offsets = language_model.eval_offsets(len(validation_text), config.seq_len)
  bigram_bpc = text_lib.bigram_bits_per_char(corpus.train, corpus.validation,
                                             vocab.size, config.bigram_smoothing)

  key = jax.random.key(config.seed)
  init_key, train_key = jax.random.split(key)
  init_params = lambda rng: model.init(
      {'params': rng}, np.zeros((1, config.seq_len), np.int32), train=False)['params']
  log(f'Data: {corpus.name} {corpus.version}: {len(corpus.train):,} training and '
      f'{len(corpus.validation):,} validation characters, vocabulary {vocab.size} '
      f'(id 0 = unknown); bigram baseline {bigram_bpc:.4f} bits/char')
  data_facts = {'name': corpus.name, 'version': corpus.version,
                'train_split': config.train_split,
                'validation_split': config.validation_split,
                'text_file': config.text_file, 'train_characters': len(corpus.train),
                'validation_characters': len(corpus.validation),
                'vocab_size': vocab.size}
  run = common.start_run(experiment='lm', config=config, workdir=workdir,
                         resume=resume, init_params=init_params, apply_fn=model.apply,
                         tx=tx, rng=init_key, driver=driver, data_facts=data_facts,
                         log=log)
  if distributed.is_primary():
    with open(os.path.join(workdir, 'vocab.json'), 'w', encoding='utf-8') as f:
      json.dump({'unknown_id': text_lib.UNK_ID, 'chars': ''.join(vocab.chars)}, f)
  train_data = driver.put_data(language_model.window_data(
      train_text, train_offsets, config.seq_len))
  eval_data = driver.put_data(language_model.window_data(
      validation_text, eval_offsets, config.seq_len))
  last = {}

  def on_eval(step, state, train_values):
    values = evaluate_text(driver, state, eval_data, len(eval_offsets),
                           config.eval_batch_size)
    shown = {k: v for k, v in train_values.items() if k in ('loss', 'accuracy')}
    log(f'[Step {step}] train {loop.format_metrics(shown)} | validation '
        f'loss = {values["loss"]:.4f} | bits/char = {values["bits_per_char"]:.4f} '
        f'(bigram {bigram_bpc:.4f})')
    run.writer.write(step, 'train', train_values)
    run.writer.write(step, 'validation', values)
    run.checkpointer.save(step, driver.host_state(state))
    last.update(train=train_values, validation=values)

  try:
    t0 = time.perf_counter()
    with preemption.StopOnSignal() as stop:
      state, speed = train_steps(driver, run.state, train_data, len(train_offsets),
                                 config, train_key, on_eval=on_eval,
                                 stop_requested=stop.stop_requested, log=log)
    if not last:  # Resumed at or past num_steps: evaluate the restored state.
      last['validation'] = evaluate_text(driver, state, eval_data, len(eval_offsets),
                                         config.eval_batch_size)
    final = final_report(model, driver.host_state(state), vocab, config, last,
                         bigram_bpc, dict(speed, wall_seconds=time.perf_counter() - t0),
                         workdir, log)
  finally:
    run.close()
  return final


def final_report(model, state, vocab, config, last, bigram_bpc: float, speed,
                 workdir: str, log: Callable[[str], None]) -> dict[str, Any]:
  """Logs and saves the closing numbers and the sampled completions."""
  v = last['validation']
  samples = sample_completions(model, state.params, vocab, config)
  log(f'Validation loss = {v["loss"]:.4f} | perplexity = {v["perplexity"]:.3f} | '
      f'bits/char = {v["bits_per_char"]:.4f} (bigram baseline {bigram_bpc:.4f}) | '
      f'{speed["tokens_per_second"]:,.0f} tokens/s')
  for s in samples:
    log(f'Sample: {s!r}')
  final = {'validation_loss': v['loss'], 'validation_perplexity': v['perplexity'],
           'validation_bits_per_char': v['bits_per_char'],
           'validation_accuracy': v['accuracy'], 'bigram_bits_per_char': bigram_bpc,
           'train_loss': last.get('train', {}).get('loss', math.nan),
           'steps': int(jax.device_get(state.step)), **speed, 'samples': samples}
  if distributed.is_primary():
    with open(os.path.join(workdir, 'samples.txt'), 'w', encoding='utf-8') as f:
      f.write('\n\n'.join(samples) + '\n')
    with open(os.path.join(workdir, 'final_metrics.json'), 'w', encoding='utf-8') as f:
      json.dump(final, f, indent=2)
  return final
