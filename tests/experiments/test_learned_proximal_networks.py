"""The learned-proximal-networks experiment: arms share initialisation and training pairs (the loss is
the only difference), the loss option reaches training, the reference denoisers are right, and the
quick run produces every declared metric."""

from __future__ import annotations

import torch

from tests.experiments.budgets import quick_run_metrics, spec_budget
from zoo.experiments.learned_proximal_networks import (
    EXPERIMENT,
    _setup,
    arms,
    evaluate,
    laplace_pairs,
    posterior_mean,
    train_lpn,
)
from zoo.regularizers.learned_proximal_network import soft_threshold

ENTRY = "learned_proximal_networks"


def _tiny() -> dict:
    cfg, _ = spec_budget(ENTRY, quick=True)
    return {**cfg, "steps": 20, "batch_size": 128}


def test_arms_share_init_and_data_and_differ_only_by_the_loss():
    cfg = {**_tiny(), "lr": 0.0}
    m = {k: train_lpn(cfg, k, seed=3)[0] for k in ("l2", "l1", "pm")}
    y = torch.linspace(-3, 3, 50).unsqueeze(1)
    ref = m["l2"](y).detach()
    for k in ("l1", "pm"):  # lr 0: the same initial network for every loss
        assert torch.equal(m[k](y).detach(), ref)
    cfg = _tiny()
    out = {k: train_lpn(cfg, k, seed=3)[0](y).detach() for k in ("l2", "l1", "pm")}
    assert not torch.allclose(out["l2"], out["l1"]) and not torch.allclose(out["l2"], out["pm"])
    again = train_lpn(cfg, "pm", seed=3)[0](y).detach()
    assert torch.equal(again, out["pm"])  # deterministic per seed
    assert not torch.equal(train_lpn(cfg, "pm", seed=4)[0](y).detach(), out["pm"])


def test_trained_networks_stay_convex():
    model, losses = train_lpn(_tiny(), "pm", seed=0)
    assert all((w >= 0).all() for w in model.constrained())
    assert len(losses) == 1


def test_laplace_pairs_and_reference_denoisers():
    y, x = laplace_pairs(200_000, 1.5, 0.5, torch.Generator().manual_seed(0))
    assert abs(float(x.abs().mean()) - 1.5) < 0.02  # E|x| = b
    assert abs(float((y - x).std()) - 0.5) < 0.01
    grid = torch.linspace(-4, 4, 81).unsqueeze(1)
    pm = posterior_mean(grid, 1.0, 1.0)
    assert torch.allclose(pm, -pm.flip(0), atol=1e-5)  # odd
    assert (pm[1:] >= pm[:-1]).all() and (pm.abs() <= grid.abs() + 1e-6).all()  # monotone shrinkage
    # far from 0 the posterior mean is y - sigma^2/b (the Gaussian-tilted exponential tail)
    assert abs(float(posterior_mean(torch.tensor([[8.0]]), 1.0, 1.0)) - 7.0) < 1e-3
    # the MMSE differs from the MAP (soft threshold) inside the dead zone
    assert float(posterior_mean(torch.tensor([[0.5]]), 1.0, 1.0)) > 0.1
    assert float(soft_threshold(torch.tensor(0.5), 1.0)) == 0.0


def test_metrics_against_exact_denoisers():
    cfg = _tiny()
    ref = _setup(cfg, None)

    class Exact(torch.nn.Module):  # pretend-LPN: f = soft threshold (the MAP); psi(y) = huber-like, R = |x|
        def forward(self, y):
            return soft_threshold(y, 1.0)

        def scalar(self, y):
            a = y.abs().squeeze(-1)
            return torch.where(a > 1, 0.5 * (a - 1) ** 2, torch.zeros_like(a))

    met, _ = evaluate(Exact(), {**cfg, "invert_steps": 3000, "invert_lr": 0.05}, ref)
    assert met["map_err"] < 1e-6 and met["mmse_err"] > 0.1
    assert met["prior_err"] < 0.02 and met["prior_corr"] > 0.999


def test_quick_run(tmp_path):
    metrics = quick_run_metrics(ENTRY, tmp_path / "q", workers=1)
    assert set(metrics) >= set(arms(_tiny()))
    assert EXPERIMENT.name == ENTRY
