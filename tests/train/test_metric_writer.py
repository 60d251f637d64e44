"""The metric writer's start-up cost: it must not import PyTorch through tensorboardX."""

import importlib.util
import subprocess
import sys

import pytest

_SCRIPT = '''
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
'''


@pytest.mark.skipif(importlib.util.find_spec('torch') is None, reason='needs PyTorch installed')
def test_tensorboard_writer_does_not_import_torch(tmp_path):
  out = subprocess.run([sys.executable, '-c', _SCRIPT, str(tmp_path)], check=True,
                       capture_output=True, text=True).stdout
  import json  # pylint: disable=g-import-not-at-top
  result = json.loads(out.strip().splitlines()[-1])
  assert not result['torch_imported_by_writer']
  assert result['torch_ok']
  assert any(name.startswith('events.out.tfevents') for name in result['events'])
  assert (tmp_path / 'metrics.jsonl').read_text().count('"loss": 0.5') == 1
