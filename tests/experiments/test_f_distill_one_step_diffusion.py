"""The f-distill experiment: its quick run, the metrics on hand-built samples, and its wiring (the arms
share initialisation, noise stream and budget and differ only in the weighting h; reverse KL is DMD;
the teacher score is the exact noised mixture score; every network is trained)."""

from __future__ import annotations

import pytest
import torch

from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.catalogue import get
from zoo.diffusion.f_distill import f_weight
from zoo.experiments import f_distill_one_step_diffusion as exp

ENTRY = "f_distill_one_step_diffusion"


def _cfg(**over) -> dict:
    cfg, _ = spec_budget(ENTRY, quick=True)
    return {**cfg, **over}


def test_quick_run_and_metric_names(tmp_path):
    metrics = quick_run_metrics(ENTRY, tmp_path, workers=1)
    assert set(metrics) == set(exp.ARMS)
    r = get(ENTRY).spec.reproduction
    assert set(r.metrics) == {"modes", "low_modes", "low_mass", "mass_tv", "energy", "quality"}
    assert r.baselines == ["reverse_kl"] and set(r.arms) == set(exp.ARMS)


def test_teacher_is_the_configured_unequal_mixture():
    cfg = _cfg()
    gm = exp.teacher(cfg)
    w = torch.tensor(cfg["weights"], dtype=torch.float64)
    torch.testing.assert_close(gm.weights.double(), w / w.sum())
    assert gm.num_components == cfg["modes"] == 8
    torch.testing.assert_close(gm.means.norm(dim=1), torch.full((8,), cfg["radius"], dtype=torch.float64))
    uniform = exp.teacher({k: v for k, v in cfg.items() if k != "weights"})
    torch.testing.assert_close(uniform.weights.double(), torch.full((8,), 1 / 8, dtype=torch.float64))
    with pytest.raises(ValueError):
        exp.teacher({**cfg, "weights": [1.0, 2.0]})


def test_metrics_on_hand_built_samples():
    cfg = _cfg()
    gm = exp.teacher(cfg)
    mu = gm.means
    # reference: exactly the mixture's weights (100 points: 22 per heavy mean, 3 per light mean)
    ref = torch.cat([mu[k].repeat(22 if k % 2 == 0 else 3, 1) for k in range(8)])
    # generated: 90 at heavy mean 0, 1 at light mean 1 (below half its 3% weight), 9 far away
    x = torch.cat([mu[0].repeat(90, 1), mu[1].repeat(1, 1), torch.full((9, 2), 50.0, dtype=mu.dtype)])
    m = exp.evaluate(cfg, x, ref)
    assert m["modes"] == 1.0 and m["low_modes"] == 0.0
    assert m["low_mass"] == pytest.approx(0.01)
    assert m["quality"] == pytest.approx(0.91)
    # TV over 9 bins: |0.90-0.22| + |0.01-0.03| + 3*0.22 + 3*0.03 + |0.09-0|, halved
    assert m["mass_tv"] == pytest.approx(0.5 * (0.68 + 0.02 + 0.66 + 0.09 + 0.09))
    assert m["energy"] > 0.1
    # with 2 more points at light mean 1 (3% >= 1.5%) it counts; the reference against itself is exact
    x2 = torch.cat([x[:-2], mu[1].repeat(2, 1)])
    m2 = exp.evaluate(cfg, x2, ref)
    assert m2["modes"] == 2.0 and m2["low_modes"] == 1.0
    same = exp.evaluate(cfg, ref, ref)
    assert same["modes"] == 8.0 and same["low_modes"] == 4.0 and same["mass_tv"] == pytest.approx(0.0)
    assert same["energy"] == pytest.approx(0.0, abs=1e-6)


def test_arms_share_initialisation():
    cfg = _cfg()
    a, b = exp.build_nets(cfg, 3), exp.build_nets(cfg, 3)
    for na, nb in zip(a, b):
        for p, q in zip(na.parameters(), nb.parameters()):
            assert torch.equal(p, q)
    c = exp.build_nets(cfg, 4)
    assert not torch.equal(next(a[0].parameters()), next(c[0].parameters()))


