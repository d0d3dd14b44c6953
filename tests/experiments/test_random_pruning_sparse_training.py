"""Wiring of random_pruning_sparse_training: exported sparse models, shared init, options matter."""

from __future__ import annotations

import pytest
import torch

from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.experiments._compressbench import fit, setting_config
from zoo.workloads.classification import load_base, make_task
from zoo.catalogue import repo_root

ID = "random_pruning_sparse_training"


def test_quick_run_metrics_come_from_the_exported_model(tmp_path):
    m = quick_run_metrics(ID, tmp_path, workers=1, skip=lambda arm, metric: arm == "dense" and metric.endswith("mask_density"))
    for a, s in (("erk50", 0.5), ("erk90", 0.9)):
        assert m[a]["w8_export_gap"][0] < 1e-4
        assert m[a]["w8_mask_density"][0] == pytest.approx(1 - s, abs=0.005)
        # exported non-zeros = kept weights + dense biases
        assert m[a]["w8_kept_params"][0] == pytest.approx(1 - s, abs=0.03)
        assert m[a]["w8_bytes"][0] < m["dense"]["w8_bytes"][0]
        assert m[a]["w8_nonzero"][0] < m["dense"]["w8_nonzero"][0]


def _job(options, method="random_mask", seed=0):
    cfg, _ = spec_budget(ID, quick=True)
    scfg = setting_config(cfg, "w4")
    scfg["latency_repeats"] = 1
    base = load_base(scfg["dataset"], repo_root() / "data", "cpu")
    task = make_task(scfg, base, seed)
    torch.manual_seed(seed)
    return fit(method, options, task, scfg, seed, "cpu")


def test_arms_share_init_and_the_sparsity_option_matters():
    a = _job({"sparsity": 0.9})
    b = _job({"sparsity": 0.9})
    assert a.metrics["test_acc"] == b.metrics["test_acc"] and a.metrics["nonzero"] == b.metrics["nonzero"]
    c = _job({"sparsity": 0.5})
    assert c.metrics["nonzero"] > 3 * a.metrics["nonzero"] / 2
    d = _job({"sparsity": 0.9, "allocation": "uniform"})
    assert d.metrics["nonzero"] != a.metrics["nonzero"]
