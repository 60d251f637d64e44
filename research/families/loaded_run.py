"""Runs that load back: a trained model from its run directory.

`load_run(workdir)` reads the run's manifest (its config and data facts), rebuilds
the family's model without reading the training data, and restores the newest
checkpoint (or a given step). The object it returns holds `family`, `model`,
`params`, `config` and `step`, and one call per family:

- 'cnn': `LoadedClassifier.classify(images) -> (labels, probabilities)`;
- 'lm': `LoadedLanguageModel.continue_text(prompt, num_chars)`;
- 'seq2seq': `LoadedSeq2Seq.translate(sources) -> texts` (greedy or beam);
- 'ddpm': `LoadedDDPM.sample(prompts, rng) -> uint8 images` (with the exponential
  moving average of the parameters, as the family samples), and `sample_grid`.

The family is built by its own `build`, so the loaded model is the trained one by
construction; each `Loaded*` class gives the family, from the manifest, the data
facts its `load_data` would have set and `build` reads (class names, vocabulary,
sequence lengths).
"""

import dataclasses
import functools
from typing import Any, Callable, ClassVar, Sequence, cast

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from research.data import augment
from research.data import image_classification
from research.data import prompt_grammar
from research.data import seq2seq_tasks
from research.data import tokenizers
from research.errors import UserInputError
from research.families import cnn
from research.families import ddpm
from research.families import lm
from research.families import seq2seq
from research.generation import decoding
from research.models import transformer
from research.tasks import language_model
from research.train import checkpoint as checkpoint_lib
from research.train import files
from research.train import optimizers
from research.train import settings
from research.train import state as state_lib
from research.train import trainer

Rng = jax.Array | int  # A PRNG key, or an int seed for `jax.random.key`.


def _key(rng: Rng) -> jax.Array:
  return jax.random.key(rng) if isinstance(rng, int) else rng


@dataclasses.dataclass
class LoadedRun:
  """A trained model read back from its run directory (see `load_run`).

  Attributes:
    family: the run's family, rebuilt from its manifest (no data read).
    model: the Flax module.
    params: its float32 parameters from the checkpoint.
    config: the run's config (a locked ConfigDict).
    step: the checkpoint's step.
    workdir: the run directory.
  """

  family: Any
  model: nn.Module
  params: Any
  config: ml_collections.ConfigDict
  step: int
  workdir: str

  family_class: ClassVar[type]

  @staticmethod
  def restore_facts(family: Any, facts: dict[str, Any]) -> None:
    """Sets on `family` what its `build` reads of the data, from the manifest's facts."""
    raise NotImplementedError

  @staticmethod
  def inference_params(state: Any) -> Any:
    """The parameters this family predicts with, out of a restored train state."""
    return state.params


def _image_facts(facts: dict[str, Any], config: Any) -> image_classification.ImageDataset:
  """An empty ImageDataset that says what the trained one held: classes, size, name."""
  k = facts['num_classes']
  # Manifests written before class names were recorded: the class indices.
  names = tuple(facts.get('class_names') or map(str, range(k)))
  s, c = config.image_size, config.image_channels
  return image_classification.ImageDataset(
    np.zeros((0, s, s, c), np.uint8),
    np.zeros((0,), np.int32),
    num_classes=k,
    class_names=names,
    name=facts.get('name', ''),
    version=facts.get('version', ''),
  )


