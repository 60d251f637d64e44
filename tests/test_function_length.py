"""The codebase's size rule, checked: no function in research/ runs over 60 lines,
its docstring excluded (a longer function is usually two)."""

import ast
import pathlib

MAX_LINES = 60
RESEARCH = pathlib.Path(__file__).resolve().parent.parent / 'research'


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
  """Lines from the `def` to the function's end, less its docstring's lines."""
  lines = node.end_lineno - node.lineno + 1
  first = node.body[0]
  if (
    isinstance(first, ast.Expr)
    and isinstance(first.value, ast.Constant)
    and isinstance(first.value.value, str)
  ):
    lines -= first.end_lineno - first.lineno + 1
  return lines


def long_functions(source: str, max_lines: int = MAX_LINES) -> list[tuple[str, int]]:
  """(name, lines) of every function or method in `source` longer than `max_lines`."""
  return [
    (node.name, _body_lines(node))
    for node in ast.walk(ast.parse(source))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > max_lines
  ]


def test_the_checker_counts_code_not_docstrings():
  doc = '\n'.join(f'  line {i}' for i in range(80))
  body = '\n'.join(f'  x{i} = {i}' for i in range(59))
  assert long_functions(f'def f():\n  """{doc}"""\n{body}\n') == []
  assert long_functions(f'def f():\n{body}\n  x = 1\n  y = 2\n') == [('f', 62)]
  nested = (
    f'class A:\n  def g(self):\n  {body.replace(chr(10), chr(10) + "  ")}\n    z = 0\n    w = 1'
  )
  assert long_functions(nested) == [('g', 62)]


def test_no_function_in_research_is_over_60_lines():
  found = [
    f'{path.relative_to(RESEARCH.parent)}: {name} ({lines} lines)'
    for path in sorted(RESEARCH.rglob('*.py'))
    for name, lines in long_functions(path.read_text(encoding='utf-8'))
  ]
  assert not found, 'functions over 60 lines:\n' + '\n'.join(found)
