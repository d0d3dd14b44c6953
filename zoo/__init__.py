"""zoo: a declarative, typed algorithm zoo with a reproducibility registry.

The catalogue API (no torch is imported here)::

    import zoo
    entry = zoo.get("pdp_pruning")        # spec, status, results folder
    zoo.list_entries(family="optimizer")  # filter the catalogue
    zoo.resolve(entry.spec.implementation[0])  # the implementation, imported lazily

Implementations are plain libraries: ``from zoo.pruning import PDP``, ``from zoo.optim import ...``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["get", "list_entries", "resolve", "__version__"]


def get(entry_id: str) -> Any:
    """The catalogue entry for ``entry_id`` (see :func:`zoo.catalogue.get`)."""
    from zoo.catalogue import get as _get

    return _get(entry_id)


def list_entries(**filters: Any) -> list[Any]:
    """Catalogue entries, filtered by ``family``, ``kind``, ``status`` or ``text``."""
    from zoo.catalogue import list_entries as _list

    return _list(**filters)


def resolve(path: str) -> Any:
    """Import a ``module:Name`` path from a spec (may import torch)."""
    from zoo.catalogue import resolve as _resolve

    return _resolve(path)
