"""Wiring of l2_posttraining_size_compression: quick run, exported-model metrics, shared weights, options matter."""

import torch

from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.catalogue import repo_root
from zoo.experiments._compressbench import fit, pretrain, setting_config
from zoo.workloads.classification import load_base, make_task
import zoo.experiments._compress_baselines  # noqa: F401  (registers ptq)
import zoo.experiments.l2_posttraining_size_compression  # noqa: F401  (registers l2)

ID = "l2_posttraining_size_compression"


def _setup():
    cfg, _ = spec_budget(ID)
    cfg = setting_config({k: v for k, v in cfg.items() if k != "arms"}, None)
    cfg.update({"n_train": 600, "n_test": 300, "latency_repeats": 1, "pretrain_epochs": 3})
    base = load_base(cfg["dataset"], repo_root() / "data", "cpu")
    torch.manual_seed(0)
    task = make_task(cfg, base, 0)
    pre = {k: v.detach().clone() for k, v in pretrain(task, cfg, 0, "cpu").state_dict().items()}
    return cfg, task, pre


def _fit(method, opts, cfg, task, pre):
    torch.manual_seed(0)
    return fit(method, opts, task, cfg, 0, "cpu", pre).metrics


def test_quick_run(tmp_path):
    m = quick_run_metrics(ID, tmp_path, workers=1)
    assert m["l2_10x"]["entropy_bytes"][0] < m["dense"]["entropy_bytes"][0]


def test_exported_metrics_shared_weights_and_options():
    cfg, task, pre = _setup()
    dense = _fit("dense", {}, cfg, task, pre)
    dense2 = _fit("dense", {}, cfg, task, pre)
    assert dense["test_acc"] == dense2["test_acc"]  # arms start from the same pretrained weights
    ptq4 = _fit("ptq", {"bits": 4}, cfg, task, pre)
    opts = {"steps": 60, "n_calib": 256}
    l10 = _fit("l2", {"ratio": 10.0, **opts}, cfg, task, pre)
    l25 = _fit("l2", {"ratio": 25.0, **opts}, cfg, task, pre)
    for m in (l10, l25, ptq4):
        assert m["export_gap"] < 1e-4
    for m, r in ((l10, 10.0), (l25, 25.0)):
        # the claim's bytes are the exported, ANS-coded model's, and they sit at the method's budget
        assert abs(m["entropy_bytes"] / m["budget_bytes"] - 1) < 0.25, m
        assert abs(m["est_bytes"] - m["entropy_bytes"]) / m["entropy_bytes"] < 0.1, m
        assert m["entropy_bytes"] < dense["entropy_bytes"] / (0.75 * r)
        assert m["entropy_bytes"] < m["payload_bytes"]
    assert l25["entropy_bytes"] < l10["entropy_bytes"] * 0.6  # the ratio option changes the result
    assert l25["nonzero"] < l10["nonzero"]
    noise = _fit("l2", {"ratio": 25.0, "calib": "noise", **opts}, cfg, task, pre)
    assert noise["test_acc"] < l25["test_acc"]  # calibration on training inputs matters
