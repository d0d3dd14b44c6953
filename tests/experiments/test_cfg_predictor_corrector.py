"""The cfg_predictor_corrector experiment's wiring: each arm reaches its sampler with the paper's parameters
(PCG's corrector power 2 gamma - 1, the control's gamma, the reference's DDPM), arms draw independent
noise, the floor arm samples the tilted target, and the quick budget yields every metric."""

from __future__ import annotations

import torch

from zoo.diffusion.analytic import TiltedTarget
from zoo.experiments import cfg_predictor_corrector as exp
from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget

ENTRY = "cfg_predictor_corrector"


def _cfg(**over):
    cfg, _ = spec_budget(ENTRY, quick=True)
    cfg.update({"n": 200, "reference_steps": 8, "pcg_steps": [3, 8], **over})
    return cfg


def test_arms_reach_their_samplers_with_the_papers_parameters(monkeypatch):
    cfg = _cfg()
    calls = []
    monkeypatch.setattr(exp, "cfg_sample", lambda gm, c, gamma, steps, n, sampler, g: calls.append(
        ("cfg", sampler, gamma, steps, c)) or torch.zeros(n, 1, dtype=torch.float64))
    monkeypatch.setattr(exp, "pcg_sample", lambda gm, c, gc, steps, n, generator=None: calls.append(
        ("pcg", gc, steps, c)) or torch.zeros(n, 1, dtype=torch.float64))
    g, c = float(cfg["gamma"]), int(cfg["c"])
    for arm in exp.arms(cfg):
        calls.clear()
        exp.arm_samples(cfg, arm, 0)
        if arm == "exact":
            assert calls == []
        elif arm == "cfg_ddpm":
            assert calls == [("cfg", "ddpm", g, 8, c)]
        elif arm == "cfg_ddim":
            assert calls == [("cfg", "ddim", g, 8, c)]
        elif arm == "pcg_naive":
            assert calls == [("pcg", g, 8, c)]  # the control: corrector power gamma, not 2 gamma - 1
        else:
            assert calls == [("pcg", 2 * g - 1, int(arm.removeprefix("pcg_")), c)]
    calls.clear()
    state = exp._per_seed(cfg, 0, quick_env(), None, None)
    assert ("cfg", "ddpm", g, 8, c) in calls  # the reference is CFG-DDPM at reference_steps
    assert set(state) == {"tilted", "cond", "reference"}


def test_exact_arm_and_floor_sample_the_tilted_target_with_independent_noise():
    cfg = _cfg(n=4000)
    gm = exp.mixture(cfg)
    target_mean = TiltedTarget(gm.conditional(1), gm, float(cfg["gamma"])).grid_moments()[0]
    state = exp._per_seed(cfg, 0, quick_env(), None, None)
    x = exp.arm_samples(cfg, "exact", 0)
    assert not torch.equal(x, state["tilted"])  # a twin, not the same draws
    for s in (x, state["tilted"]):
        assert abs(float(s.mean()) - float(target_mean)) < 0.03
    # guidance moves the target: the conditional draws sit to the left of the tilted ones
    assert float(state["cond"].mean()) < float(target_mean) - 0.05
    # the CFG-DDPM arm draws fresh noise, not the reference's
    assert not torch.equal(exp.arm_samples(cfg, "cfg_ddpm", 0), state["reference"])
    # and seeds differ
    assert not torch.equal(exp.arm_samples(cfg, "exact", 1), x)


def test_job_metrics_measure_against_the_seed_state():
    cfg = _cfg()
    state = exp._per_seed(cfg, 0, quick_env(), None, None)
    from zoo.harness import JobContext

    out = exp._job(cfg, "cfg_ddpm", 0, JobContext(quick_env(), None, None, {**state, "reference": state["tilted"]}))
    assert out.metrics["w1_ddpm"] == out.metrics["w1_tilted"]  # w1_ddpm really is measured against the reference
    assert abs(sum(out.series["density"]) * (cfg["hist_hi"] - cfg["hist_lo"]) / cfg["hist_bins"] - 1) < 1e-4


def test_quick_run_yields_every_metric(tmp_path):
    cfg, _ = spec_budget(ENTRY, quick=True)
    quick_arms = set(exp.arms(cfg))
    quick_run_metrics(ENTRY, tmp_path / "run", skip=lambda arm, metric: arm not in quick_arms)
