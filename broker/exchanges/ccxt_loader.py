"""ccxt without its ~110 eager exchange imports: exchange classes load on first access.

`ccxt/__init__.py` and `ccxt/async_support/__init__.py` each import every exchange
module ccxt ships. Measured on the development machine (ccxt 4.5.90): importing
`ccxt.async_support` takes ~1.1 s and ~100 MB of RSS; executing both package modules
from their own source without the per-exchange lines, then importing the 12 exchanges
the broker supports, takes 0.63 s and 63 MB in total. bench/exchange_bench.py: every
adapter and ccxt client loaded, 116 MB before, 76 MB with this loader; the running broker
(bench/broker_bench.py) 170 MB before, 116 MB after.

`install()` puts both package modules into `sys.modules`, executed from ccxt's own
source minus the top-level `from ccxt[.async_support].X import X` lines. Every other
statement (base classes, errors, `exchanges`, `__all__`) runs unchanged. A PEP 562
module `__getattr__` imports an exchange on first access, so `ccxt.async_support.okx`
and `from ccxt import binance` keep working anywhere in the process, only later (and
`__dir__` still lists every exchange). When a
submodule is imported directly (`import ccxt.okx`), the import system binds the
submodule on the package; `_LazyPackage.__setattr__` binds the class instead, as the
eager `from ccxt.okx import okx` line would have.

Safe to call any number of times from any thread. A package that is already imported
is left as it is; a source that does not have the expected shape (the removed lines
must be exactly the modules named in its `exchanges` list) falls back to the plain
import, with the reason logged at debug.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import sys
import threading
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

PACKAGES = ("ccxt", "ccxt.async_support")

_lock = threading.RLock()


class ShapeError(Exception):
    """ccxt's package source is not what this loader knows how to trim."""


class _LazyPackage(ModuleType):
    """A ccxt package module whose exchange attributes are classes, never submodules."""

    def __setattr__(self, name: str, value: Any) -> None:
        lazy: frozenset[str] = self.__dict__.get("_keybroker_lazy", frozenset())
        if (
            name in lazy
            and isinstance(value, ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and hasattr(value, name)
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


def install() -> ModuleType:
    """Install the lazy `ccxt` and `ccxt.async_support` (where not imported yet); returns
    `ccxt.async_support`, whichever way it was loaded."""
    with _lock:
        for name in PACKAGES:
            if name in sys.modules:
                continue  # imported already (normally or by an earlier call): leave it
            try:
                _install_lazy(name)
            except ShapeError as exc:
                log.debug("ccxt_loader: plain import of %s: %s", name, exc)
                importlib.import_module(name)
        return sys.modules["ccxt.async_support"]


def is_lazy(module: ModuleType) -> bool:
    return isinstance(module, _LazyPackage)


def exchange_class(exchange_id: str) -> type:
    """The ccxt.async_support class of `exchange_id`; only that exchange's module loads."""
    package = install()
    if exchange_id not in getattr(package, "exchanges", ()):
        raise ValueError(f"ccxt has no exchange {exchange_id!r}")
    cls = getattr(package, exchange_id)
    assert isinstance(cls, type)
    return cls


def _install_lazy(name: str) -> None:
    spec = importlib.util.find_spec(name)  # imports the parent package first, if any
    if spec is None or spec.loader is None or spec.origin is None:
        raise ShapeError("no module spec with a source")
    get_source = getattr(spec.loader, "get_source", None)
    source = get_source(name) if get_source is not None else None
    if not source:
        raise ShapeError("the package source is not available")
    tree = ast.parse(source, filename=spec.origin)
    lazy = _strip_exchange_imports(tree, name)
    if not lazy:
        raise ShapeError("no per-exchange import lines found")
    code = compile(tree, spec.origin, "exec")

    module = importlib.util.module_from_spec(spec)
    module.__class__ = _LazyPackage
    module.__dict__["_keybroker_lazy"] = lazy
    module.__dict__["__getattr__"] = _lazy_getattr(module, lazy)
    module.__dict__["__dir__"] = lambda: sorted(set(module.__dict__) | lazy)  # PEP 562
    sys.modules[name] = module
    try:
        # ccxt's own installed source, trimmed above: what `import ccxt` would run anyway.
        exec(code, module.__dict__)  # noqa: S102
        listed = set(getattr(module, "exchanges", ()))
        if listed != lazy:
            raise ShapeError(
                f"{len(lazy)} exchange import lines but {len(listed)} names in `exchanges`"
            )
    except BaseException:
        del sys.modules[name]
        raise
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def _strip_exchange_imports(tree: ast.Module, package: str) -> frozenset[str]:
    """Removes top-level `from <package>.X import X` lines from `tree`; returns the Xs."""
    kept: list[ast.stmt] = []
    lazy: set[str] = set()
    for node in tree.body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module is not None
            and node.module.startswith(f"{package}.")
            and len(node.names) == 1
            and node.names[0].asname is None
            and node.module == f"{package}.{node.names[0].name}"
        ):
            lazy.add(node.names[0].name)
        else:
            kept.append(node)
    tree.body = kept
    return frozenset(lazy)


def _lazy_getattr(module: ModuleType, lazy: frozenset[str]) -> Any:
    package = module.__name__

    def __getattr__(name: str) -> Any:  # PEP 562
        if name not in lazy:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # The import system's per-module lock serializes concurrent first accesses;
        # binding the class afterwards is idempotent.
        submodule = importlib.import_module(f"{package}.{name}")
        cls = getattr(submodule, name)
        setattr(module, name, cls)
        return cls

    return __getattr__
