"""The registry of zoo optimizers: what the contract test, the benchmark and the docs iterate over.

Each optimizer module in ``zoo/optim/`` registers its classes at import with
:func:`register_optimizer`, and :func:`list_optimizers` imports every module of the package
first (timm's pattern: importing fills the registry), so a new file is picked up by the contract
test and ``zoo.bench optim`` without editing either::

    register_optimizer(OptimizerInfo(
        name="dadapt_adam", cls=DAdaptAdam, paper="d_adaptation",
        test_kwargs={}, reference="dadaptation:DAdaptAdam",
    ))

No torch is imported here until :func:`list_optimizers` imports the optimizer modules.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OptimizerInfo", "register_optimizer", "list_optimizers", "get_optimizer"]


@dataclass(frozen=True)
class OptimizerInfo:
    """One registered optimizer and what its tests need to know about it."""

    name: str  # snake_case, unique: the registry key
    cls: type  # a torch.optim.Optimizer subclass
    paper: str  # the catalogue id of its paper
    test_kwargs: dict[str, Any] = field(default_factory=dict)  # a setting that makes progress on a small problem
    needs_closure: bool = False  # True for methods that re-evaluate the loss inside step (SAM)
    reference: str | None = None  # `module:Class` of the authors' package, for differential tests and the bench
    description: str = ""


_REGISTRY: dict[str, OptimizerInfo] = {}


def register_optimizer(info: OptimizerInfo) -> OptimizerInfo:
    """Add ``info`` to the registry; a second registration under the same name is an error."""
    old = _REGISTRY.get(info.name)
    if old is not None and old.cls is not info.cls:
        raise ValueError(f"optimizer {info.name!r} is registered twice ({old.cls.__module__} and {info.cls.__module__})")
    _REGISTRY[info.name] = info
    return info


def _import_all() -> None:
    import zoo.optim as package

    for mod in pkgutil.iter_modules(package.__path__):
        if not mod.name.startswith("_") and mod.name != "registry":
            importlib.import_module(f"zoo.optim.{mod.name}")


def list_optimizers(pattern: str = "*") -> list[OptimizerInfo]:
    """Every registered optimizer whose name matches the glob ``pattern``, by name."""
    _import_all()
    return [info for name, info in sorted(_REGISTRY.items()) if fnmatch.fnmatch(name, pattern)]


def get_optimizer(name: str) -> OptimizerInfo:
    """The registered optimizer ``name``; an unknown name lists the known ones."""
    _import_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown optimizer {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None