def _capture(monkeypatch, cfg, arm, seed=0):
    calls = []
    from zoo.diffusion.f_distill import generator_loss as real

    def spy(x_t, s_p, s_q, log_r, divergence, time_weight=1.0, normalize=True):
        calls.append(dict(x_t=x_t.detach().clone(), s_p=s_p.clone(), s_q=s_q.clone(), log_r=log_r.clone(),
                          divergence=divergence, time_weight=torch.as_tensor(time_weight).clone(),
                          normalize=normalize, grad=x_t.requires_grad))
        return real(x_t, s_p, s_q, log_r, divergence, time_weight=time_weight, normalize=normalize)

    monkeypatch.setattr(exp, "generator_loss", spy)
    gen = exp.distill(cfg, arm, seed)
    return gen, calls


def test_arms_differ_only_in_the_weighting(monkeypatch):
    cfg = _cfg(steps=1)
    seen = {arm: _capture(monkeypatch, cfg, arm)[1] for arm in exp.ARMS}
    base = seen["reverse_kl"][0]
    assert base["divergence"] == "reverse_kl" and base["normalize"] and base["grad"]
    for arm in exp.ARMS:
        (c,) = seen[arm]
        assert c["divergence"] == arm
        for k in ("x_t", "s_p", "s_q", "log_r", "time_weight"):
            assert torch.equal(c[k], base[k]), (arm, k)


def test_teacher_score_is_exact_and_time_weight_is_one_minus_abar(monkeypatch):
    cfg = _cfg(steps=1)
    _, (c,) = _capture(monkeypatch, cfg, "js")
    abar = 1 - c["time_weight"]
    assert float(abar.min()) > 0 and float(abar.max()) < 1 and abar.numel() == cfg["batch_size"]
    lo, hi = exp.abar_of(torch.tensor(cfg["t_max"])), exp.abar_of(torch.tensor(cfg["t_min"]))
    assert float(abar.min()) >= float(lo) - 1e-6 and float(abar.max()) <= float(hi) + 1e-6
    s_p = exp.teacher(cfg).score_t(c["x_t"].double(), abar.double()).float()
    torch.testing.assert_close(c["s_p"], s_p)


def test_reverse_kl_baseline_is_dmd_and_the_weighting_changes_the_generator():
    cfg = _cfg(steps=3)
    log_r = torch.randn(64)
    assert torch.equal(f_weight(log_r, "reverse_kl"), torch.ones(64))
    init = exp.build_nets(cfg, 0)[0]
    gens = {arm: exp.distill(cfg, arm, 0) for arm in exp.ARMS}
    for arm, g in gens.items():  # every arm moves the generator
        assert not torch.equal(next(g.parameters()), next(init.parameters())), arm
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = {arm: g(z) for arm, g in gens.items()}
    assert not torch.allclose(out["reverse_kl"], out["js"])
    assert not torch.allclose(out["js"], out["forward_kl"])
    # same arm, same seed: identical (deterministic streams)
    again = exp.distill(cfg, "js", 0)
    with torch.no_grad():
        torch.testing.assert_close(again(z), out["js"], rtol=0, atol=0)


def test_fake_score_and_discriminator_are_trained(monkeypatch):
    """log r and s_q at the second generator step differ from those of the untrained networks."""
    cfg = _cfg(steps=2)
    _, calls = _capture(monkeypatch, cfg, "forward_kl")
    _, fake, disc = exp.build_nets(cfg, 0)
    c = calls[1]
    abar = 1 - c["time_weight"]
    with torch.no_grad():
        assert not torch.allclose(disc(c["x_t"], abar), c["log_r"])
        assert not torch.allclose(fake(c["x_t"], abar), c["s_q"])


def test_unknown_arm_is_rejected():
    with pytest.raises(ValueError):
        exp._job(_cfg(), "tv", 0, None)
