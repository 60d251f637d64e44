"""Package attributes imported on first use (PEP 562), for the few slow imports.

A package lists `{attribute: module}` and hands the result of `lazy_attributes` to
its module-level `__getattr__`/`__dir__`; `from research.train import Checkpointer`
then works as usual, but `import research.train` does not pay for orbax.
"""

import importlib
import sys
from typing import Any, Callable


def lazy_attributes(
  package: str, modules: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
  """`__getattr__` and `__dir__` for `package`.

  Args:
    package: the package's `__name__`.
    modules: attribute -> dotted module path. The attribute is that module itself
      when the path ends in `.<attribute>`, else the module's attribute of that name.

  Returns:
    (getattr_fn, dir_fn): `getattr_fn(name)` imports and returns the attribute (and
    caches it on the package); `dir_fn()` lists the package's names, lazy ones too.
  """

  def getattr_fn(name: str) -> Any:
    if name not in modules:
      raise AttributeError(f'module {package!r} has no attribute {name!r}')
    path = modules[name]
    module = importlib.import_module(path)
    value = module if path.endswith('.' + name) else getattr(module, name)
    setattr(sys.modules[package], name, value)
    return value

  def dir_fn() -> list[str]:
    return sorted(set(vars(sys.modules[package])) | set(modules))

  return getattr_fn, dir_fn
