"""The worked example of docs/add_a_family.md: it stays short, and through the one
trainer it learns the digits and leaves a complete run directory."""

import importlib.util
import json
import pathlib

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / 'docs' / 'examples' / 'digits_mlp.py'
MAX_LINES = 100  # All lines of the file, blank ones and docstrings included.


def load_example():
  """docs/examples/digits_mlp.py as a module (docs/ is not a package)."""
  spec = importlib.util.spec_from_file_location('digits_mlp_example', EXAMPLE)
  assert spec is not None and spec.loader is not None
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_example_stays_under_a_hundred_lines():
  num_lines = len(EXAMPLE.read_text().splitlines())
  assert num_lines < MAX_LINES, (
    f'{EXAMPLE} has {num_lines} lines: the guide promises a family in under {MAX_LINES}'
  )


def test_example_learns_the_digits_through_the_trainer(tmp_path):
  example = load_example()
  config = example.get_config()
  config.num_epochs = 3  # 23 steps an epoch: enough to clear 80% on the held-out digits.
  config.progress = False
  workdir = tmp_path / 'run'

  final = example.main(str(workdir), config)

  accuracy = final['test_accuracy']
  assert accuracy >= 0.8, f'test accuracy {accuracy:.3f}: it did not learn (chance is 0.1)'
  assert final['steps'] == 3 * 23  # ceil(1,437 training digits / 64).
  written = json.loads((workdir / 'final_metrics.json').read_text())
  assert written['test_accuracy'] == final['test_accuracy']
  assert written['parameters']['total'] == (64 + 1) * 128 + (128 + 1) * 10
  steps = {int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()}
  assert final['steps'] in steps, f'no checkpoint of the last step in {sorted(steps)}'
  manifest = json.loads((workdir / 'manifest.json').read_text())
  assert (manifest['experiment'], manifest['data']['name']) == ('digits_mlp', 'sklearn_digits')
