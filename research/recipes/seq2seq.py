"""Train the transformer encoder-decoder on a seq2seq task and report on held-out data:
token accuracy, exact-sequence accuracy of greedy and beam decoding, decoded
examples next to their references, and BLEU for translation."""

import dataclasses
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from research.data import seq2seq_tasks
from research.data import translation
from research.errors import UserInputError
from research.models import transformer
from research.recipes import common
from research.tasks import seq2seq
from research.train import distributed
from research.train import loop
from research.train import optimizers
from research.train import parallel
from research.train import preemption
from research.train import workdir as workdir_lib

TASKS = ('reverse', 'addition', 'translate')


def check_config(config) -> None:
  """Rejects settings the model or loop cannot use, with a message saying why."""
  if config.task not in TASKS:
    raise UserInputError(f'unknown task {config.task!r}: use one of {TASKS}')
  for name in ('num_epochs', 'eval_batch_size', 'steps_per_dispatch', 'beam_size',
               'eval_every_epochs'):
    if config[name] < 1:
      raise UserInputError(f'{name} must be >= 1, got {config[name]}')
  m = config.model
  if m.emb_dim < 1 or m.num_heads < 1 or m.emb_dim % m.num_heads:
    raise UserInputError(f'model.emb_dim ({m.emb_dim}) must be a positive multiple of '
                         f'model.num_heads ({m.num_heads})')
  if not 0 <= m.dropout_rate < 1:
    raise UserInputError(f'model.dropout_rate must be in [0, 1), got {m.dropout_rate}')
  if m.positional not in transformer.POSITIONAL:
    raise UserInputError(f'unknown model.positional {m.positional!r}: use one of '
                         f'{transformer.POSITIONAL}')
  if not 0 <= config.label_smoothing < 1:
    raise UserInputError(f'label_smoothing must be in [0, 1), got '
                         f'{config.label_smoothing}')
  parallel.check_batch_size(config.batch_size, jax.device_count())
  parallel.check_batch_size(config.eval_batch_size, jax.device_count())


def load_data(config):
  """(train, test, references): the splits and, for translation, the full reference
  texts of the test split (None for the generated tasks)."""
  if config.task == 'translate':
    t = config.translate
    cfg = translation.TranslationConfig(
        dataset=t.dataset, source_language=t.source_language,
        target_language=t.target_language, max_input_length=t.max_input_length,
        max_target_length=t.max_target_length, data_dir=t.data_dir or None)
    train, _ = translation.load_split(cfg, t.train_split)
    test, references = translation.load_split(cfg, t.test_split)
    return train, test, references
  g = config.generated
  train, test = seq2seq_tasks.make_task(seq2seq_tasks.TaskConfig(
      name=config.task, num_train=g.num_train, num_test=g.num_test, seed=config.seed,
      min_length=g.min_length, max_length=g.max_length, num_letters=g.num_letters,
      num_digits=g.num_digits))
  return train, test, None


def model_config(config, train_set) -> transformer.TransformerConfig:
  m = config.model
  return transformer.TransformerConfig(
      input_vocab_size=train_set.vocab.size, output_vocab_size=train_set.vocab.size,
      share_embeddings=m.share_embeddings, emb_dim=m.emb_dim, num_heads=m.num_heads,
      num_encoder_layers=m.num_encoder_layers, num_decoder_layers=m.num_decoder_layers,
      mlp_dim=m.mlp_dim, max_input_length=train_set.inputs.shape[1],
      max_target_length=train_set.targets.shape[1], dropout_rate=m.dropout_rate,
      pre_norm=m.pre_norm, positional=m.positional,
      dtype=common.compute_dtype(m.dtype))


def build(config, train_set, steps_per_epoch: int):
  """Model, optimiser and two drivers: teacher-forced training/evaluation, and
  evaluation by decoding."""
  model = transformer.Transformer(model_config(config, train_set))
  tx = optimizers.make_optimizer(common.optimizer_config(
      config.optimizer, total_steps=steps_per_epoch * config.num_epochs))
  driver = parallel.make_driver(config.driver, seq2seq.make_loss_fn(
      model, label_smoothing=config.label_smoothing), microbatches=config.microbatches)
  decode_driver = parallel.make_driver(config.driver, seq2seq.make_decode_eval_fn(
      model, beam_size=config.beam_size, alpha=config.length_penalty))
  return model, tx, driver, decode_driver


