"""Claim evaluation and atomic result writing."""

from __future__ import annotations

import json

import pytest

import math

from zoo.results import (
    Metrics,
    ResultsError,
    Verdicts,
    evaluate_claim,
    evaluate_claims,
    read_json_model,
    student_t_quantile,
    write_run_dir,
)
from zoo.spec import Claim, Spec


def _claim(op=">=", threshold=0.0, rule="interval", tolerance=None, minus="b.acc", requires=(), **rule_kw):
    cond = {"metric": "a.acc", "op": op, "threshold": threshold}
    if minus:
        cond["minus"] = minus
    if tolerance is not None:
        cond["tolerance"] = tolerance
    vr = {"rule": rule, **({"k": 2.0} if rule == "interval" else {}), **rule_kw}
    return Claim(id="c", paper="p", statement="s", condition=cond, verdict_rule=vr, requires=list(requires))


def _metrics(a, b):
    return Metrics(entry="x", seeds=list(range(len(a))), arms={"a": {"acc": a}, "b": {"acc": b}})


def test_paired_difference_verified():
    v = evaluate_claim(_claim(), _metrics([90, 91, 92], [89, 90, 91]))
    assert v.verdict == "verified" and v.per_seed == [1, 1, 1] and v.sem == 0


def test_refuted_when_whole_interval_fails():
    assert evaluate_claim(_claim(), _metrics([80, 81, 82], [89, 90, 91])).verdict == "refuted"


def test_inconclusive_when_interval_straddles():
    assert evaluate_claim(_claim(), _metrics([91, 89, 90.5], [90, 90, 90])).verdict == "inconclusive"


def test_within_band():
    c = _claim(op="within", threshold=-1.0, tolerance=0.2, minus=None)
    assert evaluate_claim(c, _metrics([-1.05, -0.95, -1.0], [0, 0, 0])).verdict == "verified"
    assert evaluate_claim(c, _metrics([-2.0, -2.1, -1.9], [0, 0, 0])).verdict == "refuted"


def test_every_seed_rule():
    c = _claim(rule="every_seed")
    assert evaluate_claim(c, _metrics([1, 2, 3], [0, 0, 0])).verdict == "verified"
    assert evaluate_claim(c, _metrics([1, -2, 3], [0, 0, 0])).verdict == "inconclusive"
    assert evaluate_claim(c, _metrics([-1, -2, -3], [0, 0, 0])).verdict == "refuted"


def test_nan_is_inconclusive():
    assert evaluate_claim(_claim(), _metrics([float("nan"), 1, 1], [0, 0, 0])).verdict == "inconclusive"


def test_write_run_dir_replaces_atomically(tmp_path):
    dest = tmp_path / "r"
    write_run_dir(dest, {"a.json": {"x": 1}})
    write_run_dir(dest, {"b.json": {"y": 2}, "p.png": b"png"})
    assert sorted(p.name for p in dest.iterdir()) == ["b.json", "p.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_run_dir_failure_keeps_old(tmp_path):
    dest = tmp_path / "r"
    write_run_dir(dest, {"a.json": {"x": 1}})

    class Boom:
        pass

    with pytest.raises(TypeError):
        write_run_dir(dest, {"a.json": {"x": 2}, "b.json": Boom()})
    assert json.loads((dest / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_read_json_model_errors(tmp_path):
    with pytest.raises(ResultsError, match="missing"):
        read_json_model(tmp_path / "verdicts.json", Verdicts)
    bad = tmp_path / "verdicts.json"
    bad.write_text('{"entry": "x", "claims": {"c": {"verdict": "maybe"}}}')
    with pytest.raises(ResultsError, match="verdicts.json: fails the Verdicts schema"):
        read_json_model(bad, Verdicts)


# ----------------------------------------------------------------------------- Student-t
@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 30, 200])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.95, 0.975, 0.995, 0.025])
def test_student_t_quantile_matches_scipy(p, df):
    scipy_stats = pytest.importorskip("scipy.stats")
    assert student_t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-12)


def test_student_t_quantile_known_values():
    # Printed tables: t_{0.975, 4} = 2.776, t_{0.975, 1} = 12.706, t_{0.95, 10} = 1.812.
    assert student_t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert student_t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert student_t_quantile(0.95, 10) == pytest.approx(1.8125, abs=1e-4)


def test_student_t_interval_is_mean_plus_minus_t_sem():
    diffs = [0.5, 1.5, 0.2, 1.1, 0.9]  # paired differences a - b
    v = evaluate_claim(_claim(rule="student_t"), _metrics([90 + d for d in diffs], [90] * 5))
    m = sum(diffs) / 5
    sem = math.sqrt(sum((d - m) ** 2 for d in diffs) / 4) / math.sqrt(5)
    assert v.mean == pytest.approx(m) and v.sem == pytest.approx(sem)
    assert v.low == pytest.approx(m - 2.7764451 * sem, abs=1e-6) and v.high == pytest.approx(m + 2.7764451 * sem, abs=1e-6)
    assert v.verdict == "verified" and v.rule == "Student-t 95% interval"


