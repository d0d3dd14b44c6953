"""The loss-family pages gather every recorded classbench arm by setting, with a reliability-diagram plot."""

from __future__ import annotations

import math

import pytest

from zoo import docs
from zoo.catalogue import load_all
from zoo.docs_classification import FAMILIES, _pooled_reliability, comparison_rows, reliability_png, setting_label


def _entries(family: str):
    return [e for e in load_all().values() if e.spec.family.value == family]


def test_setting_label_says_what_the_arms_saw() -> None:
    assert setting_label({"dataset": "digits"}) == "digits"
    label = setting_label({"dataset": "mnist5k", "noise": {"kind": "symmetric", "rate": 0.4},
                           "labels_per_class": 10, "imbalance": {"ratio": 100}})
    assert label == "mnist5k · long-tail imbalance 100:1 · symmetric noise 40% · 10 labels per class"
    assert setting_label({"dataset": {"name": "synth", "classes": 20}, "binary": {"positive": [3], "pos_fraction": 0.05}}) \
        == "synth (20 classes) · class 3 vs rest, 5% positive"
    assert setting_label({"dataset": "digits", "noise": {"kind": "symmetric", "rate": 0.0}}) == "digits"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_recorded_classbench_arm_appears_under_its_setting(family: str) -> None:
    es = _entries(family)
    page = docs.family_page(family, {e.id: e for e in es})
    rows = comparison_rows(es)
    for e in es:
        rec = docs.read_recorded(e)
        r = e.spec.reproduction
        if r is None or rec.metrics is None:
            continue
        settings = list(r.config.get("settings") or [None])
        for s in settings:
            prefix = "" if s is None else f"{s}_"
            want = {(e.id, a) for a, ms in rec.metrics.arms.items() if f"{prefix}test_acc" in ms and f"{prefix}test_ece" in ms}
            cfg = {k: v for k, v in r.config.items() if k != "settings"}
            if s is not None:
                cfg.update(r.config["settings"][s] or {})
            got = {(x[0].id, x[1]) for x in rows.get(setting_label(cfg), []) if x[0].id == e.id and x[2] == s}
            assert got == want, (e.id, s)
    if rows:
        assert "## Every method on the shared settings" in page
        png = reliability_png(es)
        assert png is not None and png.startswith(b"\x89PNG")
        assert docs.reliability_path(family) in docs.generate()


def test_polyloss_reliability_is_pooled_from_its_jobs() -> None:
    e = load_all()["polyloss"]
    pooled = _pooled_reliability(e, "ce", None)
    if pooled is None:
        pytest.skip("polyloss has no recorded jobs with reliability bins")
    finite = [p for p in pooled if not math.isnan(p)]
    assert finite and all(0.0 <= p <= 1.0 for p in finite)
