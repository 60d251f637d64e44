"""Train a prompt-conditioned DDPM on a tfds image set; sample, and judge the samples.

The run writes sample grids (one row per prompt) during and after training, then
trains the seed's CNN on the same training split and reports how often samples
are classified as their prompt's class and the Fréchet distance between CNN
features of samples and of real test images.
"""

import functools
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from research import diffusion
from research import sample_quality
from research.data import image_classification
from research.errors import UserInputError
from research.models import text_encoder
from research.models import unet
from research.recipes import cnn_classifier
from research.recipes import common
from research.tasks import diffusion as task
from research.train import distributed
from research.train import loop
from research.train import optimizers
from research.train import parallel
from research.train import preemption
from research.train import state as state_lib
from research.train import workdir as workdir_lib

SAMPLERS = ('ddim', 'ddpm')


def check_config(config) -> None:
  """Rejects settings the model, maths or loop cannot use, saying why."""
  for name in ('num_epochs', 'steps_per_dispatch', 'samples_per_prompt',
               'eval_samples_per_prompt', 'sample_steps'):
    if config[name] < 1:
      raise UserInputError(f'{name} must be >= 1, got {config[name]}')
  if config.sample_every_epochs < 0:
    raise UserInputError(f'sample_every_epochs must be >= 0, got '
                         f'{config.sample_every_epochs}')
  if config.sampler not in SAMPLERS:
    raise UserInputError(f'unknown sampler {config.sampler!r}: use one of {SAMPLERS}')
  if config.schedule not in diffusion.SCHEDULES:
    raise UserInputError(f'unknown schedule {config.schedule!r}: use one of '
                         f'{diffusion.SCHEDULES}')
  if config.num_diffusion_steps < 2 or config.sample_steps > config.num_diffusion_steps:
    raise UserInputError(f'need num_diffusion_steps >= 2 and sample_steps <= it, got '
                         f'{config.num_diffusion_steps} and {config.sample_steps}')
  if not 0 <= config.cond_drop_rate < 1:
    raise UserInputError(f'cond_drop_rate must be in [0, 1), got {config.cond_drop_rate}')
  if not 0 <= config.ema_decay < 1:
    raise UserInputError(f'ema_decay must be in [0, 1), got {config.ema_decay}')
  try:
    unet.check_image_size(unet_config(config), config.image_size)
  except ValueError as e:
    raise UserInputError(str(e)) from None
  parallel.check_batch_size(config.batch_size, jax.device_count())


def unet_config(config) -> unet.UNetConfig:
  m = config.model
  try:
    return unet.UNetConfig(
        out_channels=config.image_channels, widths=tuple(m.widths),
        num_res_blocks=m.num_res_blocks, attention_resolutions=tuple(m.attention_resolutions),
        num_heads=m.num_heads, num_groups=m.num_groups, dropout_rate=m.dropout_rate,
        dtype=common.compute_dtype(m.dtype))
  except ValueError as e:
    raise UserInputError(str(e)) from None


def build_model(config, vocabulary: tuple[str, ...]) -> task.Denoiser:
  """The Denoiser (text encoder over `vocabulary` + U-Net) of the config."""
  t = config.text
  return task.Denoiser(unet_config(config), text_encoder.TextEncoderConfig(
      vocab_size=text_encoder.vocab_size(vocabulary), max_length=t.max_length,
      emb_dim=t.emb_dim, num_heads=t.num_heads, num_layers=t.num_layers, mlp_dim=t.mlp_dim,
      dtype=common.compute_dtype(config.model.dtype)))


def load_data(config):
  """Train and test splits resized to image_size, with the image_channels asked for.

  In a multi-process run each process reads its own shard of the training split
  and the whole test split (the Fréchet distance's reference).
  """
  load = lambda split, process: image_classification.load_image_classification(
      config.dataset, split, image_size=config.image_size,
      data_dir=config.data_dir or None, process=process)
  train = load(config.train_split, (jax.process_index(), jax.process_count()))
  test = load(config.test_split, (0, 1))
  if train.image.shape[-1] != config.image_channels:
    raise UserInputError(f'data set {config.dataset!r} has {train.image.shape[-1]} '
                         f'channels; set image_channels to it')
  return train, test


def save_grid(images_RxCxHxWxC: np.ndarray, path: str, scale: int = 2) -> str:
  """Writes uint8 images as an R x C grid PNG (2-pixel gaps, upscaled `scale`x)."""
  r, c, h, w, ch = images_RxCxHxWxC.shape
  grid = np.full((r * (h + 2) + 2, c * (w + 2) + 2, ch), 255, np.uint8)
  for i in range(r):
    for j in range(c):
      grid[2 + i * (h + 2):2 + i * (h + 2) + h,
           2 + j * (w + 2):2 + j * (w + 2) + w] = images_RxCxHxWxC[i, j]
  grid = np.repeat(np.repeat(grid, scale, 0), scale, 1)
  Image.fromarray(grid[..., 0] if ch == 1 else grid).save(path)
  return path


