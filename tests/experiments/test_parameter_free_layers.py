"""The parameter-free-layers experiment's wiring: each arm builds the spatial operator it names; metrics are the exported model's."""

from __future__ import annotations

import json

import torch

from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.experiments._compressbench import fit, setting_config
from zoo.experiments.parameter_free_layers import PfNetMethod
from zoo.layers.parameter_free import spatial_ops
from zoo.workloads.classification import load_base, make_task
from tests.conftest import REPO


def _task(cfg, seed=0):
    torch.manual_seed(seed)
    return make_task(cfg, load_base(cfg["dataset"], REPO / "data", "cpu"), seed)


def test_each_arm_builds_its_spatial_operator():
    cfg, _ = spec_budget("parameter_free_layers")
    cfg = setting_config(cfg, None)
    for arm, spec in cfg["arms"].items():
        opts = {k: v for k, v in spec.items() if k != "method"}
        model = PfNetMethod(_task(cfg), cfg, opts, arm).attach(torch.nn.Identity())
        ops = spatial_ops(model)
        assert ops[spec["spatial"]] >= 4, (arm, ops)
        if spec["spatial"] != "dwconv":
            assert ops["dwconv"] == 0


def test_arms_share_init_and_data_and_the_option_changes_the_result():
    cfg, _ = spec_budget("parameter_free_layers")
    cfg = setting_config(cfg, None)
    outs = {}
    for arm in ("dwconv", "maxpool"):
        task = _task(cfg)
        outs[arm] = fit("pf_net", {"spatial": arm}, task, cfg, 0, "cpu", arm=arm)
    # the same init draw: the shared 1x1 convs/stem start identical across arms
    torch.manual_seed(0)
    a = PfNetMethod(_task(cfg), cfg, {"spatial": "dwconv"}).attach(None)
    torch.manual_seed(0)
    b = PfNetMethod(_task(cfg), cfg, {"spatial": "maxpool"}).attach(None)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert outs["dwconv"].metrics["params"] > outs["maxpool"].metrics["params"]
    assert outs["dwconv"].metrics["macs"] > outs["maxpool"].metrics["macs"]


def test_quick_run_metrics_come_from_the_exported_model(tmp_path):
    m = quick_run_metrics("parameter_free_layers", tmp_path, workers=1)
    jobs = json.loads((tmp_path / "jobs.json").read_text())
    assert {j["arm"] for j in jobs} == {"dwconv", "maxpool", "avgpool"}
    for j in jobs:
        assert j["metrics"]["export_gap"] < 1e-4
        assert abs(j["metrics"]["masked_test_acc"] - j["metrics"]["test_acc"]) < 1e-9
    assert m["maxpool"]["macs_ratio"][0] < 0.9 and m["maxpool"]["compression"][0] > 1.1
