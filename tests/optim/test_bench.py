"""Tests for zoo.bench (the optimizer and start-up benchmarks): shapes, records, command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from zoo.bench import STARTUP_BUDGET_S, gpt_shapes, main, startup_times


@pytest.mark.parametrize("n", [3e5, 20e6, 300e6])
def test_gpt_shapes_hit_the_requested_size(n: float) -> None:
    shapes = gpt_shapes(n)
    total = sum(math.prod(s) for s in shapes)
    assert abs(total - n) / n < 0.1, f"{total / 1e6:.2f}M parameters for a {n / 1e6:g}M request"
    assert any(len(s) == 1 for s in shapes) and any(len(s) == 2 for s in shapes)  # biases/norms and matrices


def test_optim_bench_writes_a_complete_record(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert (
            main(
                [
                    "optim",
                    "--params",
                    "3e5",
                    "--device",
                    "cpu",
                    "--iters",
                    "1",
                    "--rounds",
                    "1",
                    "--threads",
                    "1",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    record = json.loads(out.read_text())
    assert record["provenance"]["device"] == "cpu" and record["provenance"]["torch"] == torch.__version__
    assert record["copy_bandwidth_GBps"] > 0
    rows = {r["name"]: r for r in record["results"]}
    for name in ("zoo.DAdaptAdam", "zoo.DAdaptSGD", "zoo.DAdaptAdaGrad", "torch.AdamW(foreach)"):
        r = rows[name]
        assert r["ms_per_step"] > 0 and r["roofline_ms"] > 0
        assert r["ratio_to_roofline"] == pytest.approx(r["ms_per_step"] / r["roofline_ms"], rel=0.02)
    if "dadaptation.DAdaptAdam" in rows:  # the reference package is a test extra
        assert rows["zoo.DAdaptAdam"]["speedup_vs_reference"] > 0
    from zoo.optim.registry import list_optimizers

    for info in list_optimizers():  # the registry drives it: every zoo optimizer is benchmarked
        r = rows[f"zoo.{info.cls.__name__}"]
        assert r["ms_per_step"] > 0 and r["ratio_to_fused_adamw"] > 0, info.name
    assert "zoo.DAdaptAdam" in capsys.readouterr().out


def test_startup_bench_writes_a_complete_record(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "startup.json"
    assert main(["startup", "--runs", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["benchmark"] == "startup" and record["runs"] == 1
    rows = {r["command"]: r for r in record["results"]}
    assert set(rows) == {"python -c pass", "python -m zoo.catalogue", "python -m zoo.status"}
    for r in rows.values():
        assert len(r["times_s"]) == 1 and r["median_s"] == r["min_s"] == r["times_s"][0] > 0
        assert 0 < r["median_cpu_s"]
    assert rows["python -m zoo.status"]["budget_s"] == STARTUP_BUDGET_S and rows["python -c pass"]["budget_s"] is None
    assert "python -m zoo.catalogue" in capsys.readouterr().out


def test_startup_bench_refuses_a_failing_command() -> None:
    with pytest.raises(RuntimeError, match="`broken` exited with 1: boom"):
        startup_times({"broken": ["-c", "import sys; sys.exit('boom')"]}, runs=1)


def test_the_recorded_bench_lists_every_zoo_optimizer_with_both_ratios() -> None:
    """reproductions/_bench/optim-cpu.json covers the registry: a new optimizer needs a new bench record."""
    import json

    from tests.conftest import REPO
    from zoo.optim.registry import list_optimizers

    rec = json.loads((REPO / "reproductions" / "_bench" / "optim-cpu.json").read_text())
    rows = {r["name"]: r for r in rec["results"]}
    for info in list_optimizers():
        row = rows.get(f"zoo.{info.cls.__name__}")
        assert row is not None, f"zoo.{info.cls.__name__} is not in the bench record; re-run `python -m zoo.bench optim --out ...`"
        assert row["ratio_to_fused_adamw"] is not None
        if info.reference:
            assert row["speedup_vs_reference"] is not None, info.name
