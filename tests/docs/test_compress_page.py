"""The compression families' page: accuracy against the exported models' bytes and latency, from the recorded jobs."""

from __future__ import annotations

import json
import statistics

from zoo.catalogue import load_all
from zoo.docs import family_path, generate
from zoo.docs_compress import pareto_front, pareto_path, pareto_points


def test_pareto_front_keeps_only_the_undominated_points_by_cost():
    pts = [(10.0, 90.0), (5.0, 80.0), (20.0, 85.0), (5.0, 70.0), (30.0, 95.0), (1.0, 50.0)]
    assert pareto_front(pts) == [(1.0, 50.0), (5.0, 80.0), (10.0, 90.0), (30.0, 95.0)]


def test_points_are_the_recorded_jobs_means_of_the_exported_models():
    entries = load_all()
    e = entries["trainable_gate_pruning"]
    jobs = json.loads((e.results_dir / "jobs.json").read_text())
    rows = [j["metrics"] for j in jobs if j["arm"] == "tg_50"]
    pts = {(p[0], p[1]): p for p in pareto_points([e])["mnist5k"]}
    _, _, acc, size, lat, n = pts[("trainable_gate_pruning", "tg_50")]
    assert n == len(rows) == 5
    assert acc == statistics.fmean(r["test_acc"] for r in rows)
    assert size == statistics.fmean(r["bytes"] for r in rows)
    assert lat == statistics.fmean(r["latency_ms"] for r in rows)
    # a setting's jobs are named after their arm and setting, on the dataset the setting trains on
    rp = pareto_points([entries["random_pruning_sparse_training"]])
    assert set(rp) == {"digits"} and any(p[1] == "erk90 [w8]" for p in rp["digits"])


def test_family_pages_carry_the_plot_and_every_compression_entry():
    entries = load_all()
    files = generate(entries)
    page = files[family_path("pruning")]
    assert "## Accuracy against size and latency of the exported models" in page
    assert pareto_path("pruning").rpartition("/")[2] in page
    assert files[pareto_path("pruning")][:8] == b"\x89PNG\r\n\x1a\n"
    for eid in ("trainable_gate_pruning", "lobster_sensitivity_regularization", "random_search_sparse_baseline"):
        assert f"papers/{eid}.md" in page.split("## Accuracy against")[1]
    assert pareto_path("quantization") in files
