"""Importing the library has no side effects: no TensorFlow, no flags, no devices, and
none of the slow imports only a report needs (sklearn loads scipy and pandas)."""

import subprocess
import sys

CHECK = """
import sys
import research, research.families, research.cli
from absl import flags
from jax._src import xla_bridge
assert not [m for m in sys.modules if m.startswith('tensorflow')], 'TensorFlow imported'
assert 'sklearn' not in sys.modules, 'sklearn imported before a report needs it'
assert not flags.FLAGS.is_parsed(), 'flags parsed'
assert not xla_bridge._backends, 'a JAX backend was initialised'
print('clean')
"""


def test_importing_research_has_no_side_effects():
  out = subprocess.run([sys.executable, '-c', CHECK], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0 and out.stdout.strip() == 'clean', out.stderr[-2000:]
