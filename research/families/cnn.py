"""The seed's CNN classifier as a trainer family: tfds images in, a test report out."""

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp

from research import platform_policy
from research.data import augment
from research.data import fashion_mnist
from research.data import image_classification
from research.data import shard
from research.errors import UserInputError
from research.models import cnn
from research.tasks import classification
from research.tasks import classification_report
from research.train import distributed
from research.train import evaluation
from research.train import files
from research.train import metrics as metrics_lib
from research.train import settings
from research.train import trainer


def preprocessing(config: Any, train: bool) -> augment.ImagePreprocessing:
  """The ImagePreprocessing of the config's `augment` section (no jitter if not train)."""
  a = config.augment
  return augment.ImagePreprocessing(
    mean=tuple(a.mean),
    std=tuple(a.std),
    channels=config.image_channels,
    max_rotation_deg=a.max_rotation_deg if train else 0.0,
    brightness=a.brightness if train else 0.0,
    contrast=a.contrast if train else 0.0,
  )


def load_images(config: Any, split: str, whole: bool = False) -> image_classification.ImageDataset:
  """A split resized to image_size; this process's share unless `whole`; kept in
  `config.data_cache_dir` (if the config has one and it is not '') for later runs."""
  process = (0, 1) if whole else (jax.process_index(), jax.process_count())
  cache_dir = config.get('data_cache_dir', '')
  return image_classification.load_image_classification(
    config.dataset,
    split,
    image_size=config.image_size,
    data_dir=config.data_dir or None,
    process=process,
    cache_dir=os.path.expanduser(cache_dir) if cache_dir else None,
  )


def process_share(dataset: image_classification.ImageDataset) -> image_classification.ImageDataset:
  """This process's contiguous, equal share of a whole split (as `load_images` reads)."""
  part = shard.process_slice(len(dataset))
  return dataclasses.replace(dataset, image=dataset.image[part], label=dataset.label[part])


Images = tuple[image_classification.ImageDataset, image_classification.ImageDataset]


def train_and_test(config: Any, given: Images | None, whole_test: bool = False) -> Images:
  """(train, test): `given` (checked against config.image_size), else the config's
  tfds splits; this process's share, except the whole test split if `whole_test`."""
  if given is None:
    return (
      load_images(config, config.train_split),
      load_images(config, config.test_split, whole=whole_test),
    )
  for d in given:
    if d.image.shape[1:3] != (config.image_size, config.image_size):
      raise UserInputError(
        f'given images are {d.image.shape[1:3]}, not image_size {config.image_size} square'
      )
  return given


def image_facts(
  config: Any, train: image_classification.ImageDataset, test: image_classification.ImageDataset
) -> dict[str, Any]:
  """What the manifest records about an image family's data."""
  return {
    'name': train.name,
    'version': train.version,
    'train_split': config.train_split,
    'test_split': config.test_split,
    'train_examples': len(train),
    'test_examples': len(test),
    'num_classes': train.num_classes,
    'class_names': list(train.class_names),
  }


@dataclasses.dataclass
class CNNClassifier:
  """Trains the seed's CNN on `config.train_split`, reports on `config.test_split`.

  The report: test loss and accuracy (on Fashion-MNIST beside the published CNN
  results, `fashion_mnist.convnet_baselines`), per-class precision/recall/F1, the
  confusion matrix (classification_report.txt, confusion_matrix.png).

  Attributes:
    config: the experiment's ConfigDict.
    datasets: (train, test) already in memory, this process's share of each (e.g.
      another family's data, or synthetic data); None reads the config's splits.
  """

  config: Any
  datasets: Images | None = None
  name: str = 'cnn'
  eval_split: str = 'test'

  def load_data(self) -> trainer.TrainData:
    c = self.config
    if c.image_size < 4 or c.image_size % 4:
      raise UserInputError(
        f'image_size must be a positive multiple of 4 (the CNN pools '
        f'twice by 2), got {c.image_size}'
      )
    self.train_set, self.test_set = train_and_test(c, self.datasets)
    t = self.train_set
    facts = image_facts(c, t, self.test_set) | {'test_split': self.test_set.split}
    return trainer.TrainData(t.arrays(), len(t), facts=facts)

  def build(self, data: trainer.TrainData) -> trainer.Model:
    c = self.config
    per_device_batch = c.batch_size // jax.device_count()
    conv_parts = c.model.get('conv_parts', 0)  # Configs written before the field: 0.
    parts = platform_policy.batch_parts(
      conv_parts, per_device_batch, jax.default_backend(), platform_policy.CONV_PARTS
    )
    module = cnn.CNN(
      settings.model_settings(
        cnn.CNNConfig, c.model, num_classes=self.train_set.num_classes, conv_parts=parts
      )
    )
    shape = (1, c.image_size, c.image_size, c.image_channels)
    init = lambda rng: module.init({'params': rng}, jnp.zeros(shape), train=False)['params']
    # Training augments on device; evaluation only normalises (see the loss's `train`).
    # Automatic parts go to the convolutions, so fc1's matmuls see the whole batch.
    return trainer.Model(
      module,
      init,
      classification.make_loss_fn(module, preprocessing(c, train=True)),
      model_parts=conv_parts == 0,
    )

  def evaluate(self, run: trainer.Run, state: Any, step: int) -> dict[str, float]:
    values, _ = self._test(run, state)
    run.log(f'  test {metrics_lib.format_metrics(values)}')
    return values

  def _test(self, run: trainer.Run, state: Any):
    data = run.placed('test', self.test_set.arrays())
    return evaluation.evaluate(
      run.driver, state, data, len(self.test_set), run.settings.eval_batch_size
    )

  def report(self, run: trainer.Run, state: Any) -> dict[str, Any]:
    values, outputs = self._test(run, state)
    labels = distributed.allgather_rows(self.test_set.label)
    names = self.test_set.class_names
    text, matrix = classification_report.report(labels, outputs['prediction'], names)
    run.log(
      f'Test loss = {values["loss"]:.4f} | test accuracy = '
      f'{100 * values["accuracy"]:.2f}% ({self.test_set.split} split)'
    )
    if self.test_set.name.split(':')[0] in fashion_mnist.NAMES:
      for line in fashion_mnist.comparison_lines(
        values['accuracy'], fashion_mnist.convnet_baselines()
      ):
        run.log(line)
    run.log(text)
    run.log('Confusion matrix (rows: true class, columns: predicted class):')
    run.log(str(matrix))
    txt_path, png_path = run.path('classification_report.txt'), run.path('confusion_matrix.png')
    if txt_path is not None and png_path is not None:
      files.write_text(txt_path, f'{text}\n{matrix}\n')
      png = classification_report.confusion_matrix_png(
        matrix, names, title=f'{self.test_set.name} {self.test_set.split}: confusion matrix'
      )
      run.log(f'Saved {files.write_bytes(png_path, png)}')
      run.image(run.total_steps, 'test/confusion_matrix', png)
    return {
      'test_loss': values['loss'],
      'test_accuracy': values['accuracy'],
      'test_split': self.test_set.split,
      'test_examples': int(matrix.sum()),
      'confusion_matrix': matrix.tolist(),
    }
