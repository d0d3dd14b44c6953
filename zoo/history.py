"""The recorded results' history, read from git, and the proof that claims were pre-registered. No torch.

Every commit that changed ``reproductions/<id>/verdicts.json`` or its ``provenance.json`` is one
recorded version: its verdicts and the provenance of the run behind them. From these versions
:func:`registration_problems` proves the append-only contract:

* the current record's run came from a clean commit that exists here, and that commit's spec
  already held every claim the run decided, with the same condition, preconditions and rule;
* every claim that ever received a verdict still has, at HEAD, exactly the condition,
  preconditions and rule it had when its *first* verdict was recorded (so editing a claim and then
  re-recording does not hide the edit), and it was not deleted (retire it with ``superseded``).

All blobs are read through one ``git cat-file --batch`` process, so this costs a few git calls per
entry, not one per file.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.catalogue import Entry, load_yaml, repo_root
from zoo.spec import Claim

__all__ = ["RecordedVersion", "recorded_versions", "registration_problems", "claim_edit_problems", "is_git_checkout", "GitBlobs"]

WORKING_TREE = "working tree"

@dataclass(frozen=True)
class RecordedVersion:
    """One recorded version of an entry's result."""

    commit: str  # the commit that changed verdicts.json or provenance.json, or WORKING_TREE for an uncommitted record
    date: str  # ISO 8601 commit date ("" for the working tree)
    run_commit: str  # provenance.commit of the recorded run
    run_dirty: bool
    device: str  # provenance.device_name
    started: str
    wall_time_s: float
    verdicts: dict[str, dict]  # claim id -> raw verdict dict of that version


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)


