"""Recorded results: their file schemas, claim evaluation and atomic writing. No torch.

A run directory (``reproductions/<id>/`` for the recorded full run) holds:

* ``metrics.json``    per arm, per metric, one value per seed (and the seeds);
* ``verdicts.json``   one verdict per claim, with the statistics that decided it;
* ``provenance.json`` commit, dirty flag, device, versions, seeds, wall time, overrides, config;
* ``curves.json``     the training/analysis curves behind the plot;
* ``jobs.json``       every (arm, seed) job's metrics and series, from which the rest is assembled;
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

from zoo.spec import Claim, Condition, Spec, VerdictRule

__all__ = [
    "Metrics",
    "ClaimVerdict",
    "Verdicts",
    "Provenance",
    "ConditionResult",
    "evaluate_condition",
    "evaluate_claim",
    "evaluate_claims",
    "student_t_quantile",
    "write_run_dir",
    "read_json_model",
    "ResultsError",
]

Verdict = Literal["verified", "refuted", "inconclusive", "untestable"]
Outcome = Literal["verified", "refuted", "inconclusive"]


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


class _Summary(_Strict):
    """Per-seed values of a condition's left-hand side and their interval under the claim's rule."""

    condition: str
    n: int
    mean: float
    sem: float
    low: float
    high: float
    per_seed: list[float]


class ConditionResult(_Summary):
    """One condition decided over per-seed values: a claim's own, or one of its preconditions."""

    verdict: Outcome


class ClaimVerdict(_Summary):
    """A claim's verdict: its condition's outcome, or ``untestable`` when a precondition is not verified."""

    verdict: Verdict
    rule: str
    requires: list[ConditionResult] = Field(default_factory=list)
    registered: dict[str, Any] | None = Field(
        default=None, description="the claim's condition, preconditions and rule as the run decided them"
    )


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
    workers: int = Field(default=1, description="parallel job processes the harness used")


def _summary(values: list[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return m, sem


# ----------------------------------------------------------------------------- Student-t
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (no SciPy: start-up stays fast).

    Bisection on the CDF, written with the regularized incomplete beta function; accurate to
    ~1e-12 (a test compares it with ``scipy.stats.t.ppf``).
    """
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"student_t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- verdicts
def _holds(c: Condition, x: float) -> bool:
    if c.op == ">=":
        return x >= c.threshold
    if c.op == "<=":
        return x <= c.threshold
    return abs(x - c.threshold) <= (c.tolerance or 0.0)


def _per_seed(c: Condition, metrics: Metrics) -> list[float]:
    values = list(metrics.values(c.metric))
    if c.minus is not None:
        other = metrics.values(c.minus)
        values = [a - b for a, b in zip(values, other, strict=True)]
    return values


def half_width(rule: VerdictRule, sem: float, n: int) -> float:
    """The interval's half-width for ``n`` seeds with standard error ``sem`` (inf when n < 2)."""
    if rule.rule == "student_t":
        if n < 2:
            return math.inf
        level = rule.confidence or 0.95
        return student_t_quantile(0.5 + level / 2.0, n - 1) * sem
    return (rule.k or 2.0) * sem


def evaluate_condition(c: Condition, rule: VerdictRule, metrics: Metrics) -> ConditionResult:
    """Decide one condition from per-seed metrics by ``rule`` (see :class:`zoo.spec.VerdictRule`)."""
    per_seed = _per_seed(c, metrics)
    n = len(per_seed)
    if n == 0 or any(math.isnan(v) for v in per_seed):
        nan = float("nan")
        return ConditionResult(verdict="inconclusive", condition=c.describe(), n=n, mean=nan, sem=nan, low=nan,
                               high=nan, per_seed=per_seed)
    m, sem = _summary(per_seed)
    verdict: Outcome
    if rule.rule == "every_seed":
        low, high = min(per_seed), max(per_seed)
        ok = [_holds(c, v) for v in per_seed]
        verdict = "verified" if all(ok) else "refuted" if not any(ok) else "inconclusive"
    else:
        h = half_width(rule, sem, n)
        low, high = m - h, m + h
        if c.op == "within":
            band_lo, band_hi = c.threshold - (c.tolerance or 0.0), c.threshold + (c.tolerance or 0.0)
            verdict = ("verified" if band_lo <= low and high <= band_hi
                       else "refuted" if high < band_lo or low > band_hi else "inconclusive")
        else:
            ok_low, ok_high = _holds(c, low), _holds(c, high)
            verdict = "verified" if ok_low and ok_high else "refuted" if not (ok_low or ok_high) else "inconclusive"
    return ConditionResult(verdict=verdict, condition=c.describe(), n=n, mean=m, sem=sem, low=low, high=high,
                           per_seed=per_seed)


def evaluate_claim(claim: Claim, metrics: Metrics) -> ClaimVerdict:
    """Decide one claim: ``untestable`` unless every precondition is verified, else its condition's outcome."""
    rule = claim.verdict_rule
    main = evaluate_condition(claim.condition, rule, metrics)
    pre = [evaluate_condition(q, rule, metrics) for q in claim.requires]
    verdict: Verdict = "untestable" if any(p.verdict != "verified" for p in pre) else main.verdict
    return ClaimVerdict(
        verdict=verdict,
        condition=main.condition,
        rule=rule.describe(),
        n=main.n,
        mean=main.mean,
        sem=main.sem,
        low=main.low,
        high=main.high,
        per_seed=main.per_seed,
        requires=pre,
        registered=claim.registered(),
    )


def evaluate_claims(spec: Spec, metrics: Metrics) -> Verdicts:
    """Every active claim of ``spec`` (superseded ones keep the verdicts recorded in the history)."""
    return Verdicts(entry=spec.id, claims={c.id: evaluate_claim(c, metrics) for c in spec.active_claims()})


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
