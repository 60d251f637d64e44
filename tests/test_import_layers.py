"""The package is layered: a module imports only from its own floor or the floors below.

Floors, lowest first: the base modules (errors, lazy attributes, the platform policy),
then models, data, generation, train, tasks, families and the command line. Models
know nothing of data pipelines, the training core nothing of tasks, and so on; only
the top-level `research/__init__.py`, which re-exports the public API, may import
anything. The imports are read from the source with `ast`, those inside functions
included, so a lazy import cannot hide an upward dependency. Module-level imports
must also form no cycle.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'research'

# Lowest first. A module's floor is that of its longest listed prefix.
FLOORS = (
  ('research.errors', 'research._lazy', 'research.platform_policy'),
  ('research.models',),
  ('research.data',),
  ('research.generation',),
  ('research.train',),
  ('research.tasks',),
  ('research.families',),
  ('research.cli',),
)
TOP = 'research'  # Re-exports the public API: may import every floor.


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(p): p for p in sorted(PACKAGE.rglob('*.py'))}


def floor(module: str) -> int | None:
  """The index in FLOORS of `module`'s floor, None when no floor lists it."""
  for i, prefixes in enumerate(FLOORS):
    if any(module == p or module.startswith(p + '.') for p in prefixes):
      return i
  return None


def _is_type_checking(node: ast.If) -> bool:
  test = node.test
  return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
    isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING'
  )


def _targets(node: ast.Import | ast.ImportFrom, importer: str, modules) -> list[str]:
  """The research modules an import statement loads (a submodule when it names one)."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names if a.name.split('.')[0] == TOP]
  base = node.module or ''
  if node.level:  # Relative: resolve against the importer's package.
    package = importer.split('.')
    if importer not in modules or modules[importer].name != '__init__.py':
      package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    base = '.'.join(package + ([base] if base else []))
  if base.split('.')[0] != TOP:
    return []
  return [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base for a in node.names]


def imports(path: pathlib.Path, module: str, modules) -> list[tuple[str, int, bool]]:
  """(target module, line, runs at import time) for every research import in `path`.

  An import runs at import time when it is at module level and outside an
  `if TYPE_CHECKING:` block (those inside functions, classes' methods or that block
  count for the floors but not for cycles).
  """
  found = []

  def visit(node: ast.AST, at_import: bool) -> None:
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.Import, ast.ImportFrom)):
        found.extend((t, child.lineno, at_import) for t in _targets(child, module, modules))
      elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        visit(child, False)
      elif isinstance(child, ast.If) and _is_type_checking(child):
        visit(child, False)
      else:
        visit(child, at_import)

  visit(ast.parse(path.read_text(), str(path)), True)
  return found


def _graph():
  modules = _modules()
  return modules, {m: imports(p, m, modules) for m, p in modules.items()}


def test_every_module_has_a_floor():
  unplaced = [m for m in _modules() if m != TOP and floor(m) is None]
  assert not unplaced, f'modules outside every floor (add them to FLOORS): {unplaced}'


def test_no_module_imports_from_a_higher_floor():
  modules, graph = _graph()
  upward = []
  for module, found in graph.items():
    here = floor(module)
    if module == TOP or here is None:
      continue
    for target, line, _ in found:
      there = len(FLOORS) if target == TOP else floor(target)
      if there is not None and there > here:
        upward.append(f'{modules[module].relative_to(ROOT)}:{line} imports {target}')
  assert not upward, 'imports from a higher floor:\n' + '\n'.join(upward)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one module, or with a self-import."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def connect(v: str) -> None:  # Tarjan's algorithm.
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
      if w not in index:
        connect(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1 or v in edges.get(v, ()):
        out.append(sorted(component))

  for v in sorted(edges):
    if v not in index:
      connect(v)
  return out


def test_module_level_imports_form_no_cycle():
  _, graph = _graph()
  edges = {
    m: {t for t, _, at_import in found if at_import and t != m} for m, found in graph.items()
  }
  cycles = _cycles(edges)
  assert not cycles, f'import cycles: {cycles}'


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path):
  """The checks above would fail on a models module importing train, and on a cycle."""
  path = tmp_path / 'probe.py'
  path.write_text('def f():\n  from research.train import steps\n')
  modules = {'research.models.probe': path, 'research.train.steps': path}
  (found,) = imports(path, 'research.models.probe', modules)
  assert found == ('research.train.steps', 2, False)
  assert floor('research.train.steps') > floor('research.models.probe')
  assert _cycles({'a': {'b'}, 'b': {'a'}, 'c': {'a'}}) == [['a', 'b']]
