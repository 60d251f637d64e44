"""The CNN entry point end to end on a tiny subset, resume, and bad input."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments.cnn.configs import default
from research import families
from research.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(data_dir, epochs=2, conv_parts=1):
  """Seconds-long runs; whole-batch convolutions unless `conv_parts` says otherwise
  (8 parts trace 8 copies of the convolutions: ~1.4 s more per compile)."""
  c = default.get_config()
  c.data_dir = data_dir
  c.train_split = 'train[:96]'
  c.test_split = 'test[:40]'
  c.image_size = 16
  c.num_epochs = epochs
  c.batch_size = 32
  c.eval_batch_size = 32
  c.steps_per_dispatch = 2
  c.model.hidden_dim = 32
  c.model.conv_parts = conv_parts
  c.progress = False
  return c


def tensorboard_events(logdir):
  """{'scalars', 'images', 'hparams': tag/name sets, 'scalar_steps': tag -> steps}
  read back from the event files under `logdir`."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import plugin_hparams_pb2  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  out = {'scalars': set(), 'images': set(), 'hparams': set(), 'scalar_steps': {}}
  for path in sorted(logdir.rglob('events.out.tfevents.*')):
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
      event = event_pb2.Event.FromString(record)
      for v in event.summary.value:
        if v.HasField('simple_value'):
          out['scalars'].add(v.tag)
          out['scalar_steps'].setdefault(v.tag, []).append(event.step)
        elif v.HasField('image'):
          out['images'].add(v.tag)
        elif v.metadata.plugin_data.plugin_name == 'hparams':
          data = plugin_hparams_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content)
          out['hparams'] |= set(data.session_start_info.hparams)
  return out


def final_params(workdir):
  ckpt = os.path.join(workdir, 'checkpoints')
  step = max(int(d) for d in os.listdir(ckpt) if d.isdigit())
  restored = ocp.StandardCheckpointer().restore(os.path.join(ckpt, str(step), 'default'))
  return step, restored['params']


def test_end_to_end_writes_checkpoints_metrics_and_report(offline_data_dir, tmp_path):
  lines = []
  # The experiment's automatic convolution parts (8 on CPU) in one end-to-end run.
  final = families.train_and_evaluate(
    'cnn', tiny_config(offline_data_dir, conv_parts=0), str(tmp_path), log=lines.append
  )
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '6']
  for name in (
    'manifest.json',
    'metrics.jsonl',
    'classification_report.txt',
    'confusion_matrix.png',
    'final_metrics.json',
  ):
    assert (tmp_path / name).stat().st_size > 0, name
  assert os.listdir(tmp_path / 'tensorboard')
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [r['split'] for r in records] == ['train', 'epoch', 'train', 'epoch', 'final']
  events = tensorboard_events(tmp_path / 'tensorboard')
  assert {
    'train/loss',
    'train/learning_rate',
    'train/grad_norm',
    'train/examples_per_second',
  } <= events['scalars']
  assert events['scalar_steps']['train/loss'] == [3, 6]  # Per boundary, not per epoch.
  assert 'test/confusion_matrix' in events['images']
  assert {'batch_size', 'optimizer.weight_decay', 'model.dtype'} <= events['hparams']
  assert all('learning_rate' in r and 'grad_norm' in r for r in records[::2][:2])
  manifest = json.loads((tmp_path / 'manifest.json').read_text())
  assert manifest['data']['name'] == 'mnist_offline' and manifest['data']['version']
  assert manifest['config']['batch_size'] == 32 and 'jax' in manifest['packages']
  assert manifest['parameters']['conv1'] == 896
  assert manifest['devices']['device_count'] >= 1 and manifest['git_commit']
  epoch_lines = [line for line in lines if line.startswith('[Epoch ')]
  assert epoch_lines[0].startswith('[Epoch 1] loss = ') and '| accuracy = ' in epoch_lines[0]
  assert any(line.startswith('Input pipeline: device') for line in lines)
  assert any(line.startswith('Test loss = ') for line in lines)
  assert any('precision' in line and 'recall' in line for line in lines)
  matrix = np.array(final['confusion_matrix'])
  assert matrix.shape == (10, 10) and matrix.sum() == 40
  assert np.isclose(final['test_accuracy'], np.trace(matrix) / 40)


