"""The library examples run and print what they show: the README's "Use the modules in
your own code" section and docs/library.md, each read as one doctest session."""

import doctest
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / 'README.md'
LIBRARY = ROOT / 'docs' / 'library.md'
SECTION = '## Use the modules in your own code'


def examples(path: pathlib.Path, section: str | None = None) -> list[tuple[int, str]]:
  """(line number, text) of each `>>>` code block of `path`, or of its `section`."""
  text = path.read_text(encoding='utf-8')
  start, end = 0, len(text)
  if section is not None:
    assert section in text, f'{path.name} has no section {section!r}'
    start = text.index(section)
    found = text.find('\n## ', start + len(section))
    end = found if found > 0 else end
  blocks = []
  for m in re.finditer(r'```python\n(.*?)```', text[start:end], flags=re.DOTALL):
    if m.group(1).lstrip().startswith('>>>'):
      blocks.append((text.count('\n', 0, start + m.start(1)), m.group(1)))
  return blocks


SESSIONS = {
  'readme': (README, SECTION, ('jax.eval_shape', 'count_params', 'train_step', 'load_run')),
  'library': (LIBRARY, None, ('ddpm.sample(', 'beam_size=4', 'nn.RNN', 'cnn_params_from_torch')),
}


@pytest.mark.parametrize('name', sorted(SESSIONS))
def test_examples_show_the_api(name):
  path, section, needed = SESSIONS[name]
  text = ''.join(block for _, block in examples(path, section))
  for word in needed:
    assert word in text, f'the examples of {path.name} lost {word!r}'


@pytest.mark.parametrize('name', sorted(SESSIONS))
def test_examples_run(name, tmp_path, monkeypatch):
  path, section, _ = SESSIONS[name]
  monkeypatch.chdir(tmp_path)  # Examples that train write their run directory here.
  globs: dict = {}  # Shared: the blocks read as one session.
  runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
  parser = doctest.DocTestParser()
  for lineno, text in examples(path, section):
    test = parser.get_doctest(text, globs, path.name, str(path), lineno)
    runner.run(test, clear_globs=False)
    globs = test.globs  # DocTest works on a copy: hand its names to the next block.
  result = runner.summarize(verbose=False)
  assert result.attempted > 10 and result.failed == 0, (
    f'{result.failed} of {result.attempted} examples of {path.name} failed (output above)'
  )
