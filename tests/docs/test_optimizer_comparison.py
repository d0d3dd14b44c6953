"""The optimizer family page gathers every recorded optimizer arm on every shared workload."""

from __future__ import annotations

import re

from zoo import docs
from zoo.catalogue import load_all


def _optimizer_entries():
    return [e for e in load_all().values() if e.spec.family.value == "optimizer"]


def test_every_recorded_suite_entry_appears_under_each_of_its_workloads():
    es = _optimizer_entries()
    page = docs.family_page("optimizer", {e.id: e for e in es})
    rows = docs.comparison_rows(es)
    for e in es:
        r = e.spec.reproduction
        rec = docs.read_recorded(e)
        if r is None or rec.metrics is None or not isinstance(r.config.get("workloads"), list):
            continue
        for w in r.config["workloads"]:
            have = [a for a, ms in rec.metrics.arms.items() if f"{w}_test_acc" in ms or f"{w}_subopt" in ms]
            if have:
                assert {(x[0].id, x[1]) for x in rows[w]} >= {(e.id, a) for a in have}, (e.id, w)
                assert f"### `{w}`" in page
    if rows:
        assert "## Every optimizer on the shared workloads" in page


def test_the_interval_is_a_student_t_interval():
    # 5 seeds: mean 2, sd 1.5811 -> half-width t(0.975, 4) * sd / sqrt(5) = 2.7764 * 0.7071 = 1.963
    cell = docs._interval([0.0, 1.0, 2.0, 3.0, 4.0])
    lo, hi = map(float, re.findall(r"-?\d+\.\d+", cell)[1:3])
    assert abs(lo - (2 - 1.963)) < 0.05 and abs(hi - (2 + 1.963)) < 0.05  # shown to one decimal here
    assert docs._interval([0.0, 1.0, 2.0, 3.0, 4.0]) != docs._interval([0.0, 2.0, 2.0, 2.0, 4.0]), "the spread matters"
    assert docs._interval([5.0]) == "5 (1 seed)"
    assert docs._interval([]) == "–"


def test_the_tuned_baselines_table_lists_each_workload_and_baseline():
    lines = "\n".join(docs._tuned_table())
    if not lines:
        return  # no tuned record in this checkout
    for w in ("mnist1d_mlp", "digits_logreg", "lstsq"):
        assert f"`{w}`" in lines
    assert "`adam_cosine`" in lines and "`sgdm`" in lines
