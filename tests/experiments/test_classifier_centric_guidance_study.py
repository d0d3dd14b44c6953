"""The classifier-centric guidance study: the exact Bayes-boundary distance of the gmm mixture; arms
share the seed's shared denoiser, noise and step budget; CFG weight w and classifier-guidance scale s
reach the sampler (s enters as CFGGuider(s - 1) on the classifier-implied pair); a post arm is its
base arm's samples pushed through the trained flow; the quick budget yields every metric."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.catalogue import get
from zoo.experiments import classifier_centric_guidance_study as exp
from zoo.experiments.classifier_centric_guidance_study import EXPERIMENT, bayes_boundary_distance, exact_mixture, parse_arm
from zoo.experiments._diffbench import GMM, load_domain
from zoo.harness import JobContext
from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget

ENTRY = "classifier_centric_guidance_study"


def test_exact_mixture_is_the_gmm_domain_and_its_boundary_distance_is_exact():
    mix = exact_mixture()
    dom = load_domain("gmm", quick_env().data_dir)
    x, y = dom.split("train")
    for k in range(3):
        assert torch.allclose(x[y == k].mean(0).double(), mix.means[k], atol=0.08)
    mu = mix.means
    c = torch.arange(3)
    half = (mu[0] - mu[1]).norm() / 2  # equilateral: every facet is at half the side from each mean
    assert torch.allclose(bayes_boundary_distance(mu.float(), c, mu), half.expand(3))
    mid = ((mu[0] + mu[1]) / 2)[None].float()
    assert bayes_boundary_distance(mid, torch.tensor([0]), mu).abs().item() < 1e-6
    assert bayes_boundary_distance(mu[1:2].float(), torch.tensor([0]), mu).item() < 0  # inside another cell
    # positive exactly where the exact posterior picks the class (equal priors and covariances)
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(0)) * 2
    post = torch.stack([mix.log_prob(z.double(), torch.full((500,), k)) for k in range(3)], 1).argmax(1)
    for k in range(3):
        d = bayes_boundary_distance(z, torch.full((500,), k), mu)
        assert torch.equal(d > 0, post == k)


@pytest.fixture(scope="module")
def quick():
    cfg, _ = spec_budget(ENTRY, quick=True)
    env = quick_env()
    setup = EXPERIMENT.setup(cfg, env)
    shared = EXPERIMENT.shared(cfg, env, setup)
    state = EXPERIMENT.per_seed(cfg, 0, env, setup, shared)
    return cfg, JobContext(env, setup, shared, state)


def test_arms_share_model_noise_budget_and_guidance_reaches_the_sampler(quick, monkeypatch):
    cfg, ctx = quick
    calls = []
    real = exp.draw

    def spy(model, recipe, domain, guider, spc, generator, **kw):
        calls.append({"model": model, "w": guider.w, "noise": generator.get_state().clone(), **kw})
        return real(model, recipe, domain, guider, spc, generator, **kw)

    monkeypatch.setattr(exp, "draw", spy)
    arms = ["cfg_w0", "cfg_w4", "cg_s1", "cg_s5"]
    outs = {a: EXPERIMENT.job(cfg, a, 0, ctx) for a in arms}
    assert all(c["model"] is ctx.seed_state["model"] for c in calls)
    assert all(torch.equal(c["noise"], calls[0]["noise"]) for c in calls)
    assert {c["steps"] for c in calls} == {int(cfg["steps"])}
    assert [c["w"] for c in calls] == [0.0, 4.0, 0.0, 4.0]
    assert calls[0].get("model_fn") is None and calls[2].get("model_fn") is not None  # CG feeds the classifier pair
    assert outs["cfg_w0"].metrics["boundary_dist"] != outs["cfg_w4"].metrics["boundary_dist"]
    assert outs["cg_s1"].metrics["boundary_dist"] != outs["cg_s5"].metrics["boundary_dist"]


def test_post_arm_is_the_base_arms_samples_through_the_flow(quick, monkeypatch):
    cfg, ctx = quick
    base, post = EXPERIMENT.job(cfg, "cfg_w0", 0, ctx), EXPERIMENT.job(cfg, "post_cfg_w0", 0, ctx)
    assert post.metrics["near_frac"] == base.metrics["near_frac"]  # the same samples, selected before the step
    assert post.metrics["log_prob"] != base.metrics["log_prob"]
    seen = []
    real = exp.postprocess
    monkeypatch.setattr(exp, "postprocess", lambda m, x, c, s: seen.append(m) or real(m, x, c, s))
    EXPERIMENT.job(cfg, "post_cg_s1", 0, ctx)
    assert seen == [ctx.seed_state["flows"]["cg_s1"]]
    with pytest.raises(ValueError):
        parse_arm(cfg, "post_cfg_w4")


def test_quick_budget_produces_every_metric(tmp_path):
    m = quick_run_metrics(ENTRY, tmp_path, workers=1, skip=lambda arm, metric: False)
    assert all(math.isfinite(v) for v in m["post_cfg_w0"]["near_log_prob"])


def test_the_entry_depends_on_the_shared_gmm_denoiser():
    r = get(ENTRY).spec.reproduction
    assert r is not None and r.config["shared_denoiser"] == "gmm"
