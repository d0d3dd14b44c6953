"""Optimizers, each in its own module named after its paper's method (``torch.optim.Optimizer``s).

Every module registers its classes with :mod:`zoo.optim.registry` at import; the contract test
and ``python -m zoo.bench optim`` iterate over that registry. ``from zoo.optim import DoG`` finds
the class by importing the package's modules on first use (PEP 562): this file lists none of
them, so adding an optimizer never edits it, and an experiment that imports one optimizer module
depends on that module alone (its DVC stage does not go stale when another optimizer changes).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def _modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "registry"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    for mod in _modules():
        module = importlib.import_module(f"{__name__}.{mod}")
        if name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            globals()[name] = value
            return value
    if name in _modules():  # `zoo.optim.dog` as an attribute
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    names: list[str] = []
    for mod in _modules():
        names.extend(getattr(importlib.import_module(f"{__name__}.{mod}"), "__all__", ()))
    return sorted({*globals(), *names})
