"""The SURE-Score experiment: its quick run, and its wiring (priors share data order and budget, the
SURE prior never reads clean training points, all priors see the same measurements and sampler noise)."""

from __future__ import annotations

import math

import torch

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.experiments import sure_score_noisy_priors as exp
from zoo.harness import JobContext

ENTRY = "sure_score_noisy_priors"


def _cfg() -> dict:
    return spec_budget(ENTRY, quick=True)[0]


def test_quick_run(tmp_path):
    m = quick_run_metrics(ENTRY, tmp_path, workers=1)
    sig = m["sure_cs"]["sigma_w"][0]
    assert abs(sig - math.sqrt(0.5 * (1 + 0.05 ** 2))) < 0.08  # 0 dB: noise power = signal power


def test_training_set_is_at_the_stated_snr():
    cfg = {**_cfg(), "n_train": 20000}
    x, y, sigma_w = exp.noisy_training_set(cfg, 0)
    snr = 10 * math.log10(float(x.pow(2).mean()) / float((y - x).pow(2).mean()))
    assert abs(snr - cfg["snr_db"]) < 0.1 and sigma_w > 0.6


def test_sure_prior_never_reads_clean_points_and_loss_choice_matters():
    cfg = _cfg()
    x, y, sw = exp.noisy_training_set(cfg, 0)
    a = exp.train_prior(cfg, "sure", 0, torch.full_like(x, math.nan), y, sw)
    b = exp.train_prior(cfg, "sure", 0, x, y, sw)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    c = exp.train_prior(cfg, "naive", 0, x, y, sw)
    assert not all(torch.equal(p, q) for p, q in zip(b.parameters(), c.parameters()))


def test_priors_share_measurements_and_sampler_noise():
    cfg = _cfg()
    x, y, sw = exp.noisy_training_set(cfg, 0)
    one = exp.train_prior(cfg, "naive", 0, x, y, sw)
    state = {"sigma_w": sw, "clean": one, "naive": one, "sure": one}
    ctx = JobContext(quick_env(), None, None, state)
    outs = [exp._job(cfg, f"{p}_cs", 0, ctx).metrics for p in exp.PRIORS]
    assert outs[0] == outs[1] == outs[2]  # same model -> identical results: nothing else differs between arms
    m1, m2 = exp.measure(cfg, "cs", 0), exp.measure(cfg, "cs", 0)
    assert all(torch.equal(u, v) for u, v in zip(m1[:3], m2[:3]))
    assert m1[1].shape[1] == 1 and torch.allclose(m1[1].norm(dim=-1), torch.ones(1))
    d = exp._job({**cfg, "step_lr": 0.1}, "naive_cs", 0, ctx).metrics
    assert d != outs[1]  # a sampler option reaches the result
