"""The catalogue: every spec in ``specs/``, loaded, validated and looked up by id.

Like timm's ``list_models``/``create_model``, an id resolves to everything about a paper: its
spec, its implementation (``module:Name`` import paths) and its experiment entry point. Resolving
is lazy: listing and validating never import torch, so ``python -m zoo.catalogue`` is fast.

Command line::

    python -m zoo.catalogue [--family F] [--kind K] [--status S] [--text T] [--json]
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from zoo.spec import Family, Kind, Spec

# libyaml's C parser: with PyYAML's pure-Python one, parsing the 315 specs took 0.5 s, most of
# `python -m zoo.catalogue`; libyaml takes 0.05 s. Both build the same values (SafeConstructor).
try:
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

__all__ = [
    "SpecError",
    "Entry",
    "repo_root",
    "data_root",
    "specs_dir",
    "load_yaml",
    "load_spec",
    "load_all",
    "get",
    "list_entries",
    "resolve",
    "module_file",
    "main",
]

STATUSES = ("catalogued", "implemented", "reproduced")


class SpecError(Exception):
    """A spec that cannot be used; ``str()`` is one line naming file, field and fix."""

    def __init__(self, file: str | Path, field: str, message: str) -> None:
        self.file, self.field, self.message = str(file), field, message
        super().__init__(f"{self.file}: {field}: {message}")


# Where a wheel carries the checkout's specs/ and reproductions/ (the mapping is in pyproject.toml).
_PACKAGED = Path(__file__).resolve().parent / "_packaged"


@functools.lru_cache(maxsize=None)
def _resolved_root(env: str | None) -> Path:
    # Cached per ZOO_ROOT value: resolve() costs syscalls, and it was called once per spec.
    return Path(env).resolve() if env else Path(__file__).resolve().parents[1]


def repo_root() -> Path:
    """The repository root (``ZOO_ROOT`` overrides, for tests on a copy).

    Checkout-only things (git, DVC, ``data/``, ``runs/``) live here; in an installed wheel it is
    merely the folder above the package. The catalogue's own files are under :func:`data_root`.
    """
    return _resolved_root(os.environ.get("ZOO_ROOT"))


def data_root() -> Path:
    """The folder holding ``specs/`` and ``reproductions/``.

    In a checkout (editable install, or ``ZOO_ROOT`` set) that is :func:`repo_root`; in an
    installed wheel, which has no checkout around it, the copy inside the package.
    """
    if "ZOO_ROOT" not in os.environ and _PACKAGED.is_dir():
        return _PACKAGED
    return repo_root()


def specs_dir() -> Path:
    return data_root() / "specs"


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, with libyaml's parser when PyYAML has it."""
    return yaml.load(text, Loader=_YamlLoader)


def _rel(path: Path) -> str:
    resolved = path.resolve()
    for root in (data_root(), repo_root()):
        try:
            return str(resolved.relative_to(root))
        except ValueError:
            continue
    return str(path)


