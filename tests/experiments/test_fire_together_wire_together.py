"""The fire-together experiment's wiring: exported metrics, expected MACs from the masks used, options matter."""

from __future__ import annotations

import torch

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.experiments._compressbench import fit, pretrain, setting_config
from zoo.experiments.fire_together_wire_together import EXPERIMENT
from zoo.pruning.dynamic_mask_prediction import DynamicMaskedMLP, expected_macs
from zoo.workloads.classification import make_task

FIRE_ONLY = ("expected_macs", "expected_macs_ratio", "estimated_macs_ratio", "predictor_macs", "kept_units",
             "mask_agreement")


def test_quick_run_metrics_come_from_the_exported_model(tmp_path):
    m = quick_run_metrics("fire_together_wire_together", tmp_path, workers=1,
                          skip=lambda arm, metric: metric in FIRE_ONLY and not arm.startswith("fire"))
    for a in ("fire", "fire_randinit"):
        # the dynamic model keeps every weight plus its predictors; its cost is the expected one
        assert m[a]["macs"][0] > m["dense"]["macs"][0] and m[a]["expected_macs"][0] > m[a]["predictor_macs"][0] > 0
        assert m[a]["expected_macs_ratio"][0] == m[a]["expected_macs"][0] / m["dense"]["macs"][0]
    assert m["fire"]["expected_macs"][0] < 0.5 * m["dense"]["macs"][0]  # SVD-initialised predictors gate at once
    assert m["l1"]["macs"][0] < m["dense"]["macs"][0]
    assert m["l1"]["macs"][0] == 784 * 60 + 60 * 20 + 20 * 10  # 80% of each hidden layer removed


def _setup():
    cfg, _ = spec_budget("fire_together_wire_together")
    env = quick_env()
    data = EXPERIMENT.setup(cfg, env)
    scfg = {**setting_config(cfg, None), "epochs": 1, "latency_repeats": 1}
    task = make_task(scfg, next(iter(data.values())), 0)
    torch.manual_seed(0)
    base = {k: v.clone() for k, v in pretrain(task, scfg, 0, "cpu").state_dict().items()}
    return scfg, task, base


def test_fire_arm_reports_the_cost_of_its_test_masks_and_options_matter(monkeypatch):
    scfg, task, base = _setup()
    seen = {}
    real = expected_macs

    def spy(model, x, **kw):
        out = real(model, x, **kw)
        seen.setdefault("calls", []).append((model.mode, x.shape[0], out["macs"]))
        return out

    monkeypatch.setattr("zoo.experiments.fire_together_wire_together.expected_macs", spy)
    outs = {}
    for name, opts in {"a": {"mass": 0.7, "svd_init": True}, "b": {"mass": 0.95, "svd_init": True},
                       "c": {"mass": 0.7, "svd_init": False}}.items():
        torch.manual_seed(0)
        outs[name] = fit("fire_together", opts, task, scfg, 0, "cpu", base).metrics
    # before training: the targets on the training split; after: the predicted masks on the test split
    assert seen["calls"][0][:2] == ("target", task.n_train)
    assert seen["calls"][1][:2] == ("predicted", task.x_test.shape[0])
    assert outs["a"]["expected_macs"] == seen["calls"][1][2]
    assert outs["b"]["expected_macs"] > outs["a"]["expected_macs"]  # more mass, more units
    assert outs["b"]["estimated_macs_ratio"] > outs["a"]["estimated_macs_ratio"]
    assert outs["c"]["test_acc"] != outs["a"]["test_acc"]
    for o in outs.values():  # every accuracy is the exported dynamic model's, masks included
        assert o["export_gap"] < 1e-4 and o["masked_test_acc"] == o["test_acc"]
    torch.manual_seed(0)
    l1 = fit("l1_channel", {"ratio": 0.8}, task, scfg, 0, "cpu", base).metrics
    torch.manual_seed(0)
    dense = fit("dense", {}, task, scfg, 0, "cpu", base).metrics
    assert l1["export_gap"] < 1e-4 and l1["bytes"] < dense["bytes"] / 4 and l1["nonzero"] < dense["nonzero"] / 4


def test_arms_share_the_pretrained_start():
    scfg, task, base = _setup()
    torch.manual_seed(0)
    d = fit("dense", {}, task, {**scfg, "epochs": 0}, 0, "cpu", base).metrics
    torch.manual_seed(0)
    f = fit("fire_together", {"mass": 1.0}, task, {**scfg, "epochs": 0}, 0, "cpu", base).metrics
    # with r = 1 and the untrained predictors (bias +1 keeps every unit) the dynamic model is the dense one
    assert f["test_acc"] == d["test_acc"] and f["kept_units"] == 1.0
    net = DynamicMaskedMLP(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)))
    assert len(net.predictors) == 1
