"""The prompt-conditioned DDPM as a trainer family.

Training prompts come from a grammar (`research.data.prompt_grammar`): the
config's templates, each class's names and the words of the attributes measured
on each training image (`research.data.glyph_attributes`), drawn afresh per
example and step. Periodic evaluation writes a sample grid (one row per class);
the report writes the final grid and one of the config's showcase prompts, then
trains the seed's CNN (through the CNN family, in memory) on the same training
split and judges samples: digit accuracy on the training templates and on
paraphrase templates never trained on, the Fréchet distance between CNN
features of samples and of real images, and how often samples asked for an
attribute measure on the asked side of their class's median.
"""

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from research.data import glyph_attributes
from research.data import prompt_grammar
from research.data import tokenizers
from research.errors import UserInputError
from research.families import cnn
from research.generation import diffusion
from research.models import text_encoder
from research.models import unet
from research.tasks import ddpm
from research.tasks import prompt_requests
from research.tasks import sample_quality
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
  for name in ('paraphrase_samples_per_class', 'attribute_samples_per_prompt'):
    if config[name] < 0:
      raise UserInputError(f'{name} must be >= 0, got {config[name]}')
  p = config.prompts
  for name in ('describe_rate', 'attribute_rate', 'unknown_word_rate'):
    if not 0 <= p[name] <= 1:
      raise UserInputError(f'prompts.{name} must be in [0, 1], got {p[name]}')
  try:
    glyph_attributes.check_names(p.attributes)
    for template in tuple(p.templates) + tuple(p.paraphrases):
      prompt_grammar.check_template(template)
  except ValueError as e:
    raise UserInputError(f'prompts: {e}') from None


