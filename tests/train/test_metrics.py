"""Host-side metrics: (sum, count) sums, their log line, and the writer's imports."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from research.train import metrics as metrics_lib

_SCRIPT = """
import json, os, sys
from research.train import metrics
writer = metrics.MetricWriter(sys.argv[1])
writer.write(3, 'train', {'loss': 0.5})
writer.close()
torch_hidden_then = 'torch' not in sys.modules
import torch  # Still importable afterwards.
print(json.dumps({'torch_imported_by_writer': not torch_hidden_then,
                  'events': os.listdir(os.path.join(sys.argv[1], 'tensorboard')),
                  'torch_ok': hasattr(torch, 'tensor')}))
"""


@pytest.mark.skipif(importlib.util.find_spec('torch') is None, reason='needs PyTorch installed')
def test_tensorboard_writer_does_not_import_torch(tmp_path):
  out = subprocess.run(
    [sys.executable, '-c', _SCRIPT, str(tmp_path)], check=True, capture_output=True, text=True
  ).stdout
  import json  # pylint: disable=g-import-not-at-top

  result = json.loads(out.strip().splitlines()[-1])
  assert not result['torch_imported_by_writer']
  assert result['torch_ok']
  assert any(name.startswith('events.out.tfevents') for name in result['events'])
  assert (tmp_path / 'metrics.jsonl').read_text().count('"loss": 0.5') == 1


def test_metric_sums_divide_once():
  sums = metrics_lib.MetricSums()
  sums.add({'loss': (np.array([3.0, 1.0]), np.array([2.0, 2.0]))})
  sums.add({'loss': (2.0, 1.0)})
  assert sums.result() == {'loss': 6.0 / 5.0}


def test_merged_sums_equal_one_sum_of_everything():
  a, b, both = metrics_lib.MetricSums(), metrics_lib.MetricSums(), metrics_lib.MetricSums()
  a.add({'loss': (3.0, 2.0)})
  b.add({'loss': (1.0, 2.0), 'accuracy': (1.0, 4.0)})
  both.add({'loss': (4.0, 4.0), 'accuracy': (1.0, 4.0)})
  a.merge(b)
  assert a.result() == both.result() == {'loss': 1.0, 'accuracy': 0.25}


def test_a_metric_never_counted_is_nan():
  sums = metrics_lib.MetricSums()
  sums.add({'accuracy': (0.0, 0.0)})
  assert np.isnan(sums.result()['accuracy'])


def test_format_metrics_puts_loss_first_and_accuracies_in_percent():
  line = metrics_lib.format_metrics({'accuracy': 0.971, 'bits': 1.5, 'loss': 0.12345})
  assert line == 'loss = 0.1235 | accuracy = 97.10% | bits = 1.5000'
