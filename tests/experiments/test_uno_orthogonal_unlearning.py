"""UNO experiment wiring: every unlearning arm starts from the seed's same original VAE and sees the same
retain / forget batches, latent codes, optimiser and step budget, differing only in the method; the
original arm is the untouched VAE; runs stop at the first check below the threshold; the quick budget
yields every metric the spec names."""

from __future__ import annotations

import pytest
import torch

from zoo.catalogue import get
from zoo.experiments import uno_orthogonal_unlearning as exp
from zoo.experiments.uno_orthogonal_unlearning import ARMS, EXPERIMENT, batch_schedule, evaluate, latents
from zoo.harness import JobContext
from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget

ENTRY = "uno_orthogonal_unlearning"


@pytest.fixture(scope="module")
def quick():
    cfg, _ = spec_budget(ENTRY, quick=True)
    env = quick_env()
    setup = EXPERIMENT.setup(cfg, env)
    state = EXPERIMENT.per_seed(cfg, 0, env, setup, None)
    return cfg, JobContext(env, setup, None, state)


def test_arms_share_init_batches_latents_and_budget(quick, monkeypatch):
    cfg, ctx = quick
    cfg = {**cfg, "threshold": -1.0}  # never reached: every arm runs the whole budget
    calls: dict[str, list] = {}
    real = exp.unlearn_step
    starts = {}

    def spy(method, model, opt, x_r, x_f, z, ident, fc, w, g, only_conflict=False):
        if method not in calls:
            starts[method] = [p.detach().clone() for p in model.parameters()]
        calls.setdefault(method, []).append((x_r.clone(), x_f.clone(), z.clone(), type(opt), opt.param_groups[0]["lr"],
                                             ident, fc, w))
        return real(method, model, opt, x_r, x_f, z, ident, fc, w, g, only_conflict)

    monkeypatch.setattr(exp, "unlearn_step", spy)
    outs = {a: EXPERIMENT.job(cfg, a, 0, ctx) for a in ARMS}
    assert set(calls) == {"uno", "surgery", "retain", "finetune"}
    ref = calls["uno"]
    assert all(len(c) == int(cfg["steps"]) for c in calls.values())
    for m, c in calls.items():
        for a, b in zip(c, ref):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
            assert a[3:] == b[3:]
        for p, q in zip(starts[m], ctx.seed_state["vae"].parameters()):
            assert torch.equal(p, q)
    # the forget batches are digit-1 images only, the retain batches never
    x, y = ctx.setup["domain"].split("train")
    x_r, x_f, idx = batch_schedule(cfg, ctx.setup["domain"], 0)
    assert x_f.shape[0] == int((y == 1).sum()) and x_r.shape[0] == int((y != 1).sum())
    assert torch.equal(ref[0][1], x_f[idx[0, 1]])
    # the original arm is the untouched VAE
    z = latents(cfg, 0, int(cfg["latent"]))
    base = evaluate(ctx.seed_state["vae"], ctx.setup["scorer"], z["test"], 1)
    assert outs["original"].metrics["forget_share"] == base["forget_share"]
    assert outs["original"].metrics["fd_rel"] == 0.0
    assert len({round(outs[a].metrics["fd_retain"], 9) for a in ARMS}) == len(ARMS)  # the methods differ
    for a in ARMS[1:]:
        assert outs[a].metrics["steps_to_forget"] == int(cfg["steps"]) + int(cfg["eval_every"])  # censored


def test_runs_stop_at_the_first_check_below_the_threshold(quick, monkeypatch):
    cfg, ctx = quick
    n = []
    real = exp.unlearn_step
    monkeypatch.setattr(exp, "unlearn_step", lambda *a, **k: (n.append(1), real(*a, **k))[1])
    shares = iter([50.0, 40.0, 0.5, 0.0, 0.0])
    monkeypatch.setattr(exp, "forget_share", lambda *a: next(shares))
    c = {**cfg, "eval_every": 1, "steps": 4, "threshold": 1.0}
    _, curve, hit = exp.unlearn(c, "finetune", ctx.seed_state["vae"], 0, ctx.setup)
    assert hit == 2 and len(n) == 2 and curve == [50.0, 40.0, 0.5]
    n.clear()
    shares = iter([50.0, 40.0, 0.5, 0.0, 0.0])
    _, curve, hit = exp.unlearn({**c, "stop_at_forget": False}, "finetune", ctx.seed_state["vae"], 0, ctx.setup)
    assert hit == 2 and len(n) == 4 and len(curve) == 5


def test_spec_weights_are_the_authors_and_metrics_are_named(quick):
    cfg, _ = spec_budget(ENTRY, quick=False)
    w = exp.weights(cfg)
    assert (w.forget, w.orth, w.unif, w.kl) == (0.0, 1e5, 1e4, 1.0)
    r = get(ENTRY).spec.reproduction
    assert set(r.arms) == set(ARMS)
    assert set(r.metrics) == {"forget_share", "fd_retain", "fd_rel", "retain_min_share", "steps_to_forget", "log10_steps"}


def test_quick_budget_produces_every_metric(tmp_path):
    m = quick_run_metrics(ENTRY, tmp_path, workers=1)
    assert m["original"]["steps_to_forget"] == [0.0]