@dataclasses.dataclass
class LoadedClassifier(LoadedRun):
  """A CNN classifier run: `classify` uint8 images."""

  family_class: ClassVar[type] = cnn.CNNClassifier

  @staticmethod
  def restore_facts(family: Any, facts: dict[str, Any]) -> None:
    family.train_set = _image_facts(facts, family.config)

  @property
  def class_names(self) -> tuple[str, ...]:
    """The name of each class index."""
    return self.family.train_set.class_names

  @functools.cached_property
  def _probabilities(self) -> Callable[[np.ndarray], jax.Array]:
    preprocessing = cnn.preprocessing(self.config, train=False)

    def fn(images_u8):
      x = augment.preprocess(images_u8, preprocessing)
      return jax.nn.softmax(self.model.apply({'params': self.params}, x, train=False))

    return jax.jit(fn)

  def classify(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Classifies images as the run's evaluation did (normalised, not augmented).

    Args:
      images: uint8 (N, H, W, C) at the run's image_size, with C 1 or the run's
        image_channels.
      batch_size: images per compiled call (the last batch is padded).

    Returns:
      (labels int32 (N,), probabilities float32 (N, K)); `class_names[label]`
      names a label.

    Raises:
      UserInputError: for images of another dtype or shape.
    """
    images = np.asarray(images)
    s, c = self.config.image_size, self.config.image_channels
    shapes = {(s, s, 1), (s, s, c)}  # Grey images are repeated to the model's channels.
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] not in shapes:
      channels = '1' if c == 1 else f'1 or {c}'
      raise UserInputError(
        f'classify takes uint8 images of shape (N, {s}, {s}, {channels}), got '
        f'{images.dtype} {images.shape}'
      )
    out = []
    for i in range(0, len(images), batch_size):
      chunk = images[i : i + batch_size]
      padding = np.zeros((batch_size - len(chunk),) + chunk.shape[1:], np.uint8)
      padded = np.concatenate([chunk, padding])
      out.append(np.asarray(self._probabilities(padded))[: len(chunk)])
    probabilities = np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)
    return probabilities.argmax(-1).astype(np.int32), probabilities


@dataclasses.dataclass
class LoadedLanguageModel(LoadedRun):
  """A character language-model run: `continue_text` after a prompt."""

  family_class: ClassVar[type] = lm.CharLanguageModel

  @staticmethod
  def restore_facts(family: Any, facts: dict[str, Any]) -> None:
    family.vocab = tokenizers.CharTokenizer(facts['chars'])

  def continue_text(
    self,
    prompt: str,
    num_chars: int,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    rng: Rng = 0,
  ) -> str:
    """The prompt followed by `num_chars` sampled characters.

    Args:
      prompt: a non-empty string (characters the run never saw read as unknown).
      num_chars: characters to sample, >= 1.
      temperature: softmax temperature, <= 0 for greedy (None: the run's
        `sample.temperature`).
      top_k: sample among the k likeliest characters, 0 for all (None: the run's
        `sample.top_k`).
      rng: a PRNG key or an int seed.

    Raises:
      UserInputError: for an empty prompt or num_chars < 1.
    """
    if not prompt or num_chars < 1:
      raise UserInputError(
        f'continue_text needs a non-empty prompt and num_chars >= 1, got {prompt!r} and {num_chars}'
      )
    s = self.config.sample
    return language_model.complete_prompts(
      self.model,
      self.params,
      self.family.vocab,
      [prompt],
      _key(rng),
      length=num_chars,
      temperature=float(s.temperature if temperature is None else temperature),
      top_k=int(s.top_k if top_k is None else top_k),
    )[0]


@dataclasses.dataclass
class LoadedSeq2Seq(LoadedRun):
  """A seq2seq transformer run: `translate` source strings."""

  family_class: ClassVar[type] = seq2seq.Seq2Seq
  _decoders: dict[tuple[int, float], Callable] = dataclasses.field(
    default_factory=dict, init=False, repr=False
  )

  @staticmethod
  def restore_facts(family: Any, facts: dict[str, Any]) -> None:
    c = family.config
    if 'tokenizer' in facts:
      vocab = tokenizers.from_record(facts['tokenizer'])
    elif c.task == 'translate':  # Manifests written before tokenizers were recorded.
      vocab = tokenizers.ByteTokenizer()
    else:
      vocab = seq2seq_tasks.TaskConfig(
        name=c.task, num_letters=c.generated.num_letters, num_digits=c.generated.num_digits
      ).vocab()
    family.train_set = seq2seq_tasks.Seq2SeqDataset(
      facts.get('name', c.task),
      np.zeros((0, facts['max_input_length']), np.int32),
      np.zeros((0, facts['max_target_length']), np.int32),
      vocab,
    )

  @property
  def vocab(self) -> tokenizers.Tokenizer:
    """The tokenizer of sources and targets."""
    return self.family.train_set.vocab

  def _decoder(self, beam_size: int, alpha: float) -> Callable:
    """The compiled decoder of a setting, made on its first use."""
    if (beam_size, alpha) not in self._decoders:
      model = cast(transformer.Transformer, self.model)  # Built by the family.
      decode = functools.partial(
        decoding.decode_transformer, model, beam_size=beam_size, alpha=alpha
      )
      self._decoders[beam_size, alpha] = jax.jit(decode)
    return self._decoders[beam_size, alpha]

  def translate(
    self, sources: Sequence[str], *, beam_size: int | None = None, alpha: float | None = None
  ) -> list[str]:
    """Decodes each source as the run's report did.

    Args:
      sources: strings of at most the run's `max_input_length` tokens.
      beam_size: 0 decodes greedily, K >= 1 by beam search with K beams (None: the
        run's `beam_size`).
      alpha: the beam search's length-penalty exponent (None: the run's
        `length_penalty`).

    Returns:
      the decoded target of each source.

    Raises:
      UserInputError: for a source too long or (for character vocabularies) with a
        character outside the vocabulary, or a negative beam_size.
    """
    beam_size = self.config.beam_size if beam_size is None else beam_size
    alpha = self.config.length_penalty if alpha is None else alpha
    if beam_size < 0:
      raise UserInputError(f'beam_size must be >= 0 (0: greedy), got {beam_size}')
    max_in = self.model.config.max_input_length
    inputs = np.full((len(sources), max_in), tokenizers.PAD_ID, np.int32)
    for n, source in enumerate(sources):
      ids = self.vocab.encode(source)
      if len(ids) > max_in:
        raise UserInputError(
          f'source {source!r} has {len(ids)} tokens; the model reads at most {max_in}'
        )
      inputs[n, : len(ids)] = ids
    if not len(sources):
      return []
    out = self._decoder(int(beam_size), float(alpha))(self.params, inputs)
    return [self.vocab.decode(row) for row in np.asarray(out)]


@dataclasses.dataclass
class LoadedDDPM(LoadedRun):
  """A prompt-conditioned DDPM run: `sample` images for prompts."""

  family_class: ClassVar[type] = ddpm.PromptDDPM

  @staticmethod
  def restore_facts(family: Any, facts: dict[str, Any]) -> None:
    c, p = family.config, family.config.prompts
    class_names = _image_facts(facts, c).class_names
    names = prompt_grammar.class_names(c.dataset, class_names, p.numerals)
    family.grammar = prompt_grammar.PromptGrammar(names, tuple(p.templates), tuple(p.attributes))
    family.tokenizer = tokenizers.WordTokenizer(tuple(facts['prompt_vocabulary']))
    # `build` reads the prompt table's shape only.
    family.table = np.zeros((1, family.config.text.max_length), np.int32)

  @staticmethod
  def inference_params(state: Any) -> Any:
    return optimizers.ema_params(state.opt_state)

  def unknown_words(self, prompts: Sequence[str]) -> list[str]:
    """The words of `prompts` the model never trained on (they read as unknown)."""
    return prompt_grammar.unknown_words(self.family.tokenizer, prompts)

  def _tokens(self, prompts: Sequence[str]) -> np.ndarray:
    if not len(prompts):
      raise UserInputError('give at least one prompt')
    try:
      return self.family.tokenizer.encode_batch(list(prompts), self.config.text.max_length)
    except ValueError as e:
      raise UserInputError(str(e)) from None

  def sample(self, prompts: Sequence[str], rng: Rng = 0) -> np.ndarray:
    """One image per prompt, with the run's sampler, steps and guidance scale.

    Args:
      prompts: free text (at most text.max_length - 1 words each).
      rng: a PRNG key or an int seed.

    Returns:
      uint8 (len(prompts), H, W, C) images.

    Raises:
      UserInputError: for no prompt, or a prompt with no or too many words.
    """
    return self.family.sampler(self.params, self._tokens(prompts), _key(rng))

  def sample_grid(self, prompts: Sequence[str], per_prompt: int, rng: Rng = 0) -> bytes:
    """A PNG with a row of `per_prompt` samples per prompt (as the run's grids).

    Raises:
      UserInputError: as `sample`, or for per_prompt < 1.
    """
    if per_prompt < 1:
      raise UserInputError(f'need at least one sample per prompt, got {per_prompt}')
    return self.family.sampler.grid(self.params, self._tokens(prompts), per_prompt, _key(rng))


LOADERS: dict[str, type[LoadedRun]] = {
  'cnn': LoadedClassifier,
  'lm': LoadedLanguageModel,
  'seq2seq': LoadedSeq2Seq,
  'ddpm': LoadedDDPM,
}


def _newest_manifest(workdir: str) -> dict[str, Any]:
  """The manifest of the run's latest start (a resumed run writes one per resume)."""
  root = files.as_path(workdir)
  if not (root / 'manifest.json').exists():
    raise UserInputError(
      f'workdir {workdir!r} holds no training run (no manifest.json): give the --workdir '
      'a training run wrote'
    )
  resumed = sorted(p.name for p in root.glob('manifest.resumed-*.json'))
  return files.read_json(files.join(workdir, resumed[-1] if resumed else 'manifest.json'))


def _abstract_state(model: trainer.Model, config: Any) -> Any:
  """The train state's shapes, dtypes and (first local device's) placement."""
  section = config.optimizer
  # The learning-rate schedule is not part of the state: any valid length restores it.
  any_length = int(section.get('warmup_steps', 0)) + 1
  tx = model.optimizer(optimizers.make_optimizer(settings.optimizer_config(section, any_length)))
  shapes = state_lib.abstract_train_state(model.init_params, model.module.apply, tx)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), shapes)


