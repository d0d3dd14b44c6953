"""The trainable-gate experiment's wiring: exported metrics, equal widths to the L1 baseline, options matter."""

from __future__ import annotations

import torch

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.experiments._compressbench import fit, pretrain, setting_config
from zoo.experiments.trainable_gate_pruning import EXPERIMENT
from zoo.workloads.classification import make_task


def test_quick_run_metrics_come_from_the_exported_model(tmp_path):
    m = quick_run_metrics("trainable_gate_pruning", tmp_path, workers=1,
                          skip=lambda arm, metric: metric == "gate_agreement" and not arm.startswith("tg_"))
    for a in ("tg_50", "tg_90"):
        l1 = "l1_" + a.split("_")[1]
        assert m[a]["nonzero"] == m[l1]["nonzero"]  # the same widths as the baseline
        assert m[a]["bytes"][0] < m["dense"]["bytes"][0] and m[a]["macs"][0] < m["dense"]["macs"][0]
    assert m["tg_50"]["macs"][0] <= 0.5 * m["dense"]["macs"][0]


def _setup(cfg):
    env = quick_env()
    data = EXPERIMENT.setup(cfg, env)
    scfg = setting_config(cfg, None)
    return env, scfg, make_task(scfg, next(iter(data.values())), 0)


def test_gated_arm_exports_exactly_and_options_matter():
    cfg, _ = spec_budget("trainable_gate_pruning")
    env, scfg, task = _setup(cfg)
    scfg = {**scfg, "epochs": 3, "finetune_optimizer": {"name": "adam", "lr": 0.03}}
    torch.manual_seed(0)
    base = {k: v.clone() for k, v in pretrain(task, scfg, 0, "cpu").state_dict().items()}
    outs = {}
    for lam in (10.0, 0.0):
        torch.manual_seed(0)
        outs[lam] = fit("trainable_gate", {"keep": 0.5, "lam": lam}, task, scfg, 0, "cpu", base).metrics
    assert outs[10.0]["export_gap"] < 1e-4
    assert outs[10.0]["kept_params"] < 0.5
    # without the sparsity loss the gates stay positive and the sign rule disagrees with keep-50%
    assert outs[0.0]["gate_agreement"] <= 0.55 < outs[10.0]["gate_agreement"]
    # the same pretrained start: the dense arm at 0 fine-tuning epochs reproduces it
    torch.manual_seed(0)
    d = fit("dense", {}, task, {**scfg, "epochs": 0}, 0, "cpu", base).metrics
    torch.manual_seed(0)
    d2 = fit("dense", {}, task, {**scfg, "epochs": 0}, 0, "cpu", base).metrics
    assert d["test_acc"] == d2["test_acc"]
