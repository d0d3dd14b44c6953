"""The policy-gradient experiment's wiring: exported sizes, equal widths to L1, no retraining, options matter."""

from __future__ import annotations

import torch

from tests.experiments.budgets import quick_env, spec_budget
from zoo.experiments._compressbench import fit, pretrain, setting_config
from zoo.experiments.policy_gradient_llm_structural_pruning import EXPERIMENT
from zoo.workloads.classification import make_task


def test_arms_export_exactly_and_options_matter():
    cfg, _ = spec_budget("policy_gradient_llm_structural_pruning")
    env = quick_env()
    data = EXPERIMENT.setup(cfg, env)
    scfg = setting_config(cfg, None)
    task = make_task(scfg, next(iter(data.values())), 0)
    torch.manual_seed(0)
    base = {k: v.clone() for k, v in pretrain(task, scfg, 0, "cpu").state_dict().items()}
    out = {}
    for name, m, opts in (("dense", "dense", {}), ("l1", "l1_channel", {"ratio": 0.5}),
                          ("layer", "policy_gradient_masks", {"allocation": "layer", "iterations": 20}),
                          ("global", "policy_gradient_masks", {"allocation": "global", "iterations": 20}),
                          ("untrained", "policy_gradient_masks", {"allocation": "global", "iterations": 0 + 1, "lr": 0.0})):
        torch.manual_seed(0)
        out[name] = fit(m, opts, task, scfg, 0, "cpu", base).metrics
    assert out["layer"]["nonzero"] == out["l1"]["nonzero"] < out["dense"]["nonzero"]
    assert out["layer"]["bytes"] < 0.5 * out["dense"]["bytes"]
    assert out["layer"]["export_gap"] < 1e-4 and out["global"]["export_gap"] < 1e-4
    assert out["layer"]["layer_keep_spread"] == 0.0
    assert out["global"]["layer_keep_spread"] > 0.0  # the global budget lets layers differ
    assert out["global"]["test_acc"] != out["untrained"]["test_acc"]
