"""Run settings read from an experiment's config: typed, validated once, errors naming the field."""

import dataclasses

import jax.numpy as jnp
import ml_collections
import pytest

from experiments import shared_config
from research.errors import UserInputError
from research.train import parallel
from research.train import settings


def _config(**fields) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  shared_config.add_training_fields(c, **fields)
  c.dataset = 'ignored'  # Fields other than the shared ones are not settings.
  return c


def test_train_settings_read_the_shared_fields():
  s = settings.train_settings(_config(batch_size=8, driver='pmap', steps_per_dispatch=4))
  assert (s.batch_size, s.driver, s.steps_per_dispatch) == (8, 'pmap', 4)


def test_every_driver_the_settings_accept_is_one_the_drivers_build():
  for name in parallel.DRIVERS:
    assert settings.train_settings(_config(driver=name)).driver == name
  with pytest.raises(UserInputError, match=r"unknown driver 'pjit': use one of \['jit', 'pmap'\]"):
    settings.train_settings(_config(driver='pjit'))


@pytest.mark.parametrize(
  'fields, message',
  [
    (dict(num_epochs=0, num_steps=0), 'num_epochs = 0 and num_steps >= 1'),
    (dict(batch_size=0), 'batch_size must be >= 1'),
    (dict(log_every_steps=-1), 'log_every_steps must be >= 0'),
    (dict(fsdp=True, driver='pmap'), 'fsdp=True needs driver=jit'),
  ],
)
def test_bad_settings_name_the_field(fields, message):
  with pytest.raises(UserInputError, match=message):
    settings.train_settings(_config(**fields))


def test_optimizer_config_fills_the_run_length_and_rejects_unknown_fields():
  section = shared_config.optimizer_section(learning_rate=0.5)
  assert settings.optimizer_config(section, total_steps=40).total_steps == 40
  assert settings.optimizer_config(dict(section, total_steps=7), total_steps=40).total_steps == 7
  with pytest.raises(UserInputError, match=r"unknown optimizer settings \['lr'\]"):
    settings.optimizer_config(dict(section, lr=0.1), total_steps=40)


@dataclasses.dataclass(frozen=True)
class _ModelConfig:
  widths: tuple[int, ...] = (4,)
  dtype: object = jnp.float32

  def __post_init__(self):
    if not self.widths:
      raise ValueError('widths must not be empty')


def test_model_settings_turn_names_and_lists_into_typed_fields():
  cfg = settings.model_settings(_ModelConfig, {'dtype': 'bfloat16'}, widths=[2, 3])
  assert cfg == _ModelConfig(widths=(2, 3), dtype=jnp.bfloat16)
  with pytest.raises(UserInputError, match="unknown dtype 'float16'"):
    settings.model_settings(_ModelConfig, {'dtype': 'float16'})
  with pytest.raises(UserInputError, match='model: widths must not be empty'):
    settings.model_settings(_ModelConfig, {'widths': []})
  with pytest.raises(UserInputError, match=r"unknown model settings \['depth'\]"):
    settings.model_settings(_ModelConfig, {'depth': 2})
