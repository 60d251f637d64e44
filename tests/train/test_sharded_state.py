"""The train state sharded from its first byte: under FSDP on 8 forced CPU devices the
trainer initialises and restores each large array straight into its shards."""

import pytest

from tests import helpers
from tests.workers import fsdp_state_worker as worker

# Its session-scoped run happens once: all its tests on one pytest-xdist worker
# (scripts/test.sh uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('test_sharded_state')

DEVICES = 8


@pytest.fixture(scope='session')
def fsdp_state(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('w'))
  return helpers.run_worker('tests.workers.fsdp_state_worker', workdir, devices=DEVICES)


def _assert_each_device_holds_its_share(arrays: dict[str, dict]) -> None:
  large = {name: a for name, a in arrays.items() if a['size'] >= worker.MIN_SIZE}
  assert len(large) >= 9, sorted(arrays)  # 3 kernels, each with Adam's mu and nu.
  for name, a in large.items():
    assert len(a['shards']) == DEVICES, name
    assert set(a['shards'].values()) == {a['size'] // DEVICES}, (name, a)


@pytest.mark.parametrize('when', ['init', 'restored'])
def test_no_device_holds_more_than_its_share(fsdp_state, when):
  _assert_each_device_holds_its_share(fsdp_state[when])
  if when == 'restored':
    assert fsdp_state['restored_step'] == 2  # The trained checkpoint, not a fresh init.


def test_init_program_writes_an_eighth_per_device(fsdp_state):
  p = fsdp_state['program']
  assert p['sharded_total'] > 0.95 * p['total']  # The model is its large arrays.
  expected = p['sharded_total'] / DEVICES + (p['total'] - p['sharded_total'])
  assert p['output_per_device'] <= 1.01 * expected, p
  assert p['output_per_device'] < 0.15 * p['total'], p  # About total / 8.
