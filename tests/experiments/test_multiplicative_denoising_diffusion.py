"""Multiplicative vs additive diffusion on positive digits: the arms share the recipe, seed (so the
initial weights and data order), training images and sampling noise; they differ in the data map, the
loss (M-DSM only in the multiplicative arms) and the clip box (none in the unclipped arms); the clipped
additive arm samples the additive arm's very model; the sign metrics; the quick budget yields every metric."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import zoo.experiments._diffbench as db
from zoo.catalogue import get
from zoo.diffusion import classifier_free_guidance_loss
from zoo.experiments import multiplicative_denoising_diffusion as exp
from zoo.experiments.multiplicative_denoising_diffusion import ARMS, EXPERIMENT, arm_clip, positivity
from zoo.harness import JobContext
from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget

ENTRY = "multiplicative_denoising_diffusion"


@pytest.fixture(scope="module")
def quick():
    cfg, _ = spec_budget(ENTRY, quick=True)
    env = quick_env()
    setup = EXPERIMENT.setup(cfg, env)
    return cfg, JobContext(env, setup, None, None)


def test_spec_declares_the_experiments_arms_and_the_clip():
    r = get(ENTRY).spec.reproduction
    assert r is not None and tuple(r.arms) == ARMS
    cfg, _ = spec_budget(ENTRY, quick=False)
    assert cfg["clip"] == 1.0 and cfg["offset"] == 0.1
    assert [arm_clip(cfg, a) for a in ARMS] == [None, 1.0, 1.0, None]


def test_arms_share_recipe_seed_init_and_images_and_differ_in_map_and_loss(quick, monkeypatch):
    cfg, ctx = quick
    seen = {}

    def fake_train(model, data, opt, *, epochs, batch_size, generator, loss, scheduler, eval_every):
        xb, yb = data.x_train[:16], data.y_train[:16]
        g = torch.Generator().manual_seed(0)
        seen[arm] = {"init": [p.detach().clone() for p in model.parameters()], "x": data.x_train.clone(),
                     "y": data.y_train.clone(), "gen": generator.get_state().clone(), "epochs": epochs,
                     "batch": batch_size, "lr": opt.param_groups[0]["lr"], "loss_fn": loss,
                     "sample": (xb, yb, g)}
        return SimpleNamespace(train_loss=[0.0])

    monkeypatch.setattr(db, "train", fake_train)
    for arm in ARMS:
        exp.train_arm(cfg, arm, ctx.setup, 3)
    a, m = seen["additive"], seen["multiplicative"]
    for arm in ARMS[1:]:
        s = seen[arm]
        assert all(torch.equal(p, q) for p, q in zip(s["init"], a["init"]))
        assert torch.equal(s["gen"], a["gen"]) and torch.equal(s["y"], a["y"])
        assert (s["epochs"], s["batch"], s["lr"]) == (a["epochs"], a["batch"], a["lr"])
    assert torch.equal(seen["additive_clip"]["x"], a["x"]) and torch.equal(seen["multiplicative_noclip"]["x"], m["x"])
    x_pix = ctx.setup.data.x_train
    assert torch.allclose(a["x"], 2 * x_pix - 1) and torch.allclose(m["x"], x_pix + 0.1)
    # the loss each arm trains with: the additive epsilon-MSE vs M-DSM (= epsilon-MSE on to_log(x_pos))
    from zoo.diffusion.multiplicative import LogTransform, mdsm_loss
    net = db.ConditionalDenoiser(64, 10, 1000, hidden=16, depth=1)
    sched = db.make_scheduler(exp.recipe(cfg), None)
    xb, yb, _ = m["sample"]
    lm = m["loss_fn"](net, xb, yb)  # train_denoiser binds its own scheduler
    torch.manual_seed(11)
    got = m["loss_fn"](net, xb, yb)
    torch.manual_seed(11)
    ref = mdsm_loss(net, sched, xb, yb, LogTransform(0.1), p_uncond=0.1)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5) and math.isfinite(lm.item())
    xa, ya, _ = a["sample"]
    torch.manual_seed(11)
    got_a = a["loss_fn"](net, xa, ya)
    torch.manual_seed(11)
    assert got_a.item() == pytest.approx(classifier_free_guidance_loss(net, sched, xa, ya, p_uncond=0.1).item(), rel=1e-5)


def test_sampling_shares_noise_and_steps_and_honours_each_arms_clip(quick, monkeypatch):
    cfg, ctx = quick
    calls = []
    real_sched = exp.make_scheduler
    monkeypatch.setattr(exp, "make_scheduler", lambda r, clip, steps, kind: calls.append((clip, steps, kind))
                        or real_sched(r, clip, steps, kind))
    torch.manual_seed(0)
    model = db.ConditionalDenoiser(64, 10, 1000, hidden=16, depth=1)
    out = {}
    for arm in ARMS:
        out[arm] = exp.draw_positive(cfg, arm, model, ctx.setup, db.sample_noise(0, 0))
    assert calls == [(arm_clip(cfg, a), int(cfg["steps"]), "ddpm") for a in ARMS]
    n = 10 * int(cfg["samples_per_class"])
    assert all(x.shape == (n, 64) and torch.equal(y, out["additive"][1]) for x, y in out.values())
    xc = out["additive_clip"][0]
    assert xc.min() >= 0.1 - 1e-5 and xc.max() <= 1.1 + 1e-5  # the last step returns the clipped x0_hat
    xm = out["multiplicative"][0]
    assert (xm > 0).all() and xm.min() >= 0.1 - 1e-4 and xm.max() <= 1.1 + 1e-4
    assert not torch.allclose(out["additive"][0], xc)


def test_positivity_metrics_by_hand():
    x = torch.tensor([[0.5, -0.1, 0.2], [0.3, 0.4, 0.0], [float("nan"), 1.0, 2.0], [float("inf"), 1.0, 1.0]])
    p = positivity(x)
    assert p["neg_frac"] == pytest.approx(2 / 12) and p["neg_samples"] == pytest.approx(0.5)
    assert p["nonfinite_frac"] == pytest.approx(2 / 12) and p["min_value"] == -10.0
    assert positivity(torch.tensor([[0.2, 0.3]]))["min_value"] == pytest.approx(0.2)


def test_quick_budget_produces_every_metric_and_the_clipped_arms_sample_the_same_models(tmp_path):
    m = quick_run_metrics(ENTRY, tmp_path, workers=1)
    assert m["additive"]["final_loss"] == m["additive_clip"]["final_loss"]
    assert m["multiplicative"]["final_loss"] == m["multiplicative_noclip"]["final_loss"]
    assert m["additive"]["final_loss"] != m["multiplicative"]["final_loss"]
    assert m["multiplicative"]["neg_frac"] == [0.0] and m["additive_clip"]["neg_frac"] == [0.0]


def test_every_arms_job_samples_from_the_seeds_one_noise_stream(quick, monkeypatch):
    cfg, ctx = quick
    states = []
    torch.manual_seed(0)
    model = db.ConditionalDenoiser(64, 10, 1000, hidden=16, depth=1)
    monkeypatch.setattr(exp, "train_arm", lambda cfg_, arm, dom, seed, device="cpu": (model, [0.0]))
    real = exp.draw_positive
    monkeypatch.setattr(exp, "draw_positive", lambda cfg_, arm, m, dom, g: states.append(g.get_state().clone())
                        or real(cfg_, arm, m, dom, g))
    scorer = SimpleNamespace(score=lambda x, y, ref: {"class_acc": 0.0, "diversity": 0.0, "fd": 1.0})
    jctx = JobContext(ctx.env, ctx.setup, scorer, None)
    for arm in ARMS:
        EXPERIMENT.job(cfg, arm, 2, jctx)
    assert len(states) == len(ARMS) and all(torch.equal(s, db.sample_noise(2, 0).get_state()) for s in states)
