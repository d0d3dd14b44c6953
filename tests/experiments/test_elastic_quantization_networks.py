"""elastic_quantization_networks: sizes are the exported models', the export width is wired, and the
supernet's training does not depend on the width it is exported at."""

from __future__ import annotations

import json

import torch

from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.catalogue import repo_root
from zoo.experiments._compressbench import fit, setting_config
from zoo.workloads.classification import load_base, make_task
import zoo.experiments.elastic_quantization_networks  # noqa: F401  (registers the methods)

ID = "elastic_quantization_networks"


def test_quick_run_sizes_are_the_exported_models(tmp_path):
    m = quick_run_metrics(ID, tmp_path, workers=1)
    jobs = {r["arm"]: r["metrics"] for r in json.loads((tmp_path / "jobs.json").read_text())}
    for arm, v in m.items():
        assert max(v["export_gap"]) < 1e-4, arm
    for b in (2, 3, 4, 8):
        assert jobs[f"eq_b{b}"]["weight_bits"] == b == jobs[f"qat_b{b}"]["weight_bits"]
        assert m[f"eq_b{b}"]["bytes"][0] < m["dense"]["bytes"][0]
    bpp = [m[f"eq_b{b}"]["bits_per_param"][0] for b in (2, 3, 4, 8)]
    assert bpp == sorted(bpp) and 2.0 <= bpp[0] < 3.0 and 8.0 <= bpp[-1] < 9.0
    assert m["eq_b2"]["compression"][0] > 9.0


def _fit(method: str, opts: dict, epochs: int):
    cfg, _ = spec_budget(ID)
    scfg = setting_config({**cfg, "epochs": epochs, "pretrain_epochs": 0}, None)
    base = load_base(scfg["dataset"], repo_root() / "data", "cpu")
    torch.manual_seed(0)
    task = make_task(scfg, base, 0)
    return fit(method, opts, task, scfg, 0, "cpu")


def test_export_width_changes_the_size_but_not_the_supernet():
    lo, hi = _fit("eqnet", {"export_bits": 2}, 1), _fit("eqnet", {"export_bits": 8}, 1)
    assert lo.metrics["payload_bytes"] < 0.5 * hi.metrics["payload_bytes"]
    assert lo.metrics["weight_bits"] == 2 and hi.metrics["weight_bits"] == 8
    # the same seed trains the same supernet whatever the export width: identical training losses
    assert lo.series["train_loss"] == hi.series["train_loss"]


def test_arms_share_init_and_data():
    dense, q8 = _fit("dense", {}, 0), _fit("qat", {"bits": 8}, 0)
    eq8 = _fit("eqnet", {"export_bits": 8}, 0)
    # untrained: the same init at 8 bits is within rounding of the float model, and eq == static QAT at epoch 0
    assert abs(q8.metrics["test_acc"] - dense.metrics["test_acc"]) <= 3.0
    assert eq8.metrics["test_acc"] == q8.metrics["test_acc"]
