"""The DVC pipeline, derived from the catalogue, and DVC-compatible hashing. No torch, no DVC import.

``dvc.yaml`` has one stage per reproducible entry, named after its id, whose ``cmd`` is
``python -m zoo.reproduce <id>``. Its deps are what the recorded result depends on: the spec,
the implementation and experiment modules, the shared training utilities and the datasets it
reads; its outs are the files in ``reproductions/<id>/``, kept in git (``cache: false``) so a fresh
clone shows them. ``python -m zoo.pipeline`` rewrites ``dvc.yaml``; a test checks it is current.

The hashes here are DVC's own (md5 of a file; for a directory, md5 of the sorted JSON listing of
its files' md5s, suffixed ``.dir``), so ``zoo.status`` can tell current from stale in
milliseconds without starting DVC; a test checks they agree with ``dvc status``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any, Iterator

import yaml

from zoo.catalogue import Entry, load_all, load_yaml, module_file, repo_root

__all__ = ["lock_problems", "SHARED_STAGES", "SharedStage", "shared_stage_deps", "shared_stage_problems", "write_shared_lock_stage", "SHARED_DEPS", "RESULT_FILES", "METRIC_FILES", "stage_deps", "dvc_yaml", "write_dvc_yaml", "md5_path", "lock_entry", "write_lock_stage", "main"]

SHARED_DEPS = ["zoo/training", "zoo/experiment.py", "zoo/harness.py", "zoo/results.py"]
METRIC_FILES = ["metrics.json", "verdicts.json"]
RESULT_FILES = [*METRIC_FILES, "provenance.json", "curves.json", "jobs.json", "plot.png"]


class SharedStage:
    """A recorded stage that several entries depend on (a family's tuned baselines), not a paper.

    Its ``outs`` are in git like an entry's. An entry that uses them depends on its ``reads`` file,
    so a new recording makes exactly those entries stale: either the spec lists the file in
    ``reproduction.code``, or (``reader``) some ``lr`` of the spec's ``reproduction.config``
    is the string ``"tuned"`` and its experiment's code imports ``reader`` (the harness that
    resolves that string from the file).
    """

    def __init__(self, name: str, module: str, data: list[str], outs: list[str], cmd: str,
                 reader: str | None = None, reads: list[str] | None = None,
                 asks: Callable[[Any], bool] | None = None) -> None:
        self.name, self.module, self.data, self.outs, self.cmd = name, module, data, outs, cmd
        self.reads, self.reader = outs[0], reader
        self.read_files = list(reads or [outs[0]])  # what a reading entry depends on
        self.asks = asks or _asks_tuned_lr

    def read_by(self, entry: Entry) -> bool:
        r = entry.spec.reproduction
        if r is None:
            return False
        if any(f in r.code for f in self.read_files):
            return True
        if self.reader is None or not self.asks(r.config):
            return False
        modules = [p.split(":")[0] for p in [*entry.spec.implementation, r.experiment]]
        return self.reader in {_rel(f) for f in code_closure(modules)}


def _asks_shared_denoiser(node: Any) -> bool:
    """Whether some key of the (nested) config is ``shared_denoiser`` (a recipe name or a list of them)."""
    if isinstance(node, dict):
        return any((k == "shared_denoiser" and v) or _asks_shared_denoiser(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_asks_shared_denoiser(v) for v in node)
    return False


def _asks_tuned_lr(node: Any) -> bool:
    """Whether some ``lr`` key in the (nested) config is the string ``"tuned"``."""
    if isinstance(node, dict):
        return any((k == "lr" and v == "tuned") or _asks_tuned_lr(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_asks_tuned_lr(v) for v in node)
    return False


SHARED_STAGES: dict[str, SharedStage] = {
    "baselines_optim": SharedStage(
        "baselines_optim", "zoo.experiments._optim_tuning", ["digits", "mnist1d", "mnist5k"],
        ["reproductions/_baselines/optim/tuned.json", "reproductions/_baselines/optim/jobs.json"],
        "python -m zoo.baselines optim --record",
    ),
    "baselines_compress": SharedStage(
        "baselines_compress", "zoo.experiments._compress_tuning", ["digits", "mnist5k"],
        ["reproductions/_baselines/compress/tuned.json", "reproductions/_baselines/compress/jobs.json"],
        "python -m zoo.baselines compress --record", reader="zoo/experiments/_compressbench.py",
    ),
    "baselines_diffusion": SharedStage(
        "baselines_diffusion", "zoo.experiments._diffusion_models", ["digits"],
        ["reproductions/_baselines/diffusion/denoisers.json", "reproductions/_baselines/diffusion/denoisers.pt",
         "reproductions/_baselines/diffusion/jobs.json"],
        "python -m zoo.baselines diffusion --record", reader="zoo/experiments/_diffbench.py",
        reads=["reproductions/_baselines/diffusion/denoisers.json", "reproductions/_baselines/diffusion/denoisers.pt"],
        asks=_asks_shared_denoiser,
    ),
}


def active_shared_stages() -> list[SharedStage]:
    """The shared stages some entry depends on (see :meth:`SharedStage.read_by`)."""
    entries = list(load_all().values())
    return [st for st in SHARED_STAGES.values() if any(st.read_by(e) for e in entries)]


def shared_stage_deps(stage: SharedStage) -> list[str]:
    return sorted({*SHARED_DEPS, *(f"data/{d}" for d in stage.data), *_module_deps([stage.module])})


def _module_deps(modules: list[str]) -> set[str]:
    """Repo-relative source files of ``modules``' import closure, those under :data:`SHARED_DEPS` left out."""
    deps = set()
    for f in code_closure(modules):
        rel = _rel(f)
        if not any(rel == d or rel.startswith(d + "/") for d in SHARED_DEPS):
            deps.add(rel)
    return deps