def module_file(module: str) -> Path | None:
    """The source file of a ``zoo.*`` module, found without importing it."""
    base = repo_root().joinpath(*module.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


@functools.lru_cache(maxsize=None)
def _top_level_names(path: Path, mtime: float) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def _check_import_path(path: str) -> str | None:
    """Why ``module:Name`` does not resolve, or None. Reads source; imports nothing."""
    module, name = path.split(":")
    f = module_file(module)
    if f is None:
        return f"module {module!r} has no source file under {repo_root().name}/"
    if name not in _top_level_names(f, f.stat().st_mtime):
        return f"{_rel(f)} defines no top-level {name!r}"
    return None


def _field(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_spec(path: str | Path) -> Spec:
    """Load and validate one spec file; raise :class:`SpecError` with a one-line reason."""
    path = Path(path)
    rel = _rel(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(rel, "(file)", "no such spec file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(rel, where, f"YAML syntax error: {problem}; fix the YAML there") from None
    if not isinstance(raw, dict):
        raise SpecError(rel, "(top level)", "a spec must be a YAML mapping of fields")
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"])
            msg = f"unknown key; remove or rename it (allowed: {', '.join(allowed)})"
        elif err["type"] == "missing":
            msg = "required field is missing; add it"
        elif err["type"].startswith("enum"):
            msg = f"{msg}; got {err.get('input')!r}"
        else:
            msg = f"{msg} (got {err.get('input')!r})" if not isinstance(err.get("input"), dict) else msg
        msg, field = msg.replace("Value error, ", ""), _field(err["loc"])
        # Cross-field checks (model validators) name their field at the start of the message.
        if not err["loc"] and (m := re.match(r"^([\w.]+): (.*)$", msg)):
            field, msg = m.group(1), m.group(2)
        raise SpecError(rel, field, msg) from None
    if spec.id != path.stem:
        raise SpecError(rel, "id", f"id {spec.id!r} must match the file name; rename to {spec.id}.yaml or fix the id")
    for i, p in enumerate(spec.implementation):
        if why := _check_import_path(p):
            raise SpecError(rel, f"implementation.{i}", f"{p!r} does not resolve: {why}")
    if spec.reproduction is not None:
        if why := _check_import_path(spec.reproduction.experiment):
            raise SpecError(rel, "reproduction.experiment", f"{spec.reproduction.experiment!r} does not resolve: {why}")
    return spec


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names allowed at the parent of ``loc`` in the Spec model, for the error message."""
    from pydantic import BaseModel

    model: Any = Spec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        ann = model.model_fields[part].annotation if part in getattr(model, "model_fields", {}) else None
        inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        model = inner[0]
    return sorted(model.model_fields)


@dataclass(frozen=True)
class Entry:
    """A spec plus what the repo holds for it."""

    spec: Spec
    file: Path

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def results_dir(self) -> Path:
        return data_root() / "reproductions" / self.id

    @property
    def status(self) -> str:
        """catalogued / implemented / reproduced, derived from files, never typed by hand."""
        if self.spec.reproduction is not None and (self.results_dir / "verdicts.json").is_file():
            return "reproduced"
        if self.spec.implementation:
            return "implemented"
        return "catalogued"

    def verdict_counts(self) -> dict[str, int]:
        """Verdict -> number of claims, from the recorded ``verdicts.json`` (empty when none).

        Raises ValueError naming the file when it cannot be read as verdicts.
        """
        f = self.results_dir / "verdicts.json"
        if not f.is_file():
            return {}
        counts: dict[str, int] = {}
        try:
            for v in json.loads(f.read_text())["claims"].values():
                counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"{_rel(f)}: not a verdicts file; re-run `python -m zoo.reproduce {self.id}`") from None
        return counts


@functools.lru_cache(maxsize=1)
def _load_all_cached(root: str) -> dict[str, Entry]:
    specs = Path(root, "specs")
    if not specs.is_dir():  # an empty listing would hide a broken install or a wrong ZOO_ROOT
        raise SpecError(
            specs,
            "(folder)",
            "no specs folder; run in a checkout, set ZOO_ROOT to one, or install a wheel built from the repository",
        )
    entries: dict[str, Entry] = {}
    for f in sorted(specs.glob("*.yaml")):
        entries[f.stem] = Entry(load_spec(f), f)
    return entries


def load_all() -> dict[str, Entry]:
    """Every entry by id; the first invalid spec raises :class:`SpecError`."""
    return _load_all_cached(str(data_root()))


def get(entry_id: str) -> Entry:
    """The entry for ``entry_id``; an unknown id raises :class:`SpecError` naming near matches."""
    f = specs_dir() / f"{entry_id}.yaml"
    if not f.is_file():
        import difflib

        ids = [p.stem for p in specs_dir().glob("*.yaml")]
        near = difflib.get_close_matches(entry_id, ids, n=3)
        hint = f"did you mean {', '.join(near)}?" if near else "run `python -m zoo.catalogue` to list ids"
        raise SpecError(_rel(f), "id", f"unknown id {entry_id!r}; {hint}")
    return Entry(load_spec(f), f)


def list_entries(
    family: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    text: str | None = None,
) -> list[Entry]:
    """Entries filtered by family, kind, status and a case-insensitive text search."""
    out = []
    for e in load_all().values():
        s = e.spec
        if family and s.family.value != family:
            continue
        if kind and s.kind.value != kind:
            continue
        if status and e.status != status:
            continue
        if text and text.lower() not in f"{s.id} {s.title} {s.summary}".lower():
            continue
        out.append(e)
    return out


def resolve(path: str) -> Any:
    """Import ``module:Name`` and return the object (this may import torch)."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zoo.catalogue", description="List and filter the zoo's papers.")
    ap.add_argument("--family", choices=[f.value for f in Family])
    ap.add_argument("--kind", choices=[k.value for k in Kind])
    ap.add_argument("--status", choices=STATUSES)
    ap.add_argument("--text", help="case-insensitive search in id, title and summary")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    try:
        entries = list_entries(args.family, args.kind, args.status, args.text)
        verdicts = {e.id: e.verdict_counts() for e in entries} if args.json else {}
    except (SpecError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        rows = [
            {
                "id": e.id,
                "title": e.spec.title,
                "family": e.spec.family.value,
                "kind": e.spec.kind.value,
                "status": e.status,
                "listings": e.spec.listings,
                "verdicts": verdicts[e.id],
            }
            for e in entries
        ]
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    for e in entries:
        print(f"{e.id:<44} {e.spec.family.value:<22} {e.spec.kind.value:<16} {e.status:<12} {e.spec.title}")
    print(f"{len(entries)} entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