class Sampler:
  """Compiled prompt-conditioned sampling with the EMA parameters."""

  def __init__(self, model, sched, config, prompts: list[str], tokens: np.ndarray):
    self.prompts = prompts
    self.tokens = tokens  # (len(prompts), L) int32 from text_encoder.tokenize.
    self._fn = jax.jit(functools.partial(
        task.sample, model, image_shape=(config.image_size, config.image_size,
                                         config.image_channels),
        sampler=config.sampler, num_steps=config.sample_steps,
        guidance_scale=config.guidance_scale))
    self.sched = sched

  def __call__(self, params, classes: np.ndarray, rng) -> np.ndarray:
    """uint8 samples (len(classes), H, W, C) for the prompts of `classes`."""
    x = self._fn(params, self.sched, jnp.asarray(self.tokens[classes]), rng)
    return np.asarray(jax.device_get(task.to_uint8(x)))

  def grid(self, params, per_prompt: int, rng, path: str) -> str:
    """One row per prompt, `per_prompt` samples each, saved as a PNG."""
    k = len(self.prompts)
    images = self(params, np.repeat(np.arange(k), per_prompt), rng)
    return save_grid(images.reshape((k, per_prompt) + images.shape[1:]), path)


def train_classifier(config, train_set, test_set, log):
  """Trains the seed's CNN on the training split; returns (classifier_fn, test accuracy)."""
  c = config.classifier
  steps = loop.num_steps_per_epoch(len(train_set), c.batch_size)
  cnn_cfg = dict(c.to_dict(), image_channels=3)
  cfg = type(c)(cnn_cfg)
  model, tx, driver = cnn_classifier.build(cfg, train_set.num_classes, steps)
  shape = (1, config.image_size, config.image_size, 3)
  init = lambda rng: model.init({'params': rng}, jnp.zeros(shape), train=False)['params']
  state = driver.put_replicated(state_lib.init_train_state(
      init, model.apply, tx, jax.random.key(config.seed + 1)))
  loop_cfg = loop.LoopConfig(num_epochs=c.num_epochs, batch_size=c.batch_size,
                             eval_batch_size=c.batch_size, seed=config.seed,
                             progress=config.progress)
  state = loop.fit(driver, state, driver.put_data(train_set.arrays()),
                   len(train_set), loop_cfg, jax.random.key(config.seed + 2),
                   log=lambda line: log('classifier ' + line))
  values, _ = loop.evaluate(driver, state, driver.put_data(test_set.arrays()),
                            len(test_set), c.batch_size)
  prep = cnn_classifier.preprocessing_from(cfg, train=False)
  params = driver.host_state(state).params
  return sample_quality.make_classifier_fn(model, params, prep), values['accuracy']


def judge_samples(config, sampler, params, train_set, test_set, workdir, log
                  ) -> dict[str, Any]:
  """Samples per prompt, classifies them and computes the Fréchet distance."""
  classifier_fn, clf_acc = train_classifier(config, train_set, test_set, log)
  log(f'Classifier test accuracy = {100 * clf_acc:.2f}%')
  k, n = len(sampler.prompts), config.eval_samples_per_prompt
  classes = np.repeat(np.arange(k), n)
  per_call = k * config.samples_per_prompt  # The grid's batch: compiled already.
  rng = jax.random.key(config.seed + 3)
  images, t0 = [], time.perf_counter()
  for i in range(0, len(classes), per_call):
    chunk = classes[i:i + per_call]
    pad = per_call - len(chunk)
    out = sampler(params, np.concatenate([chunk, np.zeros(pad, int)]),
                  jax.random.fold_in(rng, i))
    images.append(out[:len(chunk)])
  seconds = time.perf_counter() - t0
  images = np.concatenate(images)
  to3 = lambda im: np.repeat(im, 3, -1) if im.shape[-1] == 1 else im
  pred, feats = sample_quality.classify(classifier_fn, to3(images))
  _, real = sample_quality.classify(classifier_fn, to3(test_set.image))
  _, real_train = sample_quality.classify(classifier_fn, to3(train_set.image))
  result = {
      'prompt_accuracy': sample_quality.prompt_accuracy(pred, classes),
      'frechet_distance': sample_quality.feature_frechet_distance(feats, real),
      'frechet_distance_train_vs_test': sample_quality.feature_frechet_distance(
          real_train, real),
      'classifier_test_accuracy': clf_acc, 'num_samples': len(classes),
      'sampling_seconds_per_image': seconds / len(classes),
      'per_prompt_accuracy': [float(np.mean(pred[classes == c] == c)) for c in range(k)]}
  log(f'Samples classified as their prompt: {100 * result["prompt_accuracy"]:.1f}% | '
      f'Fréchet distance to test images: {result["frechet_distance"]:.2f} (real train '
      f'vs test: {result["frechet_distance_train_vs_test"]:.2f}) | '
      f'{1000 * result["sampling_seconds_per_image"]:.0f} ms per image '
      f'({config.sampler}, {config.sample_steps} steps, guidance '
      f'{config.guidance_scale})')
  return result


