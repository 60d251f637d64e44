"""The 'device' and 'stream' input pipelines: the same examples in the same order,
every example once per epoch across processes, 'auto' and bad values."""

import dataclasses
import json
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import shared_config
from research.data import shard
from research.errors import UserInputError
from research.train import batch_plans
from research.train import input_pipeline
from research.train import parallel
from research.train import settings as settings_lib
from research.train import step_loop
from research.train import trainer

NUM = 22  # Training examples: the last batch of an epoch is padded.


def _config(pipeline: str, sampling_steps: int = 0) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  shared_config.add_training_fields(
    c,
    num_epochs=0 if sampling_steps else 3,
    num_steps=sampling_steps,
    batch_size=4,
    log_every_steps=0,
    steps_per_dispatch=3,
    progress=False,
    microbatches=1,
    input_pipeline=pipeline,
  )
  c.optimizer = shared_config.optimizer_section(learning_rate=0.1, weight_decay=0.0)
  return c


def _window_gather(data, idx_B):
  """A gather that is not `take_examples` (as the LM's): pairs of neighbours."""
  return {'x': jnp.take(data['x'], idx_B, axis=0) + jnp.take(data['x'], idx_B + 1, axis=0)}


@dataclasses.dataclass
class _Line:
  """A Dense layer fitted to a line; each example's weight marks it, so any change of
  the examples or their order changes the parameters."""

  config: Any
  sampling: str = 'epochs'
  gather_fn: Any = parallel.take_examples
  name: str = 'line'
  eval_split: str = 'test'

  def load_data(self) -> trainer.TrainData:
    x = np.random.default_rng(0).normal(size=(NUM + 1, 2)).astype(np.float32)
    arrays = {'x': x} if self.gather_fn is _window_gather else {'x': x[:NUM]}
    return trainer.TrainData(arrays, NUM, self.sampling)

  def build(self, data: trainer.TrainData) -> trainer.Model:
    module = nn.Dense(1)

    def loss_fn(params, batch, rng, train):
      del rng, train
      y_B = batch['x'] @ jnp.array([2.0, -1.0]) + 0.5
      err_B = (module.apply({'params': params}, batch['x'])[:, 0] - y_B) ** 2
      weight_B = 1.0 + jnp.abs(batch['x'][:, 0])
      return {'loss': ((err_B * weight_B * batch['mask']).sum(), batch['mask'].sum())}, {}

    init = lambda rng: module.init(rng, jnp.zeros((1, 2)))['params']
    return trainer.Model(module, init, loss_fn, self.gather_fn)

  def evaluate(self, run, state, step) -> dict[str, float]:
    return {}

  def report(self, run, state) -> dict[str, Any]:
    self.params = jax.device_get(run.driver.host_state(state).params)
    return {}


def _params(pipeline: str, seed: int = 0, **family_kw):
  config = _config(pipeline, 7 if family_kw.get('sampling') == 'windows' else 0)
  config.seed = seed
  logs = []
  run, state = trainer.train_in_memory(_Line(config, **family_kw), log=logs.append)
  assert run.input_pipeline == pipeline, logs
  return jax.device_get(run.driver.host_state(state).params)


@pytest.mark.parametrize(
  'family_kw',
  [{}, {'sampling': 'windows'}, {'gather_fn': _window_gather}],
  ids=['epochs', 'windows', 'own_gather'],
)
def test_stream_trains_on_the_same_examples_in_the_same_order(family_kw):
  device = _params('device', **family_kw)
  chex.assert_trees_all_close(_params('stream', **family_kw), device, rtol=1e-6, atol=1e-6)
  # Another seed's examples give other parameters: the comparison can tell them apart.
  with pytest.raises(AssertionError):
    chex.assert_trees_all_close(_params('stream', 1, **family_kw), device, rtol=1e-6, atol=1e-6)


def test_the_manifest_and_the_log_record_the_resolved_pipeline(tmp_path):
  logs = []
  trainer.train_and_evaluate(_Line(_config('auto')), str(tmp_path / 'run'), log=logs.append)
  manifest = json.loads((tmp_path / 'run' / 'manifest.json').read_text())
  assert manifest['input_pipeline'] == 'device'  # CPU: host memory is plenty.
  assert any(line.startswith('Input pipeline: device (auto') for line in logs), logs


def _one_epoch_of_stream(ids, process, processes, local_batch):
  """The example ids one process's stream trains on in epoch 0 (padding dropped)."""
  share = {'id': ids[shard.process_slice(len(ids), process, processes)]}
  source = batch_plans.IndexSource(len(share['id']), local_batch, seed=3, process=process)
  chunks = step_loop.Boundaries((source.steps_per_epoch,), 2 * source.steps_per_epoch)
  read = []
  for (step, num), batch in input_pipeline.host_batches(
    share, parallel.take_examples, source, chunks.chunks(0, 2)
  ):
    if step >= source.steps_per_epoch:
      break
    assert batch['id'].shape == (num, local_batch)
    read.extend(batch['id'][batch['mask'] > 0].tolist())
  return read


def test_two_process_stream_reads_every_example_once_per_epoch():
  ids = np.arange(26, dtype=np.int32) + 100
  first = _one_epoch_of_stream(ids, 0, 2, local_batch=4)
  second = _one_epoch_of_stream(ids, 1, 2, local_batch=4)
  assert sorted(first + second) == ids.tolist()
  assert not set(first) & set(second)
  assert first != sorted(first)  # Shuffled.


def test_auto_streams_a_split_too_large_for_the_device(monkeypatch):
  driver = parallel.make_driver('jit', lambda *a: None)
  arrays = {'x': np.zeros((100, 10), np.float32)}  # 4,000 bytes.
  assert input_pipeline.resolve('auto', arrays, driver)[0] == 'device'  # CPU: no limit.
  monkeypatch.setattr(input_pipeline, '_device_limit', lambda devices: 40_000)
  assert input_pipeline.resolve('auto', arrays, driver)[0] == 'device'  # 10%.
  monkeypatch.setattr(input_pipeline, '_device_limit', lambda devices: 10_000)
  assert input_pipeline.resolve('auto', arrays, driver) == (
    'stream',
    'auto: its share of the split takes 40.0% of a device',
  )
  # Over 4 local devices each holds a quarter of the split: 10%.
  monkeypatch.setattr(driver, 'devices', jax.devices()[:1] * 4)
  assert input_pipeline.resolve('auto', arrays, driver)[0] == 'device'
  assert input_pipeline.resolve('stream', arrays, driver)[0] == 'stream'


def test_a_bad_pipeline_is_one_line():
  with pytest.raises(UserInputError) as e:
    settings_lib.TrainSettings(input_pipeline='disk')
  assert str(e.value) == "unknown input_pipeline 'disk': use one of ['device', 'stream', 'auto']"
  with pytest.raises(UserInputError, match='^input_pipeline=stream needs driver=jit$'):
    settings_lib.TrainSettings(input_pipeline='stream', driver='pmap')
