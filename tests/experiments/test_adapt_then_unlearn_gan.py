"""Adapt-then-Unlearn experiment wiring: the nearest-component oracle on the ring; the feedback split
(positives hold no forgotten-mode sample, negatives only those); EWC strength honoured in stage 1;
every stage-2 arm starts from the same pretrained (G, D), data, latents and step budget and differs
only in its repulsion (none for the retain_ft baseline); the metrics on hand-made generators; the
quick budget runs end to end through the harness with every declared metric."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.catalogue import get
from zoo.experiments import adapt_then_unlearn_gan as exp
from zoo.experiments.adapt_then_unlearn_gan import EXPERIMENT, classify, evaluate, feedback
from zoo.harness import JobContext
from zoo.unlearning.adapt_then_unlearn import param_sq_distance, snapshot
from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget

ENTRY = "adapt_then_unlearn_gan"


@pytest.fixture(scope="module")
def quick():
    cfg, _ = spec_budget(ENTRY, quick=True)
    env = quick_env()
    state = EXPERIMENT.per_seed(cfg, 0, env, None, None)
    return cfg, JobContext(env, None, None, state)


def test_ring_labels_are_the_nearest_component():
    cfg, _ = spec_budget(ENTRY, quick=False)
    data = exp._data(cfg)
    assert torch.equal(classify(data["means"], data["means"]), torch.arange(int(cfg["modes"])))
    agree = (classify(data["x_test"], data["means"]) == data["y_test"]).double().mean()
    assert agree > 0.99  # modes > 6 std apart: the oracle is (almost) exact


def test_feedback_splits_the_generators_samples_by_the_oracle(quick):
    cfg, ctx = quick
    data = exp._data(cfg)
    pos, neg = ctx.seed_state["positives"], feedback(cfg, ctx.seed_state["gen"], data["means"], 0)[1]
    k = int(cfg["forget_class"])
    assert (classify(pos, data["means"]) != k).all()
    assert len(neg) > 0 and (classify(neg, data["means"]) == k).all() and len(neg) <= int(cfg["n_negatives"])


def test_ewc_lambda_is_honoured(quick):
    cfg, ctx = quick
    st = ctx.seed_state
    neg = feedback(cfg, st["gen"], exp._data(cfg)["means"], 0)[1]
    c = dict(cfg, adapt_steps=20)
    free = exp.adapt(dict(c, ewc_lambda=0.0), st["gen"], st["disc"], neg, 0)
    tied = exp.adapt(dict(c, ewc_lambda=1e4), st["gen"], st["disc"], neg, 0)
    anchor = snapshot(st["gen"])
    assert float(param_sq_distance(tied, anchor)) < 0.5 * float(param_sq_distance(free, anchor))


def test_stage2_arms_share_everything_but_the_repulsion(quick, monkeypatch):
    cfg, ctx = quick
    st = ctx.seed_state
    before = snapshot(st["gen"])
    calls = []
    real = exp._train

    def spy(cfg_, gen, disc, x, steps, g, g_reg=None):
        calls.append({"gen": snapshot(gen), "disc": snapshot(disc), "x": x, "steps": steps,
                      "rng": g.get_state().clone(), "reg": g_reg, "same_obj": gen is st["gen"]})
        return real(cfg_, gen, disc, x, steps, g, g_reg)

    monkeypatch.setattr(exp, "_train", spy)
    arms = ["retain_ft", "atu_el2", "atu_nl2", "atu_il2"]
    outs = {a: EXPERIMENT.job(cfg, a, 0, ctx) for a in arms}
    assert len(calls) == 4
    for c in calls:
        assert not c["same_obj"]  # a copy: the pretrained G is never trained in place
        assert all(torch.equal(c["gen"][k], before[k]) for k in before)
        assert all(torch.equal(c["disc"][k], calls[0]["disc"][k]) for k in c["disc"])
        assert c["x"] is st["positives"] and c["steps"] == int(cfg["unlearn_steps"])
        assert torch.equal(c["rng"], calls[0]["rng"])
    assert calls[0]["reg"] is None and all(c["reg"] is not None for c in calls[1:])
    assert all(torch.equal(st["gen"].state_dict()[k], before[k]) for k in before)
    # the repulsion changes the result and pushes farther from theta_N than the baseline
    for a in arms[1:]:
        assert outs[a].metrics["rel_dist"] > outs["retain_ft"].metrics["rel_dist"]
        assert outs[a].metrics != outs["retain_ft"].metrics


def test_original_and_adapted_arms_are_the_stored_generators(quick):
    cfg, ctx = quick
    o = EXPERIMENT.job(cfg, "original", 0, ctx).metrics
    a = EXPERIMENT.job(cfg, "adapted", 0, ctx).metrics
    assert o["fd_ratio"] == 1.0 and o["forget_ratio"] == 1.0 and o["rel_dist"] == 1.0
    assert a["rel_dist"] == 0.0 and a != o  # theta_N, not the original
    with pytest.raises((ValueError, KeyError)):
        EXPERIMENT.job(cfg, "atu_l1", 0, ctx)
    with pytest.raises(ValueError):
        EXPERIMENT.job(cfg, "finetune", 0, ctx)


class _Fixed(nn.Module):
    """A 'generator' that returns fixed points (cycled), for checking the metrics."""

    def __init__(self, pts: torch.Tensor) -> None:
        super().__init__()
        self.latent = 2
        self.pts = pts
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        idx = torch.arange(z.shape[0]) % self.pts.shape[0]
        return self.pts[idx] + 0 * self.w


def test_metrics_on_hand_made_generators():
    cfg, _ = spec_budget(ENTRY, quick=False)
    data = exp._data(cfg)
    k = int(cfg["forget_class"])
    keep = data["y_test"] != k
    good = evaluate(cfg, _Fixed(data["x_test"][keep]), 0)
    assert good["forget_share"] < 0.2 and good["fd_retain"] < 0.05 and good["coverage_tv"] < 0.05
    only_k = evaluate(cfg, _Fixed(data["x_test"][~keep]), 0)
    assert only_k["forget_share"] > 99.0 and only_k["fd_retain"] > 0.5 * float(cfg["fd_empty"])  # modes dropped
    shifted = evaluate(cfg, _Fixed(data["x_test"][keep] + 0.25), 0)  # a mean shift of std in each axis
    assert shifted["fd_retain"] > 5 * good["fd_retain"]
    one_mode = evaluate(cfg, _Fixed(data["x_test"][data["y_test"] == (k + 1) % 8]), 0)
    assert one_mode["coverage_tv"] == pytest.approx(1 - 1 / 7, abs=0.01)


def test_quick_budget_runs_through_the_harness(tmp_path):
    m = quick_run_metrics(ENTRY, tmp_path, workers=1)
    assert set(m) == set(get(ENTRY).spec.reproduction.arms)
    assert all(math.isfinite(v) for v in m["atu_el2"]["forget_share"])