def _restore(workdir: str, like: Any, step: int | None, log) -> tuple[int, Any]:
  """(step, state) of the checkpoint at `step`, or of the newest one that reads back."""
  checkpoints = files.as_path(workdir) / 'checkpoints'
  if not checkpoints.is_dir() or not any(p.name.isdigit() for p in checkpoints.iterdir()):
    raise UserInputError(f'workdir {workdir!r} holds no checkpoint yet')
  checkpointer = checkpoint_lib.Checkpointer(workdir)
  try:
    if step is None:
      found, state = checkpointer.restore_latest(like, log)
    elif step not in (steps := checkpointer.all_steps()):
      raise UserInputError(f'workdir {workdir!r} has no checkpoint at step {step}; it has {steps}')
    else:
      found, state = step, checkpointer.restore(step, like)
  # Orbax raises many kinds of errors for a checkpoint that does not fit `like`.
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, UserInputError):
      raise
    first = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    raise UserInputError(
      f'the checkpoint in {workdir!r} does not fit the model its manifest describes: {first}'
    ) from None
  finally:
    checkpointer.close()
  if found is None:
    raise UserInputError(f'workdir {workdir!r} holds no complete checkpoint')
  return found, state


def load_run(
  workdir: str, step: int | None = None, *, family: str | None = None, log=print
) -> LoadedRun:
  """Reads a training run back: its config, model and checkpointed parameters.

  No training data is read: the facts the model needs of it (class names,
  vocabulary, sequence lengths) come from the run's manifest.

  Args:
    workdir: the run directory the trainer wrote (a local path or a URL).
    step: the checkpoint to restore (None: the newest that reads back).
    family: the family the caller expects ('cnn', 'lm', 'seq2seq', 'ddpm'); a run of
      another raises (None: any).
    log: where a skipped unreadable checkpoint is reported.

  Returns:
    a `LoadedClassifier`, `LoadedLanguageModel`, `LoadedSeq2Seq` or `LoadedDDPM`
    (after the run's family), holding `family`, `model`, `params` (the DDPM's
    parameter average), `config` and `step`.

  Raises:
    UserInputError: for a workdir without a run or a checkpoint, an unknown step,
      a run of another family than `family`, or a checkpoint that does not fit.
  """
  try:
    path = files.absolute(workdir)
  except KeyError:  # epath knows no file system for this URL scheme.
    raise UserInputError(f'workdir {workdir!r}: unsupported URL scheme') from None
  manifest = _newest_manifest(path)
  name = manifest.get('experiment')
  if name not in LOADERS:
    raise UserInputError(
      f'workdir {workdir!r} holds a run of {name!r}, which cannot be loaded: use one of '
      f'{sorted(LOADERS)}'
    )
  if family is not None and name != family:
    raise UserInputError(f'workdir {workdir!r} holds a {name!r} run, not a {family!r} run')
  loader = LOADERS[name]
  config = ml_collections.ConfigDict(manifest['config'])
  config.lock()
  built = loader.family_class(config)
  facts = manifest.get('data', {})
  loader.restore_facts(built, facts)
  model = built.build(trainer.TrainData({}, 0, facts=facts))
  found, state = _restore(path, _abstract_state(model, config), step, log)
  return loader(built, model.module, loader.inference_params(state), config, int(found), path)


def write_sample_grid(
  workdir: str,
  prompts: Sequence[str],
  output: str,
  *,
  per_prompt: int,
  step: int | None = None,
  seed: int = 0,
  log=print,
) -> str:
  """Loads a DDPM run and writes a PNG of `per_prompt` samples per prompt (a row each).

  Args:
    workdir: the DDPM's run directory.
    prompts: free-text prompts; words the model never trained on are logged.
    output: the PNG's path (a local path or a URL).
    per_prompt: samples per prompt, >= 1.
    step: the checkpoint (None: the newest).
    seed: the sampling seed.
    log: where the unknown words and the path written are reported.

  Returns:
    the path written.

  Raises:
    UserInputError: as `load_run` and `LoadedDDPM.sample_grid`.
  """
  loaded = load_run(workdir, step, family='ddpm', log=log)
  assert isinstance(loaded, LoadedDDPM)  # The family was checked by `load_run`.
  if unknown := loaded.unknown_words(prompts):
    log(f'Words the model never trained on (read as unknown): {unknown}')
  path = files.write_bytes(output, loaded.sample_grid(prompts, per_prompt, seed))
  log(f'Saved {len(prompts)} x {per_prompt} samples of step {loaded.step} to {path}')
  return path
