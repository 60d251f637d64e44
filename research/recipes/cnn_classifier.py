"""Train the seed's CNN on a tfds image-classification set and report on its test split."""

import json
import os
from typing import Any, Callable

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp

from research.data import augment
from research.data import image_classification
from research.errors import UserInputError
from research.models import cnn
from research.recipes import common
from research.tasks import classification
from research.tasks import classification_report
from research.train import distributed
from research.train import loop
from research.train import optimizers
from research.train import parallel
from research.train import preemption
from research.train import workdir as workdir_lib


def check_config(config) -> None:
  """Rejects settings the model or loop cannot use, with a message saying why."""
  if config.image_size < 4 or config.image_size % 4:
    raise UserInputError(f'image_size must be a positive multiple of 4 (the CNN pools '
                         f'twice by 2), got {config.image_size}')
  if config.num_epochs < 1:
    raise UserInputError(f'num_epochs must be >= 1, got {config.num_epochs}')
  if config.eval_batch_size < 1:
    raise UserInputError(f'eval_batch_size must be >= 1, got {config.eval_batch_size}')
  if config.checkpoint_every_steps < 0:
    raise UserInputError(f'checkpoint_every_steps must be >= 0, got '
                         f'{config.checkpoint_every_steps}')
  if config.steps_per_dispatch < 1:
    raise UserInputError(f'steps_per_dispatch must be >= 1, got '
                         f'{config.steps_per_dispatch}')
  if not 0 <= config.model.dropout_rate < 1:
    raise UserInputError(f'dropout_rate must be in [0, 1), got {config.model.dropout_rate}')
  parallel.check_batch_size(config.batch_size, jax.device_count())
  parallel.check_batch_size(config.eval_batch_size, jax.device_count())


def preprocessing_from(config, train: bool) -> augment.ImagePreprocessing:
  """The ImagePreprocessing of the config's `augment` section (no jitter if not train)."""
  a = config.augment
  return augment.ImagePreprocessing(
      mean=tuple(a.mean), std=tuple(a.std), channels=config.image_channels,
      max_rotation_deg=a.max_rotation_deg if train else 0.0,
      brightness=a.brightness if train else 0.0,
      contrast=a.contrast if train else 0.0)


def load_data(config):
  """The train and test splits as ImageDatasets."""
  load = lambda split: image_classification.load_image_classification(
      config.dataset, split, image_size=config.image_size,
      data_dir=config.data_dir or None,
      process=(jax.process_index(), jax.process_count()))
  return load(config.train_split), load(config.test_split)


def build(config, num_classes: int, steps_per_epoch: int):
  """Model, optimiser, loss function and driver for the config."""
  model = cnn.CNN(cnn.CNNConfig(
      num_classes=num_classes, hidden_dim=config.model.hidden_dim,
      dropout_rate=config.model.dropout_rate,
      dtype=common.compute_dtype(config.model.dtype)))
  tx = optimizers.make_optimizer(common.optimizer_config(
      config.optimizer, total_steps=steps_per_epoch * config.num_epochs))
  # Training augments on device; evaluation only normalises (see loss_fn's `train`).
  loss_fn = classification.make_loss_fn(model, preprocessing_from(config, train=True))
  driver = parallel.make_driver(config.driver, loss_fn, fsdp=config.fsdp,
                                microbatches=config.microbatches)
  return model, tx, driver


def train_and_evaluate(config, workdir: str, resume: bool = False,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
  """Trains per `config`, checkpoints every epoch, then reports on the test split.

  Writes to `workdir`: manifest.json, checkpoints/, metrics.jsonl, tensorboard/,
  classification_report.txt, confusion_matrix.png and final_metrics.json.

  Returns:
    the final metrics (test loss and accuracy, last epoch's training metrics).
  """
  check_config(config)
  workdir = workdir_lib.prepare_workdir(workdir, resume)
  train_set, test_set = load_data(config)
  steps_per_epoch = loop.num_steps_per_epoch(len(train_set), config.batch_size)
  model, tx, driver = build(config, train_set.num_classes, steps_per_epoch)

  key = jax.random.key(config.seed)
  init_key, train_key = jax.random.split(key)
  shape = (1, config.image_size, config.image_size, config.image_channels)
  init_params = lambda rng: model.init({'params': rng}, jnp.zeros(shape),
                                       train=False)['params']
  data_facts = {'name': train_set.name, 'version': train_set.version,
                'train_split': config.train_split, 'test_split': config.test_split,
                'train_examples': len(train_set), 'test_examples': len(test_set),
                'num_classes': train_set.num_classes}
  run = common.start_run(experiment='cnn', config=config, workdir=workdir,
                         resume=resume, init_params=init_params, apply_fn=model.apply,
                         tx=tx, rng=init_key, driver=driver, data_facts=data_facts,
                         log=log)

  history = []

  def on_epoch_end(epoch, state, values):
    step = (epoch + 1) * steps_per_epoch
    history.append(dict(values, epoch=epoch + 1))
    run.writer.write(step, 'train', values, epoch=epoch + 1)

  try:
    with preemption.StopOnSignal() as stop:
      state = loop.fit(driver, run.state, driver.put_data(train_set.arrays()),
                       len(train_set), common.loop_config(config), train_key,
                       start_step=run.start_step, on_epoch_end=on_epoch_end,
                       checkpointer=run.checkpointer,
                       checkpoint_every_steps=config.checkpoint_every_steps,
                       stop_requested=stop.stop_requested, log=log)
    final = report_on_test(driver, state, test_set, config, workdir, log,
                           {'train_history': history, 'parameters': run.param_counts})
    run.writer.write(int(jax.device_get(driver.host_state(state).step)), 'test',
                     {'loss': final['test_loss'], 'accuracy': final['test_accuracy']})
  finally:
    run.close()
  return final


def report_on_test(driver, state, test_set, config, workdir: str,
                   log: Callable[[str], None], extra: dict[str, Any]) -> dict[str, Any]:
  """Evaluates the test split; prints and saves the report and confusion matrix.

  `extra` (e.g. the training history) is saved with the test metrics in
  final_metrics.json.
  """
  values, outputs = loop.evaluate(driver, state, driver.put_data(test_set.arrays()),
                                  len(test_set), config.eval_batch_size)
  labels = test_set.label
  if jax.process_count() > 1:  # Every process's shard, in process order.
    labels = multihost_utils.process_allgather(labels, tiled=True)
  text, matrix = classification_report.report(labels, outputs['prediction'],
                                              test_set.class_names)
  log(f'Test loss = {values["loss"]:.4f} | test accuracy = {100 * values["accuracy"]:.2f}%')
  log(text)
  log('Confusion matrix (rows: true class, columns: predicted class):')
  log(str(matrix))
  final = {'test_loss': values['loss'], 'test_accuracy': values['accuracy'],
           'test_examples': int(matrix.sum()), 'confusion_matrix': matrix.tolist(),
           **extra}
  if distributed.is_primary():
    with open(os.path.join(workdir, 'classification_report.txt'), 'w',
              encoding='utf-8') as f:
      f.write(text + '\n' + str(matrix) + '\n')
    png = classification_report.save_confusion_matrix_png(
        matrix, test_set.class_names, os.path.join(workdir, 'confusion_matrix.png'),
        title=f'{test_set.name} {config.test_split}: confusion matrix')
    log(f'Saved {png}')
    with open(os.path.join(workdir, 'final_metrics.json'), 'w', encoding='utf-8') as f:
      json.dump(final, f, indent=2)
  return final
