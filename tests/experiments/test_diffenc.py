"""The DiffEnc experiment: its quick run, and its wiring (the arms share the denoiser's initial
weights, data and budget; the baseline really has the identity encoder; both start from the same
ELBO; the options reach the model)."""

from __future__ import annotations

import pytest
import torch

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.diffusion.diffenc import IdentityEncoder, LearnedEncoder
from zoo.experiments import diffenc as exp
from zoo.experiments._diffbench import load_domain

ENTRY = "diffenc"
METRICS = {"elbo_bpd", "diffusion_bpd", "prior_bpd", "recon_bpd", "val_elbo_bpd", "init_bpd"}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _cfg() -> dict:
    cfg, _ = spec_budget(ENTRY, quick=True)
    return cfg


def test_quick_run(tmp_path):
    metrics = quick_run_metrics(ENTRY, tmp_path, workers=1)
    assert set(metrics) == {"vdm", "diffenc"}
    for arm in ("vdm", "diffenc"):
        assert set(metrics[arm]) == METRICS
        m = {k: v[0] for k, v in metrics[arm].items()}
        assert abs(m["elbo_bpd"] - (m["diffusion_bpd"] + m["prior_bpd"] + m["recon_bpd"])) < 1e-6
        assert m["elbo_bpd"] < m["init_bpd"]  # one epoch already lowers the -ELBO
    # the encoder starts as the identity: the same model, the same evaluation draws, the same init ELBO
    assert metrics["vdm"]["init_bpd"] == pytest.approx(metrics["diffenc"]["init_bpd"], abs=1e-9)
    assert metrics["vdm"]["elbo_bpd"] != metrics["diffenc"]["elbo_bpd"]


def test_arms_share_the_denoiser_init_and_baseline_is_identity():
    cfg = _cfg()
    vdm, de = exp.build_model(cfg, "vdm", 3), exp.build_model(cfg, "diffenc", 3)
    assert isinstance(vdm.encoder, IdentityEncoder) and isinstance(de.encoder, LearnedEncoder)
    a, b = vdm.denoiser.state_dict(), de.denoiser.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sum(p.numel() for p in vdm.parameters()) < sum(p.numel() for p in de.parameters())
    other = exp.build_model(cfg, "vdm", 4).denoiser.state_dict()
    assert not all(torch.equal(a[k], other[k]) for k in a)
    assert (vdm.schedule.gamma_min, vdm.schedule.gamma_max) == (de.schedule.gamma_min, de.schedule.gamma_max)
    with pytest.raises(ValueError):
        exp.build_model(cfg, "ddpm", 0)


def test_options_reach_the_model():
    cfg = {**_cfg(), "hidden": 12, "depth": 2, "enc_hidden": 7, "enc_depth": 1}
    m = exp.build_model(cfg, "diffenc", 0)
    assert m.denoiser.net[0].out_features == 12 and len(m.denoiser.net) == 2 * 2 + 1
    assert m.encoder.net[0].out_features == 7 and len(m.encoder.net) == 2 * 1 + 1


def test_levels_and_identity_arms_train_identically():
    xs = torch.arange(17) / 16.0
    assert torch.allclose(exp.to_levels(xs), torch.linspace(-1, 1, 17), atol=1e-6)
    cfg = _cfg()
    dom = load_domain("digits", quick_env().data_dir)
    m1, l1 = exp.train_arm(cfg, "vdm", 0, dom)
    m2, l2 = exp.train_arm(cfg, "vdm", 0, dom)
    assert l1 == l2  # seeded: data order and (t, eps) draws fixed by the seed
    _, l3 = exp.train_arm(cfg, "diffenc", 0, dom)
    assert len(l3) == len(l1) == cfg["epochs"] and l3 != l1
    x = exp.to_levels(dom.data.x_test[:64])
    e1, e2 = exp.evaluate(m1, x, 2, 0), exp.evaluate(m2, x, 2, 0)
    assert e1 == e2
