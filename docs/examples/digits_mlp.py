r"""Add your own family: an MLP classifier on scikit-learn's 8x8 digits (docs/add_a_family.md).

Run: python docs/examples/digits_mlp.py runs/digits_mlp  (about 98% on 360 held-out digits)
"""

import dataclasses
import functools
import sys
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from sklearn import datasets

from experiments import shared_config
from research import train as train_lib
from research.train import settings


def get_config() -> ml_collections.ConfigDict:
  """The shared training fields, a `model` section and an `optimizer` section."""
  c = ml_collections.ConfigDict()
  shared_config.add_training_fields(c, num_epochs=20, batch_size=64, eval_batch_size=128)
  c.model = ml_collections.ConfigDict({'hidden_dim': 128, 'dropout_rate': 0.1})
  c.optimizer = shared_config.optimizer_section(learning_rate=3e-3, weight_decay=0.0)
  return c


class MLP(nn.Module):
  """pixels float32 (B, F=64) -> logits float32 (B, K); its fields are the model config."""

  hidden_dim: int  # H.
  dropout_rate: float
  num_classes: int  # K.

  @nn.compact
  def __call__(self, x_BxF: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    h_BxH = nn.relu(nn.Dense(self.hidden_dim, name='hidden')(x_BxF))
    h_BxH = nn.Dropout(self.dropout_rate, deterministic=not train)(h_BxH)
    return nn.Dense(self.num_classes, name='logits')(h_BxH)


def loss_fn(module: MLP, params, batch, rng, train):
  """The `research.train.LossFn` (once `module` is bound): batch 'pixels' (B, F), 'label'
  int32 (B,), 'mask' float32 (B,) -> ({name: (sum, count)}, {'prediction': int32 (B,)})."""
  rngs = {'dropout': rng} if train else {}
  logits_BxK = module.apply({'params': params}, batch['pixels'], train=train, rngs=rngs)
  losses_B = optax.softmax_cross_entropy_with_integer_labels(logits_BxK, batch['label'])
  prediction_B = jnp.argmax(logits_BxK, axis=-1).astype(jnp.int32)
  mask_B, count = batch['mask'], batch['mask'].sum()  # Padding examples have mask 0.
  correct = ((prediction_B == batch['label']) * mask_B).sum()
  metrics = {'loss': ((losses_B * mask_B).sum(), count), 'accuracy': (correct, count)}
  return metrics, {'prediction': prediction_B}


@dataclasses.dataclass
class DigitsMLP:
  """Trains the MLP on most of the digits; evaluates on the held-out rest."""

  config: ml_collections.ConfigDict
  name: str = 'digits_mlp'
  eval_split: str = 'test'

  def load_data(self) -> train_lib.TrainData:
    digits = datasets.load_digits()  # Ships with scikit-learn: no download.
    x, y = (digits.data / 16).astype(np.float32), digits.target.astype(np.int32)
    test, kept = np.split(np.random.default_rng(0).permutation(len(y)), [360])  # Held out.
    self.test = {'pixels': x[test], 'label': y[test]}
    facts = {'name': 'sklearn_digits', 'test_examples': len(test)}  # For the manifest.
    return train_lib.TrainData({'pixels': x[kept], 'label': y[kept]}, len(kept), facts=facts)

  def build(self, data: train_lib.TrainData) -> train_lib.Model:
    module = settings.model_settings(MLP, self.config.model, num_classes=10)
    init = lambda rng: module.init({'params': rng}, jnp.zeros((1, 64)), train=False)['params']
    return train_lib.Model(module, init, functools.partial(loss_fn, module))

  def evaluate(self, run: train_lib.Run, state: Any, step: int) -> dict[str, float]:
    data, num = run.placed('test', self.test), len(self.test['label'])  # Placed once.
    values, _ = train_lib.evaluate(run.driver, state, data, num, run.settings.eval_batch_size)
    run.log(f'  step {step}: test loss {values["loss"]:.4f}, accuracy {values["accuracy"]:.2%}')
    return values

  def report(self, run: train_lib.Run, state: Any) -> dict[str, float]:
    return {f'test_{k}': v for k, v in self.evaluate(run, state, run.total_steps).items()}


def main(workdir: str, config: ml_collections.ConfigDict | None = None) -> dict[str, Any]:
  """Trains `DigitsMLP` into `workdir` with the one trainer; returns its final metrics."""
  final = train_lib.train_and_evaluate(DigitsMLP(config or get_config()), workdir)
  print(f'Test accuracy: {final["test_accuracy"]:.2%}')
  return final


if __name__ == '__main__':
  main(sys.argv[1] if len(sys.argv) > 1 else 'runs/digits_mlp')
