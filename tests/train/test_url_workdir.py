"""A gs:// workdir end to end, without network: every run file goes through epath.

`fake_gcs` replaces epath's file-system back ends by the local one with gs:// paths
mapped into a temporary directory, and records every gs:// path each back-end
call receives; so a file that lands in the fake bucket went through epath with its
URL intact, and a path mangled into a local one (`<cwd>/gs:/...`) would not land.
"""

import json
import os

from etils import epath
import numpy as np
import pytest

from research.errors import UserInputError
from research.tasks import classification_report
from research.train import checkpoint as checkpoint_lib
from research.train import files
from research.train import manifest
from research.train import metrics as metrics_lib
from research.train import workdir as workdir_lib

URL = 'gs://fake-bucket/runs/cnn'


class FakeGcs:
  """Where the fake bucket lives locally, and the gs:// paths opened, by mode."""

  def __init__(self, root):
    self.root = root
    self.opened = []  # (url, mode)

  def local(self, path) -> str:
    path = os.fspath(path)
    return str(self.root / path[len('gs://') :]) if path.startswith('gs://') else path

  def at(self, url: str):
    """The local file of `url` (which must be in the bucket)."""
    assert url.startswith('gs://'), url
    return self.root / url[len('gs://') :]


@pytest.fixture
def fake_gcs(tmp_path, monkeypatch):
  monkeypatch.setenv('EPATH_USE_TF', 'false')  # Else gs:// goes to tf.io.gfile.
  # epath caches whether TensorFlow is there on first use: forget an earlier answer.
  from etils.epath import gpath  # pylint: disable=g-import-not-at-top

  gpath._is_tf_installed.cache_clear()  # pylint: disable=protected-access
  # A cwd of its own: nothing may land there (no '<cwd>/gs:/...').
  cwd = tmp_path / 'cwd'
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  fake = FakeGcs(tmp_path / 'bucket_root')

  def one(original, path, *args, **kwargs):
    return original(fake.local(path), *args, **kwargs)

  def two(original, path, dst, *args, **kwargs):
    return original(fake.local(path), fake.local(dst), *args, **kwargs)

  def opener(original, path, mode):
    if os.fspath(path).startswith('gs://'):
      fake.opened.append((os.fspath(path), mode))
    return original(fake.local(path), mode)

  with epath.testing.mock_epath(
    open=opener,
    exists=one,
    isdir=one,
    listdir=one,
    makedirs=one,
    mkdir=one,
    remove=one,
    rmtree=one,
    stat=one,
    rename=two,
    replace=two,
    copy=two,
  ):
    yield fake
  gpath._is_tf_installed.cache_clear()  # pylint: disable=protected-access
  assert not os.listdir(cwd)


def test_files_keep_urls_and_make_local_paths_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert files.absolute(URL) == URL
  assert files.absolute(URL + '/') == URL
  assert files.absolute('runs/a') == str(tmp_path / 'runs' / 'a')
  assert files.absolute('~/a') == os.path.join(os.path.expanduser('~'), 'a')
  assert files.join(URL, 'tensorboard') == URL + '/tensorboard'
  assert files.join('runs', 'a', 'b.png') == os.path.join('runs', 'a', 'b.png')
  assert files.is_url(URL) and not files.is_url('/tmp/gs:/x')


def test_prepare_workdir_returns_the_url_unmangled(fake_gcs):
  assert workdir_lib.prepare_workdir(URL, resume=False) == URL
  made = fake_gcs.at(URL)
  assert made.is_dir() and not os.listdir(made)  # The write test cleaned up.
  assert fake_gcs.opened and all(u.startswith(URL + '/.write-test-') for u, _ in fake_gcs.opened)


def test_prepare_workdir_refuses_a_url_with_checkpoints_unless_resuming(fake_gcs):
  (fake_gcs.at(URL) / 'checkpoints' / '5').mkdir(parents=True)
  with pytest.raises(UserInputError, match='already holds checkpoints'):
    workdir_lib.prepare_workdir(URL, resume=False)
  assert workdir_lib.prepare_workdir(URL, resume=True) == URL


def test_prepare_workdir_rejects_unknown_schemes_and_local_paths_stay_absolute(
  tmp_path, monkeypatch
):
  with pytest.raises(UserInputError, match="unsupported URL scheme 'nope'"):
    workdir_lib.prepare_workdir('nope://bucket/run', resume=False)
  monkeypatch.chdir(tmp_path)
  assert workdir_lib.prepare_workdir('runs/x', resume=False) == str(tmp_path / 'runs/x')


