"""The Noise2Score experiment: its quick run, and its wiring (arms share the noisy data, Noise2Score
never reads clean or second-copy training images, the options reach the result)."""

from __future__ import annotations

import math

import torch

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.experiments import noise2score as exp
from zoo.experiments._diffbench import load_domain

ENTRY = "noise2score"


def _cfg() -> dict:
    cfg, _ = spec_budget(ENTRY, quick=True)
    return cfg


def _domain():
    return load_domain("digits", quick_env().data_dir)


def test_quick_run(tmp_path):
    metrics = quick_run_metrics(ENTRY, tmp_path, workers=1)
    for noise in ("gaussian", "poisson", "gamma"):
        assert metrics[f"{noise}_noisy"]["epoch"] == [0.0]


def test_arms_share_the_noisy_data_per_seed():
    cfg, dom = _cfg(), _domain()
    a, b = exp.noisy_splits(cfg, dom, "gaussian", 0), exp.noisy_splits(cfg, dom, "gaussian", 0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = exp.noisy_splits(cfg, dom, "gaussian", 1)
    assert not torch.equal(a["y_train"], c["y_train"]) and torch.equal(a["x_train"], c["x_train"])
    # Noise2Noise's second copy is independent of the first, with the same clean image
    d = a["y2_train"] - a["y_train"]
    assert abs(float(d.std()) - math.sqrt(2) * cfg["gaussian_param"]) < 0.01
    x = a["x_train"]
    assert float(x.min()) >= cfg["floor"] - 1e-6 and float(x.max()) <= 1 - cfg["floor"] + 1e-6


def test_noise2score_never_reads_clean_or_paired_training_images():
    cfg, dom = _cfg(), _domain()
    data = exp.noisy_splits(cfg, dom, "poisson", 0)
    blind = {**data, "x_train": torch.full_like(data["x_train"], math.nan),
             "y2_train": torch.full_like(data["y2_train"], math.nan)}
    net, _ = exp.train_arm(cfg, "poisson", "n2s", 0, blind)
    ref, _ = exp.train_arm(cfg, "poisson", "n2s", 0, data)
    for p, q in zip(net.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_methods_differ_only_in_their_target_and_options_reach_the_result():
    cfg, dom = _cfg(), _domain()
    data = exp.noisy_splits(cfg, dom, "gaussian", 0)
    outs = {}
    for m in ("n2s", "n2n", "supervised"):
        net, _ = exp.train_arm(cfg, "gaussian", m, 0, data)
        outs[m] = exp.denoise(cfg, "gaussian", m, net, data["y_test"])
    assert not torch.allclose(outs["n2n"], outs["supervised"])
    # Noise2Score's Tweedie step uses the noise parameter; the AR-DAE range changes training
    net, _ = exp.train_arm(cfg, "gaussian", "n2s", 0, data)
    other = exp.denoise({**cfg, "gaussian_param": 0.1}, "gaussian", "n2s", net, data["y_test"])
    assert not torch.allclose(other, outs["n2s"])
    net2, _ = exp.train_arm({**cfg, "sigma_min_rel": 0.1}, "gaussian", "n2s", 0, data)
    assert not torch.allclose(exp.denoise(cfg, "gaussian", "n2s", net2, data["y_test"]), outs["n2s"])
    # the noisy arm is the identity (clamped)
    torch.testing.assert_close(exp.denoise(cfg, "gaussian", "noisy", None, data["y_test"]), data["y_test"].clamp(0, 1))


def test_tweedie_step_is_what_noise2score_applies():
    cfg, dom = _cfg(), _domain()
    data = exp.noisy_splits(cfg, dom, "gamma", 0)
    net, _ = exp.train_arm(cfg, "gamma", "n2s", 0, data)
    y = data["y_test"]
    k = cfg["gamma_param"]
    with torch.no_grad():
        s = net(y, net.final_sigma)
    torch.testing.assert_close(exp.denoise(cfg, "gamma", "n2s", net, y), (k * y / ((k - 1) - y * s)).clamp(0, 1))