def test_student_t_is_stricter_than_two_sem_with_few_seeds():
    # mean 1, sem 0.4: mean - 2 sem = 0.2 > 0 but mean - 2.776 sem < 0.
    a = [1.0 + x for x in (-0.8944, 0.8944, 0.0, -0.4472 * 2, 0.4472 * 2)]
    two_sem = evaluate_claim(_claim(rule="interval"), _metrics(a, [0] * 5))
    t95 = evaluate_claim(_claim(rule="student_t"), _metrics(a, [0] * 5))
    assert two_sem.verdict == "verified" and t95.verdict == "inconclusive"


def test_confidence_level_is_used():
    a = [1.0, 1.2, 0.8, 1.1, 0.9]
    wide = evaluate_claim(_claim(rule="student_t", confidence=0.999), _metrics(a, [0] * 5))
    narrow = evaluate_claim(_claim(rule="student_t", confidence=0.8), _metrics(a, [0] * 5))
    assert (wide.high - wide.low) > 2 * (narrow.high - narrow.low)
    assert wide.rule == "Student-t 99.9% interval"


def test_student_t_with_one_seed_decides_nothing():
    v = evaluate_claim(_claim(rule="student_t"), _metrics([5.0], [0.0]))
    assert v.verdict == "inconclusive" and math.isinf(v.high)


# ----------------------------------------------------------------------------- preconditions
def _headroom_claim():
    # "a beats b by 5 points", meaningful only while b is below 95 (a ceiling at 100).
    return _claim(threshold=5.0, rule="student_t", requires=[{"metric": "b.acc", "op": "<=", "threshold": 95.0}])


def test_failed_precondition_makes_the_claim_untestable():
    v = evaluate_claim(_headroom_claim(), _metrics([99.0, 99.5, 99.2, 99.9, 99.4], [98.0, 98.2, 97.9, 98.1, 98.3]))
    assert v.verdict == "untestable"
    assert [q.verdict for q in v.requires] == ["refuted"] and v.requires[0].condition == "b.acc <= 95"
    assert v.mean == pytest.approx(1.3)  # the main condition's value is still reported


def test_met_precondition_lets_the_condition_decide():
    v = evaluate_claim(_headroom_claim(), _metrics([86.0, 87.0, 86.5, 86.8, 87.2], [80.0, 80.5, 80.2, 79.8, 80.1]))
    assert v.verdict == "verified" and v.requires[0].verdict == "verified"
    v = evaluate_claim(_headroom_claim(), _metrics([81.0, 81.0, 81.5, 80.8, 81.2], [80.0, 80.5, 80.2, 79.8, 80.1]))
    assert v.verdict == "refuted"


def test_undecided_precondition_is_untestable_too():
    v = evaluate_claim(_headroom_claim(), _metrics([99.0, 90.0, 99.0, 92.0, 95.0], [96.0, 90.0, 97.0, 92.0, 94.0]))
    assert v.requires[0].verdict == "inconclusive" and v.verdict == "untestable"


def test_verdict_records_what_was_registered():
    c = _headroom_claim()
    v = evaluate_claim(c, _metrics([86.0] * 5, [80.0] * 5))
    assert v.registered == c.registered()
    assert v.registered["verdict_rule"] == {"rule": "student_t", "confidence": 0.95, "k": None}
    assert v.registered["requires"][0]["threshold"] == 95.0


def test_superseded_claims_are_not_evaluated():
    spec = Spec.model_validate({
        "id": "x", "title": "t", "family": "other", "kind": "method", "listings": ["000"],
        "summary": "s" * 40, "central_claim": "c", "small_scale": {"level": "yes", "how": "toy"},
        "reproduction": {"experiment": "m:EXPERIMENT", "config": {}, "seeds": [0, 1, 2, 3, 4], "quick": {},
                         "arms": {"a": "A", "b": "B"}, "metrics": {"acc": "accuracy"}},
        "claims": [
            {"id": "old", "paper": "p", "statement": "s", "condition": {"metric": "a.acc", "op": ">=", "threshold": 0},
             "verdict_rule": {"rule": "interval", "k": 2}, "superseded": {"by": "new", "reason": "it tested the wrong split."}},
            {"id": "new", "paper": "p", "statement": "s", "condition": {"metric": "a.acc", "op": ">=", "threshold": 0}},
        ],
    })
    v = evaluate_claims(spec, _metrics([1.0] * 5, [0.0] * 5))
    assert list(v.claims) == ["new"]
