"""pareto_optimal_quantized_resnet: the front statistics, the wiring of the arms, and that sizes are the exported models'."""

from __future__ import annotations

import json
import math

import torch

from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.experiments._compressbench import fit, setting_config
from zoo.experiments.pareto_optimal_quantized_resnet import front, front_stats
from zoo.workloads.classification import load_base, make_task
from zoo.catalogue import repo_root

ID = "pareto_optimal_quantized_resnet"


def test_front_and_front_stats_hand_values():
    ref = [(100.0, 80.0), (200.0, 90.0), (400.0, 92.0)]
    mine = [(20.0, 85.0), (60.0, 91.0), (150.0, 91.5)]
    assert front(mine, 10.0) == -math.inf and front(mine, 100.0) == 91.0 and front(mine, 400.0) == 91.5
    st = front_stats(mine, ref)
    # at cost 100: 91 - 80; at 200: 91.5 - 90; at 400: 91.5 - 92
    assert math.isclose(st["front_gain"], (11.0 + 1.5 - 0.5) / 3)
    assert math.isclose(st["front_worst"], -0.5)
    assert math.isclose(st["dominated_frac"], 2 / 3)
    assert front_stats([(500.0, 99.0)], ref)["front_worst"] == -100.0  # nothing within the cost


def test_quick_run_sizes_are_the_exported_models(tmp_path):
    quick_run_metrics(ID, tmp_path, workers=1, skip=lambda arm, metric: metric in ("test_acc", "payload_bytes")
                      or arm != "q4" and metric.endswith("_vs_q8") or arm == "dense" and metric.startswith(("front", "dominated")))
    jobs = json.loads((tmp_path / "jobs.json").read_text())
    m: dict = {}
    for r in jobs:
        a, w = r["arm"].split("__")
        for k, v in r["metrics"].items():
            m.setdefault(a, {}).setdefault(f"{w}_{k}", []).append(v)
    for w in ("w8", "w128"):
        assert max(m["q4"][f"{w}_export_gap"]) < 1e-4 and max(m["q8"][f"{w}_export_gap"]) < 1e-4
        assert m["q4"][f"{w}_payload_bytes"][0] < m["q8"][f"{w}_payload_bytes"][0] < m["dense"][f"{w}_payload_bytes"][0] / 2.5
    # the hidden 128x128 layer at 4 bits, first/last at 8: mean weight bits (64*128*8 + 128*128*4 + 128*10*8) / n
    n = 64 * 128 + 128 * 128 + 128 * 10
    assert math.isclose(m["q4"]["w128_weight_bits"][0], (8 * (64 * 128 + 1280) + 4 * 128 * 128) / n)
    assert m["q8"]["w128_weight_bits"][0] == 8.0


def test_arms_share_init_and_data_and_bits_change_the_result():
    cfg, _ = spec_budget(ID)
    scfg = setting_config({**cfg, "epochs": 0}, "w8")
    base = load_base(scfg["dataset"], repo_root() / "data", "cpu")
    outs = {}
    for arm, opts in {"dense": ("dense", {}), "q8": ("qat", {"bits": 8}), "q4": ("qat", {"bits": 4, "edge_bits": 8})}.items():
        torch.manual_seed(0)
        task = make_task(scfg, base, 0)
        outs[arm] = fit(opts[0], opts[1], task, scfg, 0, "cpu").metrics
    # untrained: 8-bit codes of the same init are within rounding of the float model's accuracy
    assert abs(outs["q8"]["test_acc"] - outs["dense"]["test_acc"]) <= 3.0
    assert outs["q4"]["payload_bytes"] < outs["q8"]["payload_bytes"] < outs["dense"]["payload_bytes"]