def is_git_checkout(root: Path | None = None) -> bool:
    root = root or repo_root()
    try:
        res = _git(root, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0 and Path(res.stdout.strip()).resolve() == root.resolve()


class GitBlobs:
    """``<commit>:<path>`` contents through one ``git cat-file --batch`` process (None when absent)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._proc: subprocess.Popen | None = None
        self._cache: dict[str, str | None] = {}

    def __enter__(self) -> "GitBlobs":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait(timeout=10)

    def get(self, commit: str, path: str) -> str | None:
        key = f"{commit}:{path}"
        if key in self._cache:
            return self._cache[key]
        if self._proc is None:
            self._proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=self.root, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(key.encode() + b"\n")
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().decode().split()
        out: str | None = None
        if len(header) == 3 and header[1] == "blob":
            data = self._proc.stdout.read(int(header[2]))
            self._proc.stdout.readline()  # the newline after the contents
            out = data.decode("utf-8", errors="replace")
        elif len(header) == 3:  # a tree or another object: read and drop it
            self._proc.stdout.read(int(header[2]))
            self._proc.stdout.readline()
        self._cache[key] = out
        return out


def _version(commit: str, date: str, verdicts_text: str | None, prov_text: str | None) -> RecordedVersion | None:
    try:
        verdicts = json.loads(verdicts_text or "")["claims"]
        prov = json.loads(prov_text or "{}")
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(verdicts, dict):
        return None
    return RecordedVersion(
        commit=commit,
        date=date,
        run_commit=str(prov.get("commit", "")),
        run_dirty=bool(prov.get("dirty", True)),
        device=str(prov.get("device_name", prov.get("device", ""))),
        started=str(prov.get("started", "")),
        wall_time_s=float(prov.get("wall_time_s", 0.0) or 0.0),
        verdicts=verdicts,
    )


def recorded_versions(entry_id: str, root: Path | None = None, blobs: GitBlobs | None = None) -> list[RecordedVersion]:
    """The recorded versions of ``entry_id``'s result, oldest first ([] outside a git checkout).

    An uncommitted record in the working tree (different from HEAD's) comes last, as
    :data:`WORKING_TREE`.
    """
    root = root or repo_root()
    if not is_git_checkout(root):
        return []
    rel = f"reproductions/{entry_id}"
    # A re-run with the same verdicts is still a new record: its provenance changes.
    log = _git(root, "log", "--format=%H %cI", "--", f"{rel}/verdicts.json", f"{rel}/provenance.json")
    if log.returncode != 0:
        return []
    commits = [ln.split(" ", 1) for ln in reversed(log.stdout.splitlines()) if ln.strip()]
    own = blobs is None
    blobs = blobs or GitBlobs(root)
    try:
        out = []
        for commit, date in commits:
            v = _version(commit, date, blobs.get(commit, f"{rel}/verdicts.json"), blobs.get(commit, f"{rel}/provenance.json"))
            if v is not None:
                out.append(v)
        work_v, work_p = root / rel / "verdicts.json", root / rel / "provenance.json"
        if work_v.is_file():
            text = work_v.read_text(encoding="utf-8")
            prov = work_p.read_text(encoding="utf-8") if work_p.is_file() else None
            if text != blobs.get("HEAD", f"{rel}/verdicts.json") or prov != blobs.get("HEAD", f"{rel}/provenance.json"):
                v = _version(WORKING_TREE, "", text, prov)
                if v is not None:
                    out.append(v)
    finally:
        if own:
            blobs.__exit__(None, None, None)
    return out


def _claims_at(blobs: GitBlobs, commit: str, entry_id: str) -> dict[str, Claim] | None:
    """The claims of ``specs/<id>.yaml`` at ``commit`` (None when the file is absent there)."""
    text = blobs.get(commit, f"specs/{entry_id}.yaml")
    if text is None:
        return None
    raw = load_yaml(text) or {}
    out: dict[str, Claim] = {}
    for c in raw.get("claims") or []:
        try:
            claim = Claim.model_validate(c)
        except Exception:  # noqa: BLE001 - an old spec the schema can no longer read: compare what we can
            continue
        out[claim.id] = claim
    return out


def registration_problems(entry: Entry, root: Path | None = None) -> list[str]:
    """Why ``entry``'s recorded claims are not provably pre-registered and unedited ([] when they are)."""
    record, edits = _problems(entry, root or repo_root())
    return record + edits


def claim_edit_problems(entry: Entry, root: Path | None = None) -> list[str]:
    """Recorded claims edited or deleted since their first verdict: what no re-record can fix.

    The current record's own faults (a dirty run, a claim its run commit lacked) are left out:
    re-recording from a clean commit is their fix, so ``--record`` checks only these.
    """
    return _problems(entry, root or repo_root())[1]


def _problems(entry: Entry, root: Path) -> tuple[list[str], list[str]]:
    """(faults of the current record, edits or deletions of recorded claims)."""
    if entry.spec.reproduction is None or not (entry.results_dir / "verdicts.json").is_file():
        return [], []
    spec_file = f"specs/{entry.id}.yaml"
    if not is_git_checkout(root):
        return [f"{root}: not a git checkout, so the claims' history cannot be proven; run the check in a clone"], []
    now = {c.id: c for c in entry.spec.claims}
    problems: list[str] = []
    edits: list[str] = []
    with GitBlobs(root) as blobs:
        versions = recorded_versions(entry.id, root, blobs)
        if not versions:
            return [f"reproductions/{entry.id}/verdicts.json has no readable recorded version; re-record with --record"], []
        cur = versions[-1]
        where = "the working tree's record" if cur.commit == WORKING_TREE else f"the record of commit {cur.commit[:10]}"
        if cur.run_dirty:
            problems.append(f"reproductions/{entry.id}/provenance.json: {where} ran from a dirty checkout; "
                            f"re-record from a clean commit with `python -m zoo.reproduce {entry.id} --record`")
        at_run = _claims_at(blobs, cur.run_commit, entry.id) if cur.run_commit else None
        if at_run is None:
            problems.append(f"reproductions/{entry.id}/provenance.json: run commit {cur.run_commit[:10] or '(none)'} "
                            f"is not in this clone or has no {spec_file}; re-record with --record (or fetch full history)")
        else:
            for cid in cur.verdicts:
                if cid not in at_run:
                    problems.append(f"{spec_file}: claims.{cid}: not in the spec at the run's commit {cur.run_commit[:10]}, "
                                    "so it was not registered before its run; re-record with --record")
                elif cid in now and at_run[cid].registered() != now[cid].registered():
                    problems.append(f"{spec_file}: claims.{cid}: differs from the spec at the run's commit "
                                    f"{cur.run_commit[:10]}; re-record with --record")
        first: dict[str, RecordedVersion] = {}
        for v in versions:
            for cid in v.verdicts:
                first.setdefault(cid, v)
        for cid, v in first.items():
            if cid not in now:
                edits.append(f"{spec_file}: claims.{cid}: recorded (commit {v.commit[:10]}) but deleted from the spec; "
                             "recorded claims are never deleted: restore it and mark it `superseded`")
                continue
            then = _claims_at(blobs, v.run_commit, entry.id) if v.run_commit else None
            if then is None or cid not in then:
                continue  # the first run predates a readable spec: the current-run check above covers it
            if then[cid].registered() != now[cid].registered():
                changed = [k for k in ("condition", "requires", "verdict_rule")
                           if then[cid].registered()[k] != now[cid].registered()[k]]
                edits.append(
                    f"{spec_file}: claims.{cid}: {', '.join(changed)} edited after its first verdict (recorded in "
                    f"commit {v.commit[:10]}, run at {v.run_commit[:10]}); claims are append-only: restore it and add "
                    "a new claim that supersedes it"
                )
    return problems, edits