def test_resume_ends_with_the_same_parameters(offline_data_dir, tmp_path):
  straight, split = str(tmp_path / 'straight'), str(tmp_path / 'split')
  quiet = lambda _: None
  families.train_and_evaluate('cnn', tiny_config(offline_data_dir, 2), straight, log=quiet)
  families.train_and_evaluate('cnn', tiny_config(offline_data_dir, 1), split, log=quiet)
  lines = []
  families.train_and_evaluate(
    'cnn', tiny_config(offline_data_dir, 2), split, resume=True, log=lines.append
  )
  assert 'Resumed from the checkpoint at step 3.' in lines
  (s1, p1), (s2, p2) = final_params(straight), final_params(split)
  assert s1 == s2 == 6
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_used_workdir_needs_resume_and_keeps_its_files(offline_data_dir, tmp_path):
  families.train_and_evaluate(
    'cnn', tiny_config(offline_data_dir, 1), str(tmp_path), log=lambda _: None
  )
  before = sorted(os.listdir(tmp_path / 'checkpoints'))
  with pytest.raises(UserInputError, match='--resume'):
    families.train_and_evaluate('cnn', tiny_config(offline_data_dir, 1), str(tmp_path))
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == before


@pytest.mark.parametrize(
  'override,message',
  [
    ('--config.no_such_field=1', 'the config has no such field'),
    ('--config.batch_size=0', 'batch_size must be >= 1'),
    ('--config.dataset=not_a_dataset', "unknown data set 'not_a_dataset'"),
    ('--config.image_size=30', 'image_size must be a positive multiple of 4'),
    ('--config.optimizer.name=adagrad', "unknown optimizer 'adagrad'"),
  ],
)
def test_bad_input_gives_one_clear_line(offline_data_dir, tmp_path, override, message):
  out = subprocess.run(
    [
      sys.executable,
      '-m',
      'experiments.cnn.main',
      f'--workdir={tmp_path}/run',
      f'--config.data_dir={offline_data_dir}',
      '--config.train_split=train[:8]',
      '--config.test_split=test[:8]',
      override,
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode != 0
  assert 'Traceback' not in out.stderr
  errors = [line for line in out.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and message in errors[0], out.stderr[-2000:]


def test_unwritable_workdir_is_rejected(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('keep me')
  out = subprocess.run(
    [sys.executable, '-m', 'experiments.cnn.main', f'--workdir={blocker}/run'],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 1 and 'Traceback' not in out.stderr
  assert out.stderr.strip().splitlines()[-1].startswith('error: workdir')
  assert blocker.read_text() == 'keep me'


def test_readme_gtsrb_command_runs_under_tfds_mock_data(tmp_path):
  """`--config.dataset=visual_domain_decathlon/gtsrb` as the README gives it: 43
  classes, evaluated on the labelled validation split (tfds's test split is not)."""
  from research.data import tfds_io  # pylint: disable=g-import-not-at-top
  from tests.data import test_image_classification as mocked  # pylint: disable=g-import-not-at-top

  c = tiny_config('', epochs=1)
  c.dataset = 'visual_domain_decathlon/gtsrb'
  c.augment.mean, c.augment.std = (0.5,), (0.25,)
  c.batch_size = c.eval_batch_size = 2
  c.train_split, c.test_split = 'train', 'test'  # As the README command leaves them.
  lines = []
  with tfds_io.import_tfds().testing.mock_data(as_dataset_fn=mocked._gtsrb_as_dataset):  # pylint: disable=protected-access
    final = families.train_and_evaluate('cnn', c, str(tmp_path), log=lines.append)
  assert (
    final['test_split'] == 'validation'
    and final['parameters']['fc2'] == (c.model.hidden_dim + 1) * 43
  )
  assert np.array(final['confusion_matrix']).shape == (43, 43)
  assert final['test_examples'] == mocked.SPLITS['validation'][0]
  assert any('(validation split)' in line for line in lines)
