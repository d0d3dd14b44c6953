"""The diffusion families' pages: samples per arm and the fidelity-diversity plot, from the recorded jobs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from types import SimpleNamespace

from zoo.catalogue import load_all
from zoo.docs import family_path, generate
from zoo.docs_diffusion import fidelity_path, fidelity_points, sample_sets, samples_png

PNG = b"\x89PNG\r\n\x1a\n"


def _entry(tmp: Path, jobs: list[dict], config: dict | None = None) -> SimpleNamespace:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    return SimpleNamespace(id="fake_entry", results_dir=tmp,
                           spec=SimpleNamespace(reproduction=SimpleNamespace(config=config or {})))


def _job(arm: str, seed: int, acc: float, dim: int | None) -> dict:
    series = {}
    if dim is not None:
        series = {"samples": [0.5] * (dim * 4), "sample_labels": [0.0, 0.0, 1.0, 1.0]}
    return {"arm": arm, "seed": seed, "metrics": {"class_acc": acc, "diversity": 0.9, "fd": 0.1}, "series": series}


def test_samples_and_points_come_from_the_jobs(tmp_path: Path) -> None:
    jobs = [_job("w1", 0, 80.0, 64), _job("w1", 1, 90.0, None), _job("pts", 0, 70.0, 2), _job("pts", 1, 72.0, None),
            _job("digits_w0", 0, 50.0, None), _job("weird", 0, 10.0, None)]
    e = _entry(tmp_path, jobs, {"shared_denoiser": "digits"})
    sets = sample_sets(e)
    assert set(sets) == {"w1", "pts"} and sets["w1"][0] == 64 and sets["pts"][0] == 2 and sets["w1"][2] == [0, 0, 1, 1]
    pts = fidelity_points([e])
    # the domain comes from the samples' dimension, else from the arm's name; an arm with neither is left out
    assert {p[1] for p in pts["digits"]} == {"w1", "digits_w0"} and {p[1] for p in pts["gmm"]} == {"pts"}
    w1 = next(p for p in pts["digits"] if p[1] == "w1")
    assert w1[2] == statistics.fmean([80.0, 90.0]) and w1[5] == 2
    assert samples_png(e)[:8] == PNG


def test_guidance_page_carries_the_fidelity_plot_and_the_cfg_entry() -> None:
    entries = load_all()
    files = generate(entries)
    page = files[family_path("guidance")]
    assert "## Fidelity against diversity" in page and fidelity_path("guidance").rpartition("/")[2] in page
    assert files[fidelity_path("guidance")][:8] == PNG
    assert "papers/classifier_free_guidance.md" in page.split("## Fidelity against diversity")[1]
