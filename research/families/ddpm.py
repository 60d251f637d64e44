"""The prompt-conditioned DDPM as a trainer family.

Periodic evaluation writes a sample grid (one row per prompt); the report writes the
final grid, then trains the seed's CNN (through the CNN family, in memory) on the
same training split and measures how often samples are classified as their prompt's
class and the Fréchet distance between CNN features of samples and of real images.
"""

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from research import diffusion
from research import sample_quality
from research.data import tokenizers
from research.errors import UserInputError
from research.families import cnn
from research.models import text_encoder
from research.models import unet
from research.tasks import diffusion as task
from research.train import files
from research.train import optimizers
from research.train import settings
from research.train import trainer

SAMPLERS = ('ddim', 'ddpm')


def check(config: Any) -> None:
  """Rejects diffusion settings the maths cannot use, saying why."""
  if config.sampler not in SAMPLERS:
    raise UserInputError(f'unknown sampler {config.sampler!r}: use one of {SAMPLERS}')
  if config.schedule not in diffusion.SCHEDULES:
    raise UserInputError(f'unknown schedule {config.schedule!r}: use one of {diffusion.SCHEDULES}')
  if config.num_diffusion_steps < 2 or not 1 <= config.sample_steps <= (config.num_diffusion_steps):
    raise UserInputError(
      f'need num_diffusion_steps >= 2 and 1 <= sample_steps <= it, '
      f'got {config.num_diffusion_steps} and {config.sample_steps}'
    )
  for name in ('cond_drop_rate', 'ema_decay'):
    if not 0 <= config[name] < 1:
      raise UserInputError(f'{name} must be in [0, 1), got {config[name]}')
  for name in ('samples_per_prompt', 'eval_samples_per_prompt'):
    if config[name] < 1:
      raise UserInputError(f'{name} must be >= 1, got {config[name]}')


def judge_config(config: Any) -> ml_collections.ConfigDict:
  """The judging classifier's CNN config, on the DDPM's own data and image size (the
  data fields say which; `PromptDDPM` hands the judge the data it already holds)."""
  judge = ml_collections.ConfigDict(config.classifier.to_dict())
  for name in (
    'dataset',
    'data_dir',
    'train_split',
    'test_split',
    'image_size',
    'seed',
    'progress',
  ):
    judge[name] = config[name]
  return judge


