"""Wiring of self_compressing_networks: quick run, exported-model metrics, shared init, gamma matters."""

import torch

from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.experiments._compressbench import fit, setting_config
from zoo.catalogue import repo_root
from zoo.workloads.classification import load_base, make_task
import zoo.experiments.self_compressing_networks  # noqa: F401  (registers scn)

ID = "self_compressing_networks"


def _cfg(**over):
    cfg, _ = spec_budget(ID)
    cfg = setting_config({k: v for k, v in cfg.items() if k != "arms"}, None)
    cfg.update({"epochs": 6, "n_train": 300, "n_test": 100, "latency_repeats": 1, **over})
    return cfg


def _fit(method, opts, cfg, seed=0):
    base = load_base(cfg["dataset"], repo_root() / "data", "cpu")
    torch.manual_seed(seed)
    task = make_task(cfg, base, seed)
    return fit(method, opts, task, cfg, seed, "cpu").metrics


def test_quick_run(tmp_path):
    m = quick_run_metrics(ID, tmp_path)
    assert m["scn"]["bytes"][0] < m["dense"]["bytes"][0]


def test_metrics_are_the_exported_models_and_gamma_matters():
    cfg = _cfg(epochs=25)
    weak = _fit("scn", {"gamma": 0.0, "init_bits": 2.0}, cfg)
    strong = _fit("scn", {"gamma": 20.0, "init_bits": 2.0}, cfg)
    dense = _fit("dense", {}, cfg)
    for m in (weak, strong):
        assert m["export_gap"] < 1e-4
        assert m["bits_per_param"] < dense["bits_per_param"] / 4
    # the size loss lowers the learnt bits, and removed channels shrink the exported model
    assert strong["size_q"] < weak["size_q"] - 0.2
    assert strong["payload_bytes"] <= weak["payload_bytes"]


def test_arms_share_init():
    cfg = _cfg(epochs=0)
    a = _fit("dense", {}, cfg)
    b = _fit("dense", {}, cfg)
    assert a["test_acc"] == b["test_acc"]
