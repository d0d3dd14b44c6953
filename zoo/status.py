"""``python -m zoo.status [--check] [--json]``: where every catalogue entry stands.

For each entry: its status (catalogued / implemented / reproduced), its verdict counts, and
whether its recorded result is *current* (every dependency and output hashes as ``dvc.lock``
recorded it) or *stale* (something changed since), with the device and date of the run.

``--check`` exits non-zero, naming the entry and the fix, when a spec is invalid, ``dvc.yaml`` is
not what the catalogue generates, ``dvc.lock`` is unreadable, a recorded result is stale or
missing for an implemented entry, a results file fails its schema, a recorded verdict
disagrees with its metrics under the spec's current claims, or the claims' git history does not
prove them pre-registered and unedited (:func:`zoo.history.registration_problems`: the run came
from a clean commit that already held its claims; no recorded claim's condition, preconditions
or rule changed since its first verdict). No torch and no DVC import: it runs in well under a
second.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.catalogue import Entry, SpecError, load_all, load_yaml, repo_root
from zoo.pipeline import HEADER, RESULT_FILES, dvc_yaml, lock_problems, shared_stage_problems, stage_deps
from zoo.results import Metrics, Provenance, ResultsError, Verdicts, evaluate_claims, read_json_model

__all__ = ["EntryStatus", "LockError", "collect", "read_lock", "check_dvc_yaml", "main"]


class LockError(Exception):
    """``dvc.lock`` cannot be read; one line naming the file and the fix."""


@dataclass
class EntryStatus:
    id: str
    title: str
    family: str
    kind: str
    status: str
    verdicts: dict[str, int] = field(default_factory=dict)
    result: str = "none"  # none | current | stale | missing | invalid
    problems: list[str] = field(default_factory=list)
    device: str = ""
    date: str = ""
    wall_time_s: float | None = None
    commit: str = ""


def read_lock(root: Path | None = None) -> dict[str, Any]:
    """The stages of ``dvc.lock`` (empty when there is none)."""
    path = (root or repo_root()) / "dvc.lock"
    if not path.exists():
        return {}
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise LockError(f"dvc.lock: not valid YAML{where}; restore it with `git checkout dvc.lock` or re-lock with `dvc commit -f`") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("stages", {}), dict):
        raise LockError("dvc.lock: expected a mapping with `stages`; restore it with `git checkout dvc.lock`")
    stages = raw.get("stages") or {}
    for name, st in stages.items():
        if not isinstance(st, dict) or not all(isinstance(x, dict) and "path" in x for x in st.get("deps", []) + st.get("outs", [])):
            raise LockError(f"dvc.lock: stage {name!r} is malformed (deps/outs need `path` and `md5`); restore it with `git checkout dvc.lock`")
    return stages


def _declared_deps() -> dict[str, list[str]]:
    """Each stage's deps as ``dvc.yaml`` declares them (empty when it is missing or unreadable)."""
    path = repo_root() / "dvc.yaml"
    try:
        stages = (load_yaml(path.read_text()) or {}).get("stages", {})
        return {k: list(v.get("deps", [])) for k, v in stages.items()}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}


def _freshness(entry: Entry, lock: dict[str, Any], declared: dict[str, list[str]] | None = None) -> tuple[str, list[str]]:
    """Current or stale, with the reasons. ``declared`` (dvc.yaml's deps) spares recomputing the
    import closure; a new import can only come with an edit to a file already hashed, so plain
    ``zoo.status`` loses nothing, and ``--check`` recomputes it (and checks dvc.yaml) anyway."""
    st = lock.get(entry.id)
    if st is None:
        return "stale", [f"not in dvc.lock; record it with `python -m zoo.reproduce {entry.id} --record`"]
    wanted = (declared or {}).get(entry.id) or stage_deps(entry)
    problems = lock_problems(st, wanted, f"re-record with `python -m zoo.reproduce {entry.id} --record`",
                             "restore it or re-run the reproduction")
    return ("stale" if problems else "current"), problems