def _rel(p: Path) -> str:
    # Not resolve(): a root whose folders are symlinks (as in tests) must stay the root.
    return Path(os.path.abspath(p)).relative_to(repo_root()).as_posix()


def _zoo_imports(path: Path) -> set[str]:
    """``zoo.*`` modules imported by a source file (absolute imports only, as the zoo uses)."""
    return set(_zoo_imports_cached(path, path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=None)
def _zoo_imports_cached(path: Path, mtime_ns: int) -> frozenset[str]:
    # Keyed by mtime: `zoo.status` asks for every entry's closure twice, and a file edited since is parsed again.
    mods: set[str] = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("zoo."):
            mods.add(node.module)
            mods.update(f"{node.module}.{a.name}" for a in node.names)  # `from zoo.x import module`
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names if a.name.startswith("zoo."))
    return frozenset(mods)


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones included (imports are statements, so expressions can be
    skipped: a few times faster than ``ast.walk`` over every node)."""
    for node in body:
        yield node
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(node, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield from _statements(inner)
        for block in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
            yield from _statements(block.body)


def code_closure(modules: list[str]) -> set[Path]:
    """Source files of ``modules`` and every ``zoo.*`` module they import, transitively,
    including the ``__init__.py`` of each sub-package (importing a module runs it)."""
    seen: set[Path] = set()
    todo = list(modules)
    while todo:
        mod = todo.pop()
        parts = mod.split(".")
        for i in range(2, len(parts) + 1):
            f = module_file(".".join(parts[:i]))
            if f is None or f in seen:
                continue
            seen.add(f)
            todo.extend(_zoo_imports(f))
    return seen


def stage_deps(entry: Entry) -> list[str]:
    """Repo-relative paths the recorded result of ``entry`` depends on, sorted."""
    r = entry.spec.reproduction
    assert r is not None
    modules = [p.split(":")[0] for p in [*entry.spec.implementation, r.experiment]]
    shared = {f for st in SHARED_STAGES.values() if st.read_by(entry) for f in st.read_files}
    return sorted({f"specs/{entry.id}.yaml", *SHARED_DEPS, *r.code, *shared, *(f"data/{d}" for d in r.data),
                   *_module_deps(modules)})


def dvc_yaml() -> dict[str, Any]:
    stages: dict[str, Any] = {}
    for e in load_all().values():
        if e.spec.reproduction is None:
            continue
        out = f"reproductions/{e.id}"
        stages[e.id] = {
            "cmd": f"python -m zoo.reproduce {e.id}",
            "deps": stage_deps(e),
            "outs": [{f"{out}/{f}": {"cache": False}} for f in RESULT_FILES if f not in METRIC_FILES],
            "metrics": [{f"{out}/{f}": {"cache": False}} for f in METRIC_FILES],
        }
    for st in active_shared_stages():
        stages[st.name] = {"cmd": st.cmd, "deps": shared_stage_deps(st), "outs": [{o: {"cache": False}} for o in st.outs]}
    return {"stages": stages}


HEADER = "# Generated by `python -m zoo.pipeline` from specs/: edit the specs, not this file.\n"


def render() -> str:
    return HEADER + yaml.safe_dump(dvc_yaml(), sort_keys=False)


def write_dvc_yaml() -> Path:
    path = repo_root() / "dvc.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(render())
    os.replace(tmp, path)
    return path


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5_path(path: Path) -> str | None:
    """DVC's md5 of a file or directory (``...dir`` for directories); None if missing.

    Like DVC, directory listings skip ``.dvcignore``d names; we only ignore ``__pycache__``
    (listed in ``.dvcignore``).
    """
    if path.is_file():
        return _md5_file(path)
    if not path.is_dir():
        return None
    items = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            p = Path(dirpath, name)
            items.append({"md5": _md5_file(p), "relpath": p.relative_to(path).as_posix()})
    items.sort(key=lambda d: d["relpath"])
    return hashlib.md5(json.dumps(items, sort_keys=True).encode()).hexdigest() + ".dir"


def _lock_item(root: Path, rel: str) -> dict[str, Any]:
    """One ``dvc.lock`` dep/out record, as DVC 3 writes it (md5, size, and nfiles for a directory)."""
    path = root / rel
    md5 = md5_path(path)
    if md5 is None:
        raise FileNotFoundError(f"{rel}: missing; cannot lock a stage whose dependency or output is absent")
    item: dict[str, Any] = {"path": rel, "hash": "md5", "md5": md5}
    if path.is_dir():
        files = [Path(d, f) for d, dirs, fs in os.walk(path) for f in fs if "__pycache__" not in Path(d).parts]
        item["size"] = sum(f.stat().st_size for f in files)
        item["nfiles"] = len(files)
    else:
        item["size"] = path.stat().st_size
    return item


def lock_entry(entry: Entry) -> dict[str, Any]:
    """The ``dvc.lock`` stage of ``entry`` for the files as they are now (what ``dvc commit`` would write)."""
    root = repo_root()
    out = f"reproductions/{entry.id}"
    return {
        "cmd": f"python -m zoo.reproduce {entry.id}",
        "deps": [_lock_item(root, d) for d in stage_deps(entry)],
        "outs": [_lock_item(root, f"{out}/{f}") for f in sorted(RESULT_FILES)],
    }


def write_lock_stage(entry: Entry) -> Path:
    """Replace ``entry``'s stage in ``dvc.lock`` (others kept as they are), atomically."""
    return _write_lock(entry.id, lock_entry(entry))