def test_manifest_lands_in_the_url_workdir_and_is_read_back(fake_gcs):
  first = manifest.write_manifest(
    URL, 'cnn', {'lr': 0.1}, {'name': 'mnist'}, {'parameters': {'total': 7}}
  )
  assert first == URL + '/manifest.json'
  assert json.loads(fake_gcs.at(first).read_text())['config'] == {'lr': 0.1}
  again = manifest.write_manifest(URL, 'cnn', {'lr': 0.1}, {'name': 'mnist'})
  assert again.startswith(URL + '/manifest.resumed-') and fake_gcs.at(again).exists()
  manifest.check_resumable(URL, 'cnn', {'total': 7})
  with pytest.raises(UserInputError, match="belongs to experiment 'cnn'"):
    manifest.check_resumable(URL, 'lm', {'total': 7})


def test_metrics_jsonl_and_tensorboard_land_in_the_url_workdir(fake_gcs, monkeypatch):
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top

  # MetricWriter registers its epath writer for gs://: undo it after the test.
  monkeypatch.setattr(
    record_writer, 'REGISTERED_FACTORIES', dict(record_writer.REGISTERED_FACTORIES)
  )
  writer = metrics_lib.MetricWriter(URL)
  writer.write(3, 'train', {'loss': 0.5})
  writer.close()
  lines = fake_gcs.at(URL + '/metrics.jsonl').read_text().splitlines()
  assert [json.loads(line) for line in lines] == [{'step': 3, 'split': 'train', 'loss': 0.5}]
  events = list(fake_gcs.at(URL + '/tensorboard').iterdir())
  assert len(events) == 1 and events[0].name.startswith('events.out.tfevents.')
  assert events[0].stat().st_size > 0
  assert (URL + '/metrics.jsonl', 'a') in fake_gcs.opened
  assert (f'{URL}/tensorboard/{events[0].name}', 'wb') in fake_gcs.opened


def test_checkpoints_directory_is_the_url_handed_to_orbax(monkeypatch):
  handed = []

  class RecordingManager:
    def __init__(self, directory, options=None):
      del options
      handed.append(directory)

  monkeypatch.setattr(checkpoint_lib.ocp, 'CheckpointManager', RecordingManager)
  checkpointer = checkpoint_lib.Checkpointer(URL)
  assert handed == [checkpointer.directory]
  assert isinstance(handed[0], epath.Path)
  assert str(handed[0]) == URL + '/checkpoints'


def test_reports_json_and_png_land_in_the_url_workdir(fake_gcs):
  text_url = files.write_text(files.join(URL, 'classification_report.txt'), 'ok\n')
  json_url = files.write_json(files.join(URL, 'final_metrics.json'), {'acc': 0.9})
  png_url = classification_report.save_confusion_matrix_png(
    np.array([[3, 1], [0, 4]]), ['a', 'b'], files.join(URL, 'confusion_matrix.png')
  )
  sample_url = files.write_bytes(files.join(URL, 'samples', 'grid.png'), b'\x89PNG')
  assert fake_gcs.at(text_url).read_text() == 'ok\n'
  assert files.read_json(json_url) == {'acc': 0.9}
  assert fake_gcs.at(png_url).read_bytes().startswith(b'\x89PNG\r\n\x1a\n')
  assert fake_gcs.at(sample_url).read_bytes() == b'\x89PNG'
  assert png_url == URL + '/confusion_matrix.png'
  assert sorted(u for u, _ in fake_gcs.opened) == sorted(
    [text_url, json_url, json_url, png_url, sample_url]
  )


def test_the_workdir_lock_works_on_a_url(fake_gcs):
  workdir = workdir_lib.prepare_workdir(URL, resume=False)
  with workdir_lib.WorkdirLock(workdir, heartbeat_seconds=0.05):
    owner = json.loads(fake_gcs.at(URL + '/run.lock').read_text())
    assert owner['pid'] == os.getpid()
    with pytest.raises(UserInputError, match='in use by a live run'):
      with workdir_lib.WorkdirLock(workdir):
        pass
  assert not fake_gcs.at(URL + '/run.lock').exists()
