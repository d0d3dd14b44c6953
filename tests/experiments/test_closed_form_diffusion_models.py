"""Closed-form diffusion models on digits: the closed-form arms share the seed's noise and steps and
differ only in sigma / knn; the ddpm arm is the shared trained DDPM sampled unguided with the same
steps; real is the validation split; the ratio is smoothed over ddpm wall time; the quick budget
yields every metric."""

from __future__ import annotations

import pytest
import torch

from zoo.catalogue import get
from zoo.experiments import closed_form_diffusion_models as exp
from zoo.experiments.closed_form_diffusion_models import EXPERIMENT, arm_sigma, arms, median_nn_dist
from zoo.harness import JobContext
from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget

ENTRY = "closed_form_diffusion_models"


def test_median_nn_dist_by_hand():
    ref = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    x = torch.tensor([[0.0, 1.0], [3.0, 2.0], [1.0, 0.0]])
    assert median_nn_dist(x, ref) == pytest.approx(1.0)  # distances 1, 2, 1
    assert median_nn_dist(ref, ref) == 0.0


def test_arms_and_sigmas_follow_the_config():
    cfg, seeds = spec_budget(ENTRY, quick=False)
    assert len(seeds) >= 5
    names = arms(cfg)
    assert names[:2] == ["real", "cfdm"] and names[-3:] == ["smoothed", "smoothed_knn", "ddpm"]
    assert arm_sigma(cfg, "cfdm") == 0.0
    assert arm_sigma(cfg, "smoothed") == arm_sigma(cfg, "smoothed_knn") == float(cfg["sigma"]) > 0
    assert [arm_sigma(cfg, f"smoothed_s{str(s).replace('.', '_').removesuffix('_0')}") for s in cfg["sigmas"]] \
        == [float(s) for s in cfg["sigmas"]]
    with pytest.raises(ValueError):
        arm_sigma(cfg, "nonsense")


@pytest.fixture(scope="module")
def quick():
    cfg, _ = spec_budget(ENTRY, quick=True)
    env = quick_env()
    setup = EXPERIMENT.setup(cfg, env)
    shared = EXPERIMENT.shared(cfg, env, setup)
    return cfg, JobContext(env, setup, shared, None)


def test_closed_form_arms_share_noise_and_steps_and_differ_only_in_sigma_and_knn(quick, monkeypatch):
    cfg, ctx = quick
    calls: list[dict] = []
    real = exp.sample_cfdm

    def spy(data, n, **kw):
        calls.append({"data": data, "n": n, "noise": kw["generator"].get_state().clone(), **kw})
        return real(data, n, **kw)

    monkeypatch.setattr(exp, "sample_cfdm", spy)
    outs = {}
    firsts = {}
    for arm in ("cfdm", "smoothed", "smoothed_knn"):
        start = len(calls)
        outs[arm] = EXPERIMENT.job(cfg, arm, 0, ctx)
        mine = calls[start:]
        assert len(mine) == ctx.setup["domain"].num_classes  # one call per class
        firsts[arm] = mine
    dom = ctx.setup["domain"]
    xtr, ytr = dom.split("train")
    for arm, mine in firsts.items():
        for k, c in enumerate(mine):
            assert torch.equal(c["data"], dom.to_diffusion(xtr[ytr == k]))  # that class's training digits
            assert c["n"] == int(cfg["samples_per_class"]) and c["steps"] == int(cfg["steps"]) and c["m"] == int(cfg["m"])
        assert mine[0]["sigma"] == arm_sigma(cfg, arm)
        assert mine[0]["knn"] == (int(cfg["knn"]) if arm == "smoothed_knn" else None)
    # the same initial noise stream for every arm
    assert torch.equal(firsts["cfdm"][0]["noise"], firsts["smoothed"][0]["noise"])
    assert torch.equal(firsts["cfdm"][0]["noise"], firsts["smoothed_knn"][0]["noise"])
    assert outs["cfdm"].metrics["nn_dist"] < outs["smoothed"].metrics["nn_dist"]


def test_ddpm_arm_is_the_shared_denoiser_unguided_with_the_same_steps(quick, monkeypatch):
    cfg, ctx = quick
    seen: dict = {}
    real_shared, real_draw = exp.shared_denoiser, exp.draw

    def shared_spy(name, seed, domain, device="cpu"):
        seen["shared"] = (name, seed)
        seen["model"] = real_shared(name, seed, domain, device)
        return seen["model"]

    def draw_spy(model, recipe, domain, guider, spc, generator, **kw):
        seen.update(model_used=model, guider=guider, spc=spc, steps=kw["steps"], noise=generator.get_state().clone())
        return real_draw(model, recipe, domain, guider, spc, generator, **kw)

    monkeypatch.setattr(exp, "shared_denoiser", shared_spy)
    monkeypatch.setattr(exp, "draw", draw_spy)
    out = EXPERIMENT.job(cfg, "ddpm", 3, ctx)
    assert seen["shared"] == ("digits", 3) and seen["model_used"] is seen["model"]
    assert seen["guider"] is None and seen["steps"] == int(cfg["steps"]) and seen["spc"] == int(cfg["samples_per_class"])
    assert torch.equal(seen["noise"], exp.sample_noise(3, 0).get_state())
    assert out.metrics["sigma"] == 0.0


def test_real_arm_is_validation_digits(quick):
    cfg, ctx = quick
    x, y = exp.sample_arm(cfg, "real", 0, ctx.setup)
    xva, yva = ctx.setup["domain"].split("val")
    per = int(cfg["samples_per_class"])
    assert torch.equal(torch.bincount(y), torch.full((10,), per))
    assert torch.cdist(x, xva).min(1).values.max() == 0.0
    out = EXPERIMENT.job(cfg, "real", 0, ctx)
    assert out.metrics["wall_s"] == 0.0


def test_ratio_is_smoothed_over_ddpm_wall():
    class T:
        def metric(self, arm, m):
            return {"smoothed": [2.0, 9.0], "ddpm": [1.0, 3.0]}[arm]

    assert EXPERIMENT.derive({}, T()) == {"ratio": {"smoothed_vs_ddpm_wall": [2.0, 3.0]}}


def test_quick_budget_produces_every_metric(tmp_path):
    m = quick_run_metrics(ENTRY, tmp_path, workers=1, skip=lambda arm, metric: arm == "ratio"
                          and metric != "smoothed_vs_ddpm_wall" or arm != "ratio" and metric == "smoothed_vs_ddpm_wall")
    assert set(m) == set(get(ENTRY).spec.reproduction.arms)
    assert m["cfdm"]["novelty"][0] < m["smoothed"]["novelty"][0]


def test_the_entry_depends_on_the_shared_digits_denoiser():
    r = get(ENTRY).spec.reproduction
    assert r is not None and r.config["shared_denoiser"] == ["digits"]