def write_shared_lock_stage(stage: SharedStage) -> Path:
    """Replace the shared ``stage`` in ``dvc.lock`` with the files as they are now."""
    root = repo_root()
    return _write_lock(stage.name, {"cmd": stage.cmd, "deps": [_lock_item(root, d) for d in shared_stage_deps(stage)],
                                    "outs": [_lock_item(root, o) for o in sorted(stage.outs)]})


def shared_stage_problems(lock: dict[str, Any]) -> list[str]:
    """Why each shared stage is not current (empty when all are): missing, a dep or an out changed."""
    problems = []
    for st in active_shared_stages():
        rec = lock.get(st.name)
        fix = f"re-record with `{st.cmd}`"
        if rec is None:
            problems.append(f"{st.name}: not in dvc.lock; {fix}")
            continue
        problems += [f"{st.name}: {p}" for p in lock_problems(rec, shared_stage_deps(st), fix, f"restore it or {fix}")]
    return problems


def lock_problems(locked_stage: dict[str, Any], wanted: list[str], fix: str, outs_fix: str) -> list[str]:
    """Why a ``dvc.lock`` stage is not current: its dependency set, a dependency or an output changed.

    ``wanted`` is the stage's dependency list as it should be now; ``fix`` ends the messages about
    dependencies, ``outs_fix`` those about outputs.
    """
    root = repo_root()
    problems = []
    locked = {d["path"]: d.get("md5") for d in locked_stage.get("deps", [])}
    for p in sorted(set(wanted) ^ set(locked)):
        problems.append(f"dependency set changed ({p}); {fix}")
    for p in wanted:
        if p not in locked:
            continue
        now = md5_path(root / p)
        if now is None:
            hint = "run `python -m zoo.data prepare`" if p.startswith("data/") else "restore it"
            problems.append(f"{p} is missing; {hint}")
        elif now != locked[p]:
            problems.append(f"{p} changed since the recorded run; {fix}")
    for o in locked_stage.get("outs", []):
        if md5_path(root / o["path"]) != o.get("md5"):
            problems.append(f"{o['path']} differs from dvc.lock; {outs_fix}")
    return problems


def _write_lock(name: str, stage: dict[str, Any]) -> Path:
    path = repo_root() / "dvc.lock"
    lock: dict[str, Any] = {"schema": "2.0", "stages": {}}
    if path.is_file():
        lock = load_yaml(path.read_text()) or lock
        lock.setdefault("stages", {})
    lock["stages"][name] = stage
    order = [e.id for e in load_all().values() if e.spec.reproduction is not None] + list(SHARED_STAGES)
    lock["stages"] = {k: lock["stages"][k] for k in sorted(lock["stages"], key=lambda k: (k not in order, order.index(k) if k in order else 0, k))}
    tmp = path.with_suffix(".lock.tmp")
    tmp.write_text(yaml.safe_dump(lock, sort_keys=False))
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    path = write_dvc_yaml()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
