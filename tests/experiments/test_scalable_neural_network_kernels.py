"""The SNNK experiment's wiring: arms build the random-feature models they name; metrics are the exported model's."""

from __future__ import annotations

import json

import torch

from tests.conftest import REPO
from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.experiments._compressbench import fit, setting_config
from zoo.experiments.scalable_neural_network_kernels import SNNKMethod
from zoo.layers.snnk import RandomFeatures
from zoo.workloads.classification import load_base, make_task


def _task(cfg, seed=0):
    torch.manual_seed(seed)
    return make_task(cfg, load_base(cfg["dataset"], REPO / "data", "cpu"), seed)


def test_arms_build_their_feature_count_and_activation():
    cfg = setting_config(spec_budget("scalable_neural_network_kernels")[0], None)
    for arm, spec in cfg["arms"].items():
        if spec["method"] != "snnk":
            continue
        opts = {k: v for k, v in spec.items() if k != "method"}
        model = SNNKMethod(_task(cfg), cfg, opts, arm).attach(None)
        rf = model[0]
        assert isinstance(rf, RandomFeatures) and rf.g.shape == (spec["features"], 64)
        assert rf.activation == spec["activation"] and rf.input_scale == spec["input_scale"]


def test_option_changes_result_and_trainable_count():
    cfg = setting_config(spec_budget("scalable_neural_network_kernels")[0], None)
    a = fit("snnk", {"features": 16}, _task(cfg), cfg, 0, "cpu", arm="a").metrics
    b = fit("snnk", {"features": 32}, _task(cfg), cfg, 0, "cpu", arm="b").metrics
    assert a["params"] == 16 * 100 + 100 + 1010 and b["params"] == 32 * 100 + 100 + 1010
    assert a["params"] == a["trainable"]
    assert a["kerr_ratio"] < 0.5 and a["kerr_m16"] > a["kerr_m1024"]


def test_quick_run_metrics_come_from_the_exported_model(tmp_path):
    m = quick_run_metrics("scalable_neural_network_kernels", tmp_path, workers=1,
                          skip=lambda arm, metric: arm == "dense" and metric.startswith("kerr"))
    jobs = json.loads((tmp_path / "jobs.json").read_text())
    for j in jobs:
        assert j["metrics"]["export_gap"] < 1e-4
    assert m["snnk_exp"]["compression"][0] > 1.0 and m["snnk_exp"]["params"][0] < m["dense"]["params"][0] / 5
