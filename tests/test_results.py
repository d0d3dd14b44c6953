"""Claim evaluation and atomic result writing."""

from __future__ import annotations

import json

import pytest

from zoo.results import Metrics, ResultsError, Verdicts, evaluate_claim, read_json_model, write_run_dir
from zoo.spec import Claim


def _claim(op=">=", threshold=0.0, rule="interval", tolerance=None, minus="b.acc"):
    cond = {"metric": "a.acc", "op": op, "threshold": threshold}
    if minus:
        cond["minus"] = minus
    if tolerance is not None:
        cond["tolerance"] = tolerance
    return Claim(id="c", paper="p", statement="s", condition=cond, verdict_rule={"rule": rule, "k": 2.0})


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
