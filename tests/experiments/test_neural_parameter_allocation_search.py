"""The NPAS experiment's wiring: each shared arm builds the mapping and budget it names from one init; metrics are the stored model's."""

from __future__ import annotations

import json

import torch

from tests.conftest import REPO
from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.experiments._compressbench import fit, setting_config
from zoo.experiments.neural_parameter_allocation_search import SharedMethod
from zoo.layers.parameter_sharing import SharedMLP
from zoo.workloads.classification import load_base, make_task

ID = "neural_parameter_allocation_search"


def _cfg():
    cfg, _ = spec_budget(ID)
    return setting_config(cfg, None)


def _task(cfg, seed=0):
    torch.manual_seed(seed)
    return make_task(cfg, load_base(cfg["dataset"], REPO / "data", "cpu"), seed)


def _opts(spec):
    return {k: v for k, v in spec.items() if k != "method"}


def test_each_shared_arm_builds_its_mapping_and_budget():
    cfg = _cfg()
    widths = [64, *cfg["model"]["hidden"], 10]
    weights = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    for arm, spec in cfg["arms"].items():
        if spec["method"] != "shared":
            continue
        net = SharedMethod(_task(cfg), cfg, _opts(spec), arm).attach(torch.nn.Identity())
        assert isinstance(net, SharedMLP)
        assert net.bank.theta.numel() == round(spec["budget"] * weights), arm
        assert {layer.mapping for layer in net.layers} == {spec["mapping"]}, arm
        assert [(layer.in_features, layer.out_features) for layer in net.layers] == list(zip(widths[:-1], widths[1:]))


def test_shared_arms_share_the_init_draw_and_the_mapping_changes_the_result():
    cfg = _cfg()
    banks = {}
    for arm in ("ssn2", "repeat2", "hash2"):
        task = _task(cfg)
        torch.manual_seed(0)
        banks[arm] = SharedMethod(task, cfg, _opts(cfg["arms"][arm]), arm).attach(None).bank.theta.detach()
    assert torch.equal(banks["ssn2"], banks["repeat2"]) and torch.equal(banks["ssn2"], banks["hash2"])
    outs = {}
    for arm in ("ssn2", "repeat2"):
        task = _task(cfg)
        outs[arm] = fit("shared", _opts(cfg["arms"][arm]), task, cfg, 0, "cpu", arm=arm)
    assert outs["ssn2"].series["train_loss"] != outs["repeat2"].series["train_loss"]
    # the mixing coefficients are stored: 4 per layer
    assert outs["ssn2"].metrics["params"] == outs["repeat2"].metrics["params"] + 4 * 3


def test_quick_run_metrics_come_from_the_stored_shared_model(tmp_path):
    m = quick_run_metrics(ID, tmp_path, workers=1)
    jobs = json.loads((tmp_path / "jobs.json").read_text())
    cfg = _cfg()
    assert {j["arm"] for j in jobs} == set(cfg["arms"])
    widths = [64, *cfg["model"]["hidden"], 10]
    weights = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    biases = sum(widths[1:])
    for j in jobs:
        mt = j["metrics"]
        assert mt["export_gap"] < 1e-4
        assert abs(mt["masked_test_acc"] - mt["test_acc"]) < 1e-9
        spec = cfg["arms"][j["arm"]]
        if spec["method"] == "shared":
            extra = 4 * (len(widths) - 1) if spec["mapping"] == "wavg" else 0
            assert mt["params"] == round(spec["budget"] * weights) + biases + extra, j["arm"]
            assert mt["payload_bytes"] == 4 * mt["params"]
        else:
            assert mt["params"] == weights + biases
    assert m["ssn2"]["compression"][0] > 15 and m["ssn10"]["compression"][0] > 5
    assert m["dense"]["compression"][0] == 1.0