def train_and_evaluate(config, workdir: str, resume: bool = False,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
  """Trains per `config`, checkpoints every epoch, then decodes the test split.

  Writes to `workdir`: manifest.json, checkpoints/, metrics.jsonl, tensorboard/,
  examples.txt and final_metrics.json.

  Returns:
    the final metrics (see `report_on_test`) and training throughput.
  """
  check_config(config)
  workdir = workdir_lib.prepare_workdir(workdir, resume)
  train_set, test_set, references = load_data(config)
  # Each process trains on (and evaluates) its own contiguous share of the splits.
  train_local, test_local = train_set.process_shard(), test_set.process_shard()
  steps_per_epoch = loop.num_steps_per_epoch(len(train_local), config.batch_size)
  model, tx, driver, decode_driver = build(config, train_set, steps_per_epoch)

  init_key, train_key = jax.random.split(jax.random.key(config.seed))
  src, tgt = (jnp.zeros((1,) + a.shape[1:], jnp.int32)
              for a in (train_set.inputs, train_set.targets))
  init_params = lambda rng: model.init({'params': rng}, src, tgt, train=False)['params']
  data_facts = {'name': train_set.name, 'task': config.task,
                'train_examples': len(train_set), 'test_examples': len(test_set),
                'vocab_size': train_set.vocab.size,
                'max_input_length': int(train_set.inputs.shape[1]),
                'max_target_length': int(train_set.targets.shape[1])}
  run = common.start_run(experiment='seq2seq', config=config, workdir=workdir,
                         resume=resume, init_params=init_params, apply_fn=model.apply,
                         tx=tx, rng=init_key, driver=driver, data_facts=data_facts,
                         log=log)
  writer = run.writer
  train_tokens = train_set.num_target_tokens()
  test_data = driver.put_data(test_local.arrays())
  throughput = []

  def on_epoch_end(epoch, state, values):
    step = (epoch + 1) * steps_per_epoch
    tokens_per_second = train_tokens / values['epoch_seconds']
    throughput.append(tokens_per_second)
    writer.write(step, 'train', dict(values, tokens_per_second=tokens_per_second),
                 epoch=epoch + 1)
    if (epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == config.num_epochs:
      held_out, _ = loop.evaluate(driver, state, test_data, len(test_local),
                                  config.eval_batch_size)
      writer.write(step, 'test_teacher_forced', held_out, epoch=epoch + 1)
      log(f'  {tokens_per_second:,.0f} target tokens/s | held-out (teacher-forced) '
          f'{loop.format_metrics(held_out)}')

  try:
    with preemption.StopOnSignal() as stop:
      state = loop.fit(driver, run.state, driver.put_data(train_local.arrays()),
                       len(train_local), common.loop_config(config), train_key,
                       start_step=run.start_step, on_epoch_end=on_epoch_end,
                       checkpointer=run.checkpointer,
                       checkpoint_every_steps=config.checkpoint_every_steps,
                       stop_requested=stop.stop_requested, log=log)
    final = report_on_test(decode_driver, state, test_set, references, config, workdir,
                           log)
    final['train_tokens_per_second'] = float(np.median(throughput)) if throughput else None
    writer.write(int(jax.device_get(driver.host_state(state).step)), 'test',
                 {k: v for k, v in final.items() if isinstance(v, float)})
  finally:
    run.close()
  if distributed.is_primary():
    with open(os.path.join(workdir, 'final_metrics.json'), 'w', encoding='utf-8') as f:
      json.dump(final, f, indent=2)
  return final


def _examples_text(test_set, outputs, num: int) -> str:
  vocab = test_set.vocab
  lines = []
  for i in range(min(num, len(test_set))):
    ref, greedy, beam = (vocab.decode(a[i]) for a in
                         (test_set.targets, outputs['greedy'], outputs['beam']))
    mark = lambda s: 'ok' if s == ref else 'WRONG'
    lines.append(f'  input     {vocab.decode(test_set.inputs[i])!r}\n'
                 f'  reference {ref!r}\n'
                 f'  greedy    {greedy!r} ({mark(greedy)})\n'
                 f'  beam      {beam!r} ({mark(beam)})')
  return '\n'.join(lines)


def report_on_test(decode_driver, state, test_set, references, config, workdir: str,
                   log: Callable[[str], None]) -> dict[str, Any]:
  """Decodes the test split greedily and with beam search; logs and saves the
  accuracies, decoding speed and a few examples (and BLEU for translation)."""
  local = test_set.process_shard()
  data = decode_driver.put_data(local.arrays())
  # One batch per dispatch, so that a first batch compiles all and the timed pass
  # measures decoding alone.
  evaluate = lambda n: loop.evaluate(decode_driver, state, data, n,
                                     config.eval_batch_size, steps_per_dispatch=1)
  evaluate(min(len(local), config.eval_batch_size))
  t0 = time.perf_counter()
  values, outputs = evaluate(len(local))
  seconds = time.perf_counter() - t0
  # Every process decoded its share; the first len(outputs) test rows, in order.
  outputs = distributed.allgather_rows(outputs)
  num_decoded = len(outputs['greedy'])
  test_set = dataclasses.replace(test_set, inputs=test_set.inputs[:num_decoded],
                                 targets=test_set.targets[:num_decoded])
  references = None if references is None else references[:num_decoded]
  final = {'test_loss': values['loss'], 'test_token_accuracy': values['token_accuracy'],
           'test_greedy_exact_accuracy': values['greedy_exact_accuracy'],
           'test_beam_exact_accuracy': values['beam_exact_accuracy'],
           'test_examples': len(test_set), 'beam_size': config.beam_size,
           'decode_seconds_greedy_plus_beam': seconds,
           'decode_sequences_per_second': len(test_set) / seconds}
  log(f'Test: token accuracy = {100 * final["test_token_accuracy"]:.2f}% | exact '
      f'sequences: greedy = {100 * final["test_greedy_exact_accuracy"]:.2f}%, beam '
      f'(size {config.beam_size}) = {100 * final["test_beam_exact_accuracy"]:.2f}% '
      f'({len(test_set)} held-out examples)')
  log(f'Decoding (greedy + beam) of {len(test_set)} sequences: {seconds:.2f} s, '
      f'{len(test_set) / seconds:,.0f} sequences/s')
  if references is not None:
    hyps = [test_set.vocab.decode(s) for s in outputs['greedy']]
    beams = [test_set.vocab.decode(s) for s in outputs['beam']]
    final['test_bleu_greedy'] = translation.corpus_bleu(hyps, references)
    final['test_bleu_beam'] = translation.corpus_bleu(beams, references)
    log(f'BLEU: greedy = {final["test_bleu_greedy"]:.2f}, beam = '
        f'{final["test_bleu_beam"]:.2f}')
  text = _examples_text(test_set, outputs, config.num_examples_to_print)
  log('Decoded test examples:\n' + text)
  if distributed.is_primary():
    with open(os.path.join(workdir, 'examples.txt'), 'w', encoding='utf-8') as f:
      f.write(text + '\n')
  return final
