"""The workdir lock: a live owner on another host holds it until its heartbeat stops."""

import json
import time

import pytest

from research.errors import UserInputError
from research.train import workdir as workdir_lib


def _lock_of_another_host(tmp_path, heartbeat_age: float) -> None:
  owner = {'host': 'elsewhere', 'pid': 1, 'process_index': 0, 'started': 'x'}
  owner['heartbeat'] = time.time() - heartbeat_age
  (tmp_path / workdir_lib.LOCK_NAME).write_text(json.dumps(owner))


def test_another_host_s_lock_holds_while_its_heartbeat_is_fresh(tmp_path):
  _lock_of_another_host(tmp_path, heartbeat_age=10)
  with pytest.raises(UserInputError, match='in use by a live run .*host elsewhere'):
    with workdir_lib.WorkdirLock(str(tmp_path), stale_seconds=60):
      pass


def test_another_host_s_stale_lock_is_taken_over_and_heartbeats_refresh_ours(tmp_path):
  _lock_of_another_host(tmp_path, heartbeat_age=120)
  lines = []
  with workdir_lib.WorkdirLock(
    str(tmp_path), lines.append, stale_seconds=60, heartbeat_seconds=0.05
  ):
    first = json.loads((tmp_path / workdir_lib.LOCK_NAME).read_text())
    time.sleep(0.3)
    later = json.loads((tmp_path / workdir_lib.LOCK_NAME).read_text())
    assert later['heartbeat'] > first['heartbeat'] and later['host'] != 'elsewhere'
  assert lines and lines[0].startswith('Taking over the lock') and 'host elsewhere' in lines[0]
  assert not (tmp_path / workdir_lib.LOCK_NAME).exists()


def test_processes_other_than_the_primary_take_no_lock(tmp_path):
  _lock_of_another_host(tmp_path, heartbeat_age=10)
  with workdir_lib.WorkdirLock(str(tmp_path), primary=False):
    pass  # Part of the run that holds it.
  assert (tmp_path / workdir_lib.LOCK_NAME).exists()
