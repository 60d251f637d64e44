"""Profiles of train steps on request (`profile_steps`)."""

import gzip
import json

import pytest

from research.errors import UserInputError
from research.train import profiling
from research.train import settings
from research.train import step_loop
from research.train import trainer
from tests.train import tiny_mlp

QUIET = lambda _: None


def _annotated_steps(workdir) -> list[int]:
  """The step numbers of the train-step annotations in the run's trace."""
  (trace,) = (workdir / 'profile').glob('plugins/profile/*/*.trace.json.gz')
  events = json.loads(gzip.decompress(trace.read_bytes()))['traceEvents']
  return sorted(int(e['args']['step_num']) for e in events if 'step_num' in e.get('args', {}))


def test_a_profile_covers_exactly_the_steps_asked_for(tmp_path):
  # Chunks of 3 steps, epochs of 4: without the profile's boundaries a chunk would
  # start at step 3, not at 2.
  config = tiny_mlp.config(log_every_steps=0, profile_steps='2:4')
  trainer.train_and_evaluate(tiny_mlp.Family(config), str(tmp_path), log=QUIET)
  assert list((tmp_path / 'profile').glob('plugins/profile/*/*.xplane.pb'))
  assert _annotated_steps(tmp_path) == [2]  # One chunk: steps 2 and 3.


def test_no_profile_unless_asked(tmp_path):
  trainer.train_and_evaluate(tiny_mlp.Family(tiny_mlp.config()), str(tmp_path), log=QUIET)
  assert not (tmp_path / 'profile').exists()


def test_the_loop_puts_chunk_boundaries_at_the_profile_s_ends():
  boundaries = step_loop.Boundaries((4,), 8, at=(2, 4))
  assert list(boundaries.chunks(0, 3)) == [(0, 2), (2, 2), (4, 3), (7, 1)]
  assert profiling.parse_steps('2:4') == (2, 4) and profiling.parse_steps('') is None


@pytest.mark.parametrize('value', ['abc', '4:2', '-1:3', '2:2', '2:', '1:2:3'])
def test_a_malformed_profile_steps_is_rejected_in_one_line(value):
  config = tiny_mlp.config(profile_steps=value)
  with pytest.raises(UserInputError) as e:
    settings.train_settings(config)
  assert str(e.value) == (
    f"profile_steps must be '' (off) or 'START:END' with 0 <= START < END, got {value!r}"
  )