def train_and_evaluate(config, workdir: str, resume: bool = False,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
  """Trains per `config`, writing sample grids; then judges the samples.

  Writes to `workdir`: manifest.json, checkpoints/, metrics.jsonl, tensorboard/,
  samples_epoch<N>.png, samples_final.png and final_metrics.json.

  Returns:
    the final metrics (prompt accuracy, Fréchet distance, timings, history).
  """
  check_config(config)
  workdir = workdir_lib.prepare_workdir(workdir, resume)
  train_set, test_set = load_data(config)
  prompts = task.class_prompts(config.dataset, train_set.class_names)
  vocabulary = text_encoder.build_vocabulary(prompts)
  try:
    tokens = text_encoder.tokenize(prompts, vocabulary, config.text.max_length)
  except ValueError as e:
    raise UserInputError(f'{e}: raise text.max_length') from None
  steps_per_epoch = loop.num_steps_per_epoch(len(train_set), config.batch_size)
  model = build_model(config, vocabulary)
  sched = diffusion.make_schedule(config.schedule, config.num_diffusion_steps)
  tx = task.with_parameter_ema(optimizers.make_optimizer(common.optimizer_config(
      config.optimizer, total_steps=steps_per_epoch * config.num_epochs)),
      config.ema_decay)
  driver = parallel.make_driver(config.driver, task.make_loss_fn(
      model, sched, tokens, config.cond_drop_rate), microbatches=config.microbatches)

  key = jax.random.key(config.seed)
  init_key, train_key, sample_key = jax.random.split(key, 3)
  s, ch = config.image_size, config.image_channels
  init_params = lambda rng: model.init(
      {'params': rng}, jnp.zeros((1, s, s, ch)), jnp.zeros((1,), jnp.int32),
      jnp.asarray(tokens[:1]), jnp.zeros((1,), bool), train=False)['params']
  data_facts = {'name': train_set.name, 'version': train_set.version,
                'train_split': config.train_split, 'test_split': config.test_split,
                'train_examples': len(train_set), 'test_examples': len(test_set),
                'prompts': prompts, 'prompt_vocabulary': vocabulary}
  run = common.start_run(experiment='ddpm', config=config, workdir=workdir, resume=resume,
                         init_params=init_params, apply_fn=model.apply, tx=tx,
                         rng=init_key, driver=driver, data_facts=data_facts, log=log)
  state, start_step, checkpointer, writer = (run.state, run.start_step, run.checkpointer,
                                             run.writer)
  counts = run.param_counts
  sampler = Sampler(model, sched, config, prompts, tokens)
  is_primary = distributed.is_primary()
  loop_cfg = loop.LoopConfig(
      num_epochs=config.num_epochs, batch_size=config.batch_size,
      eval_batch_size=config.batch_size, seed=config.seed,
      steps_per_dispatch=config.steps_per_dispatch, progress=config.progress,
      skip_nonfinite=config.optimizer.skip_nonfinite)
  history = []
  grid = lambda st, name: sampler.grid(
      task.ema_params(driver.host_state(st).opt_state), config.samples_per_prompt,
      sample_key, os.path.join(workdir, name))

  def on_epoch_end(epoch, state, values):
    history.append(dict(values, epoch=epoch + 1))
    writer.write((epoch + 1) * steps_per_epoch, 'train', values, epoch=epoch + 1)
    every = config.sample_every_epochs
    if is_primary and every and (epoch + 1) % every == 0 and epoch + 1 < config.num_epochs:
      log(f'Saved {grid(state, f"samples_epoch{epoch + 1}.png")}')

  try:
    t0 = time.perf_counter()
    with preemption.StopOnSignal() as stop:
      state = loop.fit(driver, state, driver.put_data(train_set.arrays()),
                       len(train_set), loop_cfg, train_key, start_step=start_step,
                       on_epoch_end=on_epoch_end, checkpointer=checkpointer,
                       checkpoint_every_steps=config.checkpoint_every_steps,
                       stop_requested=stop.stop_requested, log=log)
    train_seconds = time.perf_counter() - t0
    checkpointer.wait()
    if is_primary:
      log(f'Saved {grid(state, "samples_final.png")}')
    params = task.ema_params(driver.host_state(state).opt_state)
    final = judge_samples(config, sampler, params, train_set, test_set, workdir, log)
    final.update(train_history=history, parameters=counts, prompts=prompts,
                 train_wall_seconds=train_seconds)
    writer.write(int(jax.device_get(driver.host_state(state).step)), 'samples',
                 {k: final[k] for k in ('prompt_accuracy', 'frechet_distance',
                                        'sampling_seconds_per_image')})
    if is_primary:
      with open(os.path.join(workdir, 'final_metrics.json'), 'w', encoding='utf-8') as f:
        json.dump(final, f, indent=2)
  finally:
    checkpointer.close()
    writer.close()
  return final