def judge_config(config: Any) -> ml_collections.ConfigDict:
  """The judging classifier's CNN config, on the DDPM's own data and image size (the
  data fields say which; `PromptDDPM` hands the judge the data it already holds).

  The judge keeps its own seed (`classifier.seed`), not the DDPM's: every DDPM seed
  is judged by the same classifier, so accuracies and Fréchet distances (whose
  features are the judge's) compare across seeds.
  """
  judge = ml_collections.ConfigDict(config.classifier.to_dict())
  for name in (
    'dataset',
    'data_dir',
    'train_split',
    'test_split',
    'image_size',
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
    t = self.train_set
    if t.image.shape[-1] != c.image_channels:
      raise UserInputError(
        f'data set {c.dataset!r} has {t.image.shape[-1]} channels; set image_channels to it'
      )
    p = c.prompts
    names = prompt_grammar.class_names(c.dataset, t.class_names, p.numerals)
    self.grammar = prompt_grammar.PromptGrammar(names, tuple(p.templates), tuple(p.attributes))
    measured = glyph_attributes.measure(t.image, self.grammar.attributes)
    self.thresholds = glyph_attributes.fit_thresholds(measured, t.label, len(names))
    levels = glyph_attributes.levels(measured, t.label, self.thresholds)
    every_prompt = self.grammar.prompts()
    self.tokenizer = tokenizers.WordTokenizer.from_prompts(every_prompt)
    # One grid row per class: the first template and name, no attribute.
    no_attributes = [0] * len(self.grammar.attributes)
    self.prompts = [self.grammar.render(k, 0, 0, no_attributes, ()) for k in range(len(names))]
    self.table = self._encode(every_prompt, 'training prompt')
    facts = cnn.image_facts(c, t, self.test_set) | {
      'prompts': self.prompts,
      'prompt_vocabulary': self.tokenizer.words,
      'prompt_table_rows': len(self.table),
      'attribute_tertiles': {
        a: {'low': self.thresholds.low[:, i].tolist(), 'high': self.thresholds.high[:, i].tolist()}
        for i, a in enumerate(self.grammar.attributes)
      },
    }
    return trainer.TrainData(t.arrays() | {'levels': levels}, len(t), facts=facts)

  def _encode(self, prompts: list[str], what: str) -> np.ndarray:
    """int32 (len(prompts), text.max_length) tokens, or a UserInputError saying why not."""
    try:
      return self.tokenizer.encode_batch(prompts, self.config.text.max_length)
    except ValueError as e:
      raise UserInputError(f'{what}: {e}; raise text.max_length or shorten it') from None

  def _prompt_fn(self) -> ddpm.PromptFn:
    """Training draws a prompt per example from the grammar's table (a fixed one in
    evaluation, so its loss is comparable), then hides words at unknown_word_rate."""
    table, grammar, p = jnp.asarray(self.table), self.grammar, self.config.prompts

    def prompt_fn(rng, batch, train):
      row_rng, hide_rng = jax.random.split(rng)
      rows = grammar.sample_rows(
        row_rng, batch['label'], batch['levels'], p.describe_rate, p.attribute_rate
      )
      tokens = table[rows]
      if train and p.unknown_word_rate:
        tokens = prompt_grammar.hide_words(hide_rng, tokens, p.unknown_word_rate)
      return tokens

    return prompt_fn

  def build(self, data: trainer.TrainData) -> trainer.Model:
    c = self.config
    unet_cfg = settings.model_settings(unet.UNetConfig, c.model, out_channels=c.image_channels)
    try:
      unet.check_image_size(unet_cfg, c.image_size)
    except ValueError as e:
      raise UserInputError(str(e)) from None
    module = ddpm.Denoiser(
      unet_cfg,
      settings.model_settings(
        text_encoder.TextEncoderConfig, c.text, vocab_size=self.tokenizer.size, dtype=c.model.dtype
      ),
    )
    self.sched = diffusion.make_schedule(c.schedule, c.num_diffusion_steps)
    s, ch = c.image_size, c.image_channels
    init = lambda rng: module.init(
      {'params': rng},
      jnp.zeros((1, s, s, ch)),
      jnp.zeros((1,), jnp.int32),
      jnp.asarray(self.table[:1]),
      jnp.zeros((1,), bool),
      train=False,
    )['params']
    self.sampler = ddpm.PromptSampler(
      module,
      self.sched,
      (s, s, ch),
      sampler=c.sampler,
      num_steps=c.sample_steps,
      guidance_scale=c.guidance_scale,
    )
    return trainer.Model(
      module,
      init,
      ddpm.make_loss_fn(module, self.sched, self._prompt_fn(), c.cond_drop_rate),
      wrap_optimizer=lambda tx: optimizers.with_parameter_ema(tx, c.ema_decay),
    )

  def _grid(
    self,
    run: trainer.Run,
    params: Any,
    prompts: list[str],
    name: str,
    step: int,
    tag: str = 'samples',
  ) -> None:
    tokens = self._encode(prompts, 'grid prompt')
    png = self.sampler.grid(
      params, tokens, self.config.samples_per_prompt, jax.random.key(self.config.seed + 4)
    )
    if (path := run.path(name)) is not None:
      run.log(f'Saved {files.write_bytes(path, png)}')
      run.image(step, tag, png)

  def evaluate(self, run: trainer.Run, state: Any, step: int) -> dict[str, float]:
    params = optimizers.ema_params(run.driver.host_state(state).opt_state)
    self._grid(run, params, self.prompts, f'samples_step{step}.png', step)
    return {}

  def report(self, run: trainer.Run, state: Any) -> dict[str, Any]:
    params = optimizers.ema_params(run.driver.host_state(state).opt_state)
    self._grid(run, params, self.prompts, 'samples_final.png', run.total_steps)
    showcase = list(self.config.prompts.showcase)
    if showcase:
      if unknown := prompt_grammar.unknown_words(self.tokenizer, showcase):
        run.log(f'Showcase prompts: words the model never trained on (read as unknown): {unknown}')
      self._grid(run, params, showcase, 'samples_showcase.png', run.total_steps, 'showcase')
    result = self._judge(run, params)
    result['prompts'] = self.prompts
    result['showcase_prompts'] = showcase
    return result

  def _train_judge(self, run: trainer.Run) -> tuple[Any, float]:
    """The seed's CNN trained on this family's data: (images -> (logits, features),
    its test accuracy)."""
    # The judge trains and tests on the data this family already holds, as its own
    # load_data would read it: this process's share of both splits.
    judge = cnn.CNNClassifier(
      judge_config(self.config), datasets=(self.train_set, cnn.process_share(self.test_set))
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
    return classifier_fn, accuracy

  def _requests(self) -> dict[str, prompt_requests.Requests]:
    """What the judge asks for: training templates (accuracy and Fréchet distance),
    paraphrases (accuracy) and attributes (agreement), the last two if configured."""
    c, g = self.config, self.grammar
    a = len(g.attributes)
    out = {
      'templates': prompt_requests.class_requests(
        g.names, g.templates, c.eval_samples_per_prompt, a
      )
    }
    if c.prompts.paraphrases and c.paraphrase_samples_per_class:
      out['paraphrases'] = prompt_requests.class_requests(
        g.names, tuple(c.prompts.paraphrases), c.paraphrase_samples_per_class, a
      )
    if a and c.attribute_samples_per_prompt:
      out['attributes'] = prompt_requests.attribute_requests(g, 0, c.attribute_samples_per_prompt)
    return out

  def _sample_requests(self, params: Any, requests) -> tuple[dict[str, np.ndarray], float]:
    """uint8 samples of each request set, and the sampling seconds per image."""
    c = self.config
    samples, seconds = {}, 0.0
    for i, (name, req) in enumerate(requests.items()):
      tokens = self._encode(req.prompts, f'{name} prompt')
      t0 = time.perf_counter()
      samples[name] = self.sampler.many(
        params,
        tokens,
        jax.random.key(c.seed + 3 + 100 * i),
        batch=len(self.prompts) * c.samples_per_prompt,
      )
      seconds += time.perf_counter() - t0
    return samples, seconds / sum(len(r) for r in requests.values())

  def _judge(self, run: trainer.Run, params: Any) -> dict[str, Any]:
    classifier_fn, accuracy = self._train_judge(run)
    reqs = self._requests()
    samples, seconds_per_image = self._sample_requests(params, reqs)
    to3 = lambda im: np.repeat(im, 3, -1) if im.shape[-1] == 1 else im
    pred, feats = sample_quality.classify(classifier_fn, to3(samples['templates']))
    _, real = sample_quality.classify(classifier_fn, to3(self.test_set.image))
    _, real_train = sample_quality.classify(classifier_fn, to3(self.train_set.image))
    classes = reqs['templates'].classes
    result: dict[str, Any] = {
      'prompt_accuracy': sample_quality.prompt_accuracy(pred, classes),
      'frechet_distance': sample_quality.feature_frechet_distance(feats, real),
      'frechet_distance_train_vs_test': sample_quality.feature_frechet_distance(real_train, real),
      'classifier_test_accuracy': accuracy,
      'num_samples': len(classes),
      'frechet_feature_dims': int(feats.shape[1]),
      'frechet_varying_features': sample_quality.varying_features(feats, real),
      'sampling_seconds_per_image': seconds_per_image,
      'per_class_accuracy': [
        float(np.mean(pred[classes == k] == k)) for k in range(len(self.prompts))
      ],
    }
    if 'paraphrases' in samples:
      para_pred, _ = sample_quality.classify(classifier_fn, to3(samples['paraphrases']))
      result['paraphrase_accuracy'] = sample_quality.prompt_accuracy(
        para_pred, reqs['paraphrases'].classes
      )
      result['unknown_paraphrase_words'] = prompt_grammar.unknown_words(
        self.tokenizer, reqs['paraphrases'].prompts
      )
    if 'attributes' in samples:
      result['attributes'] = prompt_requests.attribute_report(
        samples['attributes'], reqs['attributes'], self.grammar, self.thresholds
      )
    self._log_judgement(run, result)
    return result

  def _log_judgement(self, run: trainer.Run, result: dict[str, Any]) -> None:
    c = self.config
    run.log(
      f'Samples classified as their prompt: {100 * result["prompt_accuracy"]:.1f}% '
      f'| Fréchet distance to test images: {result["frechet_distance"]:.2f} over '
      f'{result["num_samples"]} samples, {result["frechet_varying_features"]} of '
      f'{result["frechet_feature_dims"]} features varying (real train vs test: '
      f'{result["frechet_distance_train_vs_test"]:.2f}) | '
      f'{1000 * result["sampling_seconds_per_image"]:.0f} ms per image '
      f'({c.sampler}, {c.sample_steps} steps, guidance {c.guidance_scale})'
    )
    if 'paraphrase_accuracy' in result:
      run.log(
        f'Paraphrases never trained on: {100 * result["paraphrase_accuracy"]:.1f}% classified '
        f'as their digit (unknown words: {result["unknown_paraphrase_words"]})'
      )
    for name, r in result.get('attributes', {}).items():
      means = ', '.join(
        f'{k.removeprefix("mean_")} {v:.3g}' for k, v in r.items() if k != 'agreement'
      )
      run.log(
        f'Attribute {name}: {100 * r["agreement"]:.1f}% of samples on the asked side of '
        f'their class median (chance 50%); mean measured {means}'
      )
    if result['num_samples'] <= result['frechet_varying_features']:
      run.log(
        f'Note: the Fréchet distance fits {result["frechet_varying_features"]}-dimensional '
        f'Gaussians to {result["num_samples"]} samples: a singular covariance, so the '
        'figure is biased; raise eval_samples_per_prompt past that.'
      )
