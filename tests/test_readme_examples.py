"""The README's "Use the modules in your own code" examples run and print what they show."""

import doctest
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / 'README.md'
SECTION = '## Use the modules in your own code'


def readme_examples() -> list[tuple[int, str]]:
  """(line number, text) of each `>>>` code block in the README's section."""
  text = README.read_text(encoding='utf-8')
  assert SECTION in text, f'README.md has no section {SECTION!r}'
  start = text.index(SECTION)
  end = text.find('\n## ', start + len(SECTION))
  blocks = []
  for m in re.finditer(r'```python\n(.*?)```', text[start:end if end > 0 else None],
                       flags=re.DOTALL):
    if m.group(1).lstrip().startswith('>>>'):
      blocks.append((text.count('\n', 0, start + m.start(1)), m.group(1)))
  return blocks


def test_readme_has_the_examples():
  examples = ''.join(text for _, text in readme_examples())
  for needed in ('jax.eval_shape', 'count_params', 'train_step', 'diffusion_task.sample',
                 'beam_size=4', 'nn.RNN', 'cnn_params_from_torch'):
    assert needed in examples, f'the README examples lost {needed!r}'


def test_readme_examples_run():
  globs: dict = {}  # Shared: the blocks read as one session.
  runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
  parser = doctest.DocTestParser()
  for lineno, text in readme_examples():
    test = parser.get_doctest(text, globs, 'README.md', str(README), lineno)
    runner.run(test, clear_globs=False)
    globs = test.globs  # DocTest works on a copy: hand its names to the next block.
  result = runner.summarize(verbose=False)
  assert result.attempted > 20 and result.failed == 0, (
      f'{result.failed} of {result.attempted} README examples failed (output above)')