@dataclasses.dataclass
class PromptDDPM:
  """Trains a text-conditioned DDPM; judges its samples with the seed's CNN.

  Attributes:
    config: the experiment's ConfigDict.
    datasets: (train, test) already in memory (synthetic data, say): this process's
      share of the training split and the whole test split; None reads the config's.
  """

  config: Any
  datasets: cnn.Images | None = None
  name: str = 'ddpm'
  eval_split: str = 'samples'

  def load_data(self) -> trainer.TrainData:
    c = self.config
    check(c)
    # The whole test split is the Fréchet distance's reference.
    self.train_set, self.test_set = cnn.train_and_test(c, self.datasets, whole_test=True)
    if self.train_set.image.shape[-1] != c.image_channels:
      raise UserInputError(
        f'data set {c.dataset!r} has {self.train_set.image.shape[-1]} '
        'channels; set image_channels to it'
      )
    self.prompts = task.class_prompts(c.dataset, self.train_set.class_names)
    tokenizer = tokenizers.WordTokenizer.from_prompts(self.prompts)
    try:
      self.tokens = tokenizer.encode_batch(self.prompts, c.text.max_length)
    except ValueError as e:
      raise UserInputError(f'{e}: raise text.max_length') from None
    self.vocab_size = tokenizer.size
    t = self.train_set
    facts = cnn.image_facts(c, t, self.test_set) | {
      'prompts': self.prompts,
      'prompt_vocabulary': tokenizer.words,
    }
    return trainer.TrainData(t.arrays(), len(t), facts=facts)

  def build(self, data: trainer.TrainData) -> trainer.Model:
    c = self.config
    unet_cfg = settings.model_settings(unet.UNetConfig, c.model, out_channels=c.image_channels)
    try:
      unet.check_image_size(unet_cfg, c.image_size)
    except ValueError as e:
      raise UserInputError(str(e)) from None
    module = task.Denoiser(
      unet_cfg,
      settings.model_settings(
        text_encoder.TextEncoderConfig, c.text, vocab_size=self.vocab_size, dtype=c.model.dtype
      ),
    )
    self.sched = diffusion.make_schedule(c.schedule, c.num_diffusion_steps)
    s, ch = c.image_size, c.image_channels
    init = lambda rng: module.init(
      {'params': rng},
      jnp.zeros((1, s, s, ch)),
      jnp.zeros((1,), jnp.int32),
      jnp.asarray(self.tokens[:1]),
      jnp.zeros((1,), bool),
      train=False,
    )['params']
    self.sampler = task.PromptSampler(
      module,
      self.sched,
      self.tokens,
      (s, s, ch),
      sampler=c.sampler,
      num_steps=c.sample_steps,
      guidance_scale=c.guidance_scale,
    )
    return trainer.Model(
      module,
      init,
      task.make_loss_fn(module, self.sched, self.tokens, c.cond_drop_rate),
      wrap_optimizer=lambda tx: optimizers.with_parameter_ema(tx, c.ema_decay),
    )

  def _grid(self, run: trainer.Run, state: Any, name: str, step: int) -> None:
    params = optimizers.ema_params(run.driver.host_state(state).opt_state)
    png = self.sampler.grid(
      params, self.config.samples_per_prompt, jax.random.key(self.config.seed + 4)
    )
    if (path := run.path(name)) is not None:
      run.log(f'Saved {files.write_bytes(path, png)}')
      run.image(step, 'samples', png)

  def evaluate(self, run: trainer.Run, state: Any, step: int) -> dict[str, float]:
    self._grid(run, state, f'samples_step{step}.png', step)
    return {}

  def report(self, run: trainer.Run, state: Any) -> dict[str, Any]:
    self._grid(run, state, 'samples_final.png', run.total_steps)
    params = optimizers.ema_params(run.driver.host_state(state).opt_state)
    result = self._judge(run, params)
    result['prompts'] = self.prompts
    return result

  def _judge(self, run: trainer.Run, params: Any) -> dict[str, Any]:
    c = self.config
    # The judge trains and tests on the data this family already holds, as its own
    # load_data would read it: this process's share of both splits.
    judge = cnn.CNNClassifier(
      judge_config(c), datasets=(self.train_set, cnn.process_share(self.test_set))
    )
    judge_run, judge_state = trainer.train_in_memory(
      judge, log=lambda line: run.log('classifier ' + line)
    )
    accuracy = judge.evaluate(judge_run, judge_state, judge_run.total_steps)['accuracy']
    classifier_fn = sample_quality.make_classifier_fn(
      judge_run.model.module,
      judge_run.driver.host_state(judge_state).params,
      cnn.preprocessing(judge.config, train=False),
    )
    k = len(self.prompts)
    classes = np.repeat(np.arange(k), c.eval_samples_per_prompt)
    t0 = time.perf_counter()
    images = self.sampler.many(
      params, classes, jax.random.key(c.seed + 3), batch=k * c.samples_per_prompt
    )
    seconds = time.perf_counter() - t0
    to3 = lambda im: np.repeat(im, 3, -1) if im.shape[-1] == 1 else im
    pred, feats = sample_quality.classify(classifier_fn, to3(images))
    _, real = sample_quality.classify(classifier_fn, to3(self.test_set.image))
    _, real_train = sample_quality.classify(classifier_fn, to3(self.train_set.image))
    result: dict[str, Any] = {
      'prompt_accuracy': sample_quality.prompt_accuracy(pred, classes),
      'frechet_distance': sample_quality.feature_frechet_distance(feats, real),
      'frechet_distance_train_vs_test': sample_quality.feature_frechet_distance(real_train, real),
      'classifier_test_accuracy': accuracy,
      'num_samples': len(classes),
      'frechet_feature_dims': int(feats.shape[1]),
      'sampling_seconds_per_image': seconds / len(classes),
      'per_prompt_accuracy': [float(np.mean(pred[classes == i] == i)) for i in range(k)],
    }
    run.log(
      f'Samples classified as their prompt: {100 * result["prompt_accuracy"]:.1f}% '
      f'| Fréchet distance to test images: {result["frechet_distance"]:.2f} (real '
      f'train vs test: {result["frechet_distance_train_vs_test"]:.2f}) | '
      f'{1000 * result["sampling_seconds_per_image"]:.0f} ms per image '
      f'({c.sampler}, {c.sample_steps} steps, guidance {c.guidance_scale})'
    )
    if min(len(feats), len(real)) <= feats.shape[1]:
      run.log(
        f'Note: the Fréchet distance fits {feats.shape[1]}-dimensional Gaussians to '
        f'{len(feats)} samples and {len(real)} test images: a singular covariance, so '
        'the figure is biased; raise eval_samples_per_prompt (or test images) past that.'
      )
    return result
