"""Recorded results: their file schemas, claim evaluation and atomic writing. No torch.

A run directory (``reproductions/<id>/`` for the recorded full run) holds:

* ``metrics.json``    per arm, per metric, one value per seed (and the seeds);
* ``verdicts.json``   one verdict per claim, with the statistics that decided it;
* ``provenance.json`` commit, dirty flag, device, versions, seeds, wall time, overrides, config;
* ``curves.json``     the training/analysis curves behind the plot;
* ``plot.png``        the plot.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zoo.spec import Claim, Spec

__all__ = [
    "Metrics",
    "ClaimVerdict",
    "Verdicts",
    "Provenance",
    "evaluate_claim",
    "evaluate_claims",
    "write_run_dir",
    "read_json_model",
    "ResultsError",
]

Verdict = Literal["verified", "refuted", "inconclusive"]


class ResultsError(Exception):
    """A results file that is missing or fails its schema; one line naming file and fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metrics(_Strict):
    entry: str
    seeds: list[int]
    arms: dict[str, dict[str, list[float]]] = Field(description="arm -> metric -> value per seed")

    def values(self, ref: str) -> list[float]:
        arm, metric = ref.split(".")
        try:
            return self.arms[arm][metric]
        except KeyError:
            raise KeyError(f"metric {ref!r} was not produced (arms: {sorted(self.arms)})") from None


class ClaimVerdict(_Strict):
    verdict: Verdict
    condition: str
    rule: str
    n: int
    mean: float
    sem: float
    low: float
    high: float
    per_seed: list[float]


class Verdicts(_Strict):
    entry: str
    claims: dict[str, ClaimVerdict]


class Provenance(_Strict):
    entry: str
    commit: str
    dirty: bool
    device: str
    device_name: str
    python: str
    torch: str
    packages: dict[str, str]
    seeds: list[int]
    quick: bool
    overrides: list[str]
    config: dict[str, Any]
    started: str
    wall_time_s: float
    host: str
    command: str


def _summary(values: list[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return m, sem


def _holds(claim: Claim, x: float) -> bool:
    c = claim.condition
    if c.op == ">=":
        return x >= c.threshold
    if c.op == "<=":
        return x <= c.threshold
    return abs(x - c.threshold) <= (c.tolerance or 0.0)


def evaluate_claim(claim: Claim, metrics: Metrics) -> ClaimVerdict:
    """Decide one claim from per-seed metrics, by the claim's verdict rule (see VerdictRule)."""
    c, rule = claim.condition, claim.verdict_rule
    per_seed = list(metrics.values(c.metric))
    if c.minus is not None:
        other = metrics.values(c.minus)
        per_seed = [a - b for a, b in zip(per_seed, other, strict=True)]
    if any(math.isnan(v) for v in per_seed):
        verdict: Verdict = "inconclusive"
        m, sem = float("nan"), float("nan")
        low = high = float("nan")
    else:
        m, sem = _summary(per_seed)
        if rule.rule == "every_seed":
            low, high = min(per_seed), max(per_seed)
            ok = [_holds(claim, v) for v in per_seed]
            verdict = "verified" if all(ok) else "refuted" if not any(ok) else "inconclusive"
        else:
            low, high = m - rule.k * sem, m + rule.k * sem
            if c.op == "within":
                lo_band, hi_band = c.threshold - c.tolerance, c.threshold + c.tolerance
                if lo_band <= low and high <= hi_band:
                    verdict = "verified"
                elif high < lo_band or low > hi_band:
                    verdict = "refuted"
                else:
                    verdict = "inconclusive"
            else:
                ok_low, ok_high = _holds(claim, low), _holds(claim, high)
                verdict = "verified" if ok_low and ok_high else "refuted" if not (ok_low or ok_high) else "inconclusive"
    rule_s = "every seed" if rule.rule == "every_seed" else f"mean ± {rule.k:g}·sem"
    return ClaimVerdict(
        verdict=verdict,
        condition=c.describe(),
        rule=rule_s,
        n=len(per_seed),
        mean=m,
        sem=sem,
        low=low,
        high=high,
        per_seed=per_seed,
    )


def evaluate_claims(spec: Spec, metrics: Metrics) -> Verdicts:
    return Verdicts(entry=spec.id, claims={c.id: evaluate_claim(c, metrics) for c in spec.claims})


def read_json_model(path: Path, model: type[BaseModel]) -> Any:
    """Read and validate a results file, raising :class:`ResultsError` with a one-line reason."""
    if not path.is_file():
        raise ResultsError(f"{path}: missing; re-run the reproduction to record it")
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except Exception as e:  # pydantic.ValidationError or JSON error
        first = str(e).splitlines()
        detail = "; ".join(first[1:3]).strip() if len(first) > 1 else first[0]
        raise ResultsError(f"{path}: fails the {model.__name__} schema ({detail}); re-run the reproduction") from None


def _dump(obj: Any) -> str:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n"


def write_run_dir(dest: Path, files: dict[str, Any]) -> None:
    """Write ``files`` (name -> model, JSON-able object or bytes) as the new contents of ``dest``.

    Everything is written into a temporary sibling first, then swapped in with renames, so a
    crash at any point leaves either the old directory or the new one, never a mixture.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
    try:
        for name, content in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(_dump(content), encoding="utf-8")
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