def _entry_status(entry: Entry, lock: dict[str, Any], history: bool = False,
                  declared: dict[str, list[str]] | None = None) -> EntryStatus:
    s = entry.spec
    es = EntryStatus(s.id, s.title, s.family.value, s.kind.value, entry.status)
    if s.reproduction is None:
        return es
    d = entry.results_dir
    if not d.exists():
        es.result = "missing"
        es.problems.append(f"no recorded result in reproductions/{s.id}/; run `python -m zoo.reproduce {s.id}`")
        return es
    try:
        for f in RESULT_FILES:
            if not (d / f).is_file():
                raise ResultsError(f"reproductions/{s.id}/{f}: missing; re-run `python -m zoo.reproduce {s.id}`")
        metrics = read_json_model(d / "metrics.json", Metrics)
        verdicts = read_json_model(d / "verdicts.json", Verdicts)
        prov = read_json_model(d / "provenance.json", Provenance)
    except ResultsError as e:
        es.result = "invalid"
        es.problems.append(str(e).replace(str(repo_root()) + "/", ""))
        return es
    es.device, es.date, es.wall_time_s, es.commit = prov.device_name, prov.started, prov.wall_time_s, prov.commit[:10]
    for v in verdicts.claims.values():
        es.verdicts[v.verdict] = es.verdicts.get(v.verdict, 0) + 1
    try:
        again = evaluate_claims(s, metrics)
    except KeyError as e:
        es.problems.append(f"reproductions/{s.id}/metrics.json: {e.args[0]}; re-run the reproduction")
    else:
        if {k: v.verdict for k, v in again.claims.items()} != {k: v.verdict for k, v in verdicts.claims.items()}:
            es.problems.append(
                f"reproductions/{s.id}/verdicts.json disagrees with its metrics under the spec's current claims; re-run the reproduction"
            )
    es.result, more = _freshness(entry, lock, None if history else declared)
    es.problems.extend(more)
    if history:
        from zoo.history import registration_problems

        es.problems.extend(registration_problems(entry))
    return es


def collect(history: bool = False) -> list[EntryStatus]:
    """The status of every entry; raises SpecError / LockError for a broken spec or lock.

    ``history`` (what ``--check`` runs) adds the git-history proof that recorded claims were
    pre-registered and never edited, and recomputes each stage's import closure instead of
    reading it from ``dvc.yaml``.
    """
    lock = read_lock()
    declared = None if history else _declared_deps()
    return [_entry_status(e, lock, history, declared) for e in load_all().values()]


def check_dvc_yaml() -> list[str]:
    """Problems with ``dvc.yaml`` (empty when it is what the catalogue generates).

    Compared as data, not text: parsing with libyaml is ten times faster than emitting YAML in
    pure Python, and formatting does not matter to DVC.
    """
    path = repo_root() / "dvc.yaml"
    stale = ["dvc.yaml is not what the catalogue generates; run `python -m zoo.pipeline`"]
    if not path.is_file():
        return stale
    text = path.read_text()
    try:
        same = text.startswith(HEADER) and load_yaml(text) == dvc_yaml()
    except yaml.YAMLError:
        same = False
    return [] if same else stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zoo.status", description="Reproduction status of every entry.")
    ap.add_argument("--check", action="store_true", help="exit 1 on any stale, missing or inconsistent result")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--all", action="store_true", help="also list catalogued entries (default: implemented only)")
    args = ap.parse_args(argv)
    try:
        rows = collect(history=args.check)
        global_problems = [*check_dvc_yaml(), *shared_stage_problems(read_lock())] if args.check else []
    except (SpecError, LockError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if not args.check else 1
    if args.json:
        json.dump({"entries": [asdict(r) for r in rows], "problems": global_problems}, sys.stdout, indent=1)
        print()
    else:
        shown = rows if args.all else [r for r in rows if r.status != "catalogued"]
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        print(f"{len(rows)} entries: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        for r in shown:
            v = " ".join(f"{n} {k}" for k, n in sorted(r.verdicts.items())) or "-"
            print(f"{r.id:<32} {r.status:<12} {r.result:<8} {v:<40} {r.device[:40]:<40} {r.date}")
            for p in r.problems:
                print(f"    ! {p}")
        for p in global_problems:
            print(f"! {p}")
    if args.check:
        bad = [(r.id, p) for r in rows for p in r.problems] + [("dvc.yaml", p) for p in global_problems]
        for eid, p in bad:
            print(f"check failed: {eid}: {p}", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
