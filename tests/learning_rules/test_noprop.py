"""NoProp-DT: the fixed posterior against Gaussian conditioning, the ELBO weight identity, the
block loss by hand, block independence, and the inference chain's marginals."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from zoo.learning_rules.noprop import (NoPropDT, cosine_alpha_bar, make_optimizers, noprop_block_loss,
                                       posterior_coefficients, predict, snr, train_block_step)


def test_schedule_runs_from_noise_to_near_label() -> None:
    ab = cosine_alpha_bar(10)
    assert ab.shape == (11,) and ab[0] == 0.0
    assert bool((ab[1:] > ab[:-1]).all()) and 0.95 < float(ab[-1]) < 1.0


@pytest.mark.parametrize("T", [1, 3, 10])
def test_posterior_is_gaussian_conditioning_of_the_fixed_process(T: int) -> None:
    """z_t ~ N(sqrt(ab_t) u, 1 - ab_t), z_{t-1} = sqrt(alpha_{t-1}) z_t + sqrt(1 - alpha_{t-1}) eps: condition z_t on z_{t-1}."""
    ab = cosine_alpha_bar(T)
    a, b, c = posterior_coefficients(ab)
    for t in range(1, T + 1):
        alpha_prev = ab[t - 1] / ab[t]
        cov = alpha_prev.sqrt() * (1 - ab[t])  # Cov(z_t, z_{t-1})
        var_prev = alpha_prev * (1 - ab[t]) + (1 - alpha_prev)  # Var(z_{t-1})
        assert float(var_prev) == pytest.approx(float(1 - ab[t - 1]), abs=1e-12)
        gain = cov / var_prev
        assert float(b[t]) == pytest.approx(float(gain), abs=1e-12)
        assert float(a[t]) == pytest.approx(float(ab[t].sqrt() - gain * ab[t - 1].sqrt()), abs=1e-12)
        assert float(c[t]) == pytest.approx(float((1 - ab[t]) - cov ** 2 / var_prev), abs=1e-12)


def test_elbo_weight_is_the_snr_difference() -> None:
    """a_t^2 / c_t = SNR(t) - SNR(t-1): the KL between posterior and model steps (the paper's Eq. 8)."""
    ab = cosine_alpha_bar(10)
    a, _, c = posterior_coefficients(ab)
    s = snr(ab)
    for t in range(1, 11):
        assert float(a[t] ** 2 / c[t]) == pytest.approx(float(s[t] - s[t - 1]), rel=1e-9)
    m = NoPropDT(4, [3], 3, T=10)
    assert torch.allclose(m.snr_diff[1:], (s[1:] - s[:-1]).float())


def test_block_loss_by_hand() -> None:
    torch.manual_seed(0)
    m = NoPropDT(5, [4], 3, T=4, eta=0.3)
    with torch.no_grad():
        m.embed.add_(0.1 * torch.randn_like(m.embed))
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    t = 3
    loss, parts = noprop_block_loss(m, t, x, y, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    ab = cosine_alpha_bar(4).float()
    u = m.embed[y]
    z_prev = ab[t - 1].sqrt() * u + (1 - ab[t - 1]).sqrt() * torch.randn(u.shape, generator=g)
    u_hat = (F.softmax(m.blocks[t - 1].logits(x, z_prev), 1) @ m.embed).detach()
    w = ab[t] / (1 - ab[t]) - ab[t - 1] / (1 - ab[t - 1])
    denoise = 0.5 * 4 * 0.3 * w * ((u_hat - u) ** 2).sum(1).mean()
    z_T = ab[4].sqrt() * u + (1 - ab[4]).sqrt() * torch.randn(u.shape, generator=g)
    ce = F.cross_entropy(m.head(z_T), y)
    assert parts["kl"] == pytest.approx(0.0, abs=1e-6)  # ab_0 = 0: q(z_0 | y) = N(0, I)
    assert float(loss.detach()) == pytest.approx(float((ce + denoise).detach()), rel=1e-5)
    assert parts["denoise"] == pytest.approx(float(denoise), rel=1e-5) and parts["ce"] == pytest.approx(float(ce), rel=1e-5)


def test_kl_term_when_z0_carries_signal() -> None:
    m = NoPropDT(3, [2], 2, T=2)
    m.alpha_bar[0] = 0.2  # a schedule with signal at t = 0
    y = torch.tensor([0, 1])
    _, parts = noprop_block_loss(m, 1, torch.randn(2, 3), y, torch.Generator().manual_seed(0))
    d, s = 2, 0.8
    expected = 0.5 * (0.2 * 1.0 + d * s - d - d * math.log(s))  # ||u_y||^2 = 1 (one-hot rows)
    assert parts["kl"] == pytest.approx(expected, rel=1e-5)


def test_a_step_trains_block_t_head_and_embedding_only() -> None:
    torch.manual_seed(1)
    m = NoPropDT(5, [4], 3, T=3)
    opts = make_optimizers(m, 1e-2)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    train_block_step(m, opts, 2, torch.randn(8, 5), torch.randint(0, 3, (8,)), torch.Generator().manual_seed(0))
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("blocks.1.", "head.", "embed")) for k in changed), changed
    assert any(k.startswith("blocks.1.") for k in changed) and "embed" in changed and "head.weight" in changed


def test_fixed_embedding_stays_one_hot() -> None:
    m = NoPropDT(5, [4], 3, T=2, learn_embedding=False)
    opts = make_optimizers(m, 1e-1)
    train_block_step(m, opts, 1, torch.randn(8, 5), torch.randint(0, 3, (8,)))
    assert torch.equal(m.embed, torch.eye(3))


def test_inference_chain_has_the_posterior_marginals() -> None:
    """With every block predicting u_y exactly, z_t ~ q(z_t | y): mean sqrt(ab_t) u_y, variance 1 - ab_t."""
    T, n = 5, 40000
    m = NoPropDT(2, [2], 3, T=T)
    for blk in m.blocks:  # logits = +inf on class 0: u_hat = e_0 = u_y
        for p in blk.parameters():
            torch.nn.init.zeros_(p)
        blk.fuse[-1].bias.data = torch.tensor([50.0, 0.0, 0.0])
    z_T = {}
    def hook(mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        z_T.setdefault("z", inp[0])

    m.head.register_forward_hook(hook)
    predict(m, torch.zeros(n, 2), torch.Generator().manual_seed(0))
    z = z_T["z"]
    ab = float(m.alpha_bar[T])
    assert z.mean(0).tolist() == pytest.approx([math.sqrt(ab), 0.0, 0.0], abs=0.02)
    assert z.var(0).tolist() == pytest.approx([1 - ab] * 3, abs=0.01)


def test_learns_a_toy_problem() -> None:
    torch.manual_seed(0)
    centers = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = torch.randint(0, 3, (300,))
    x = centers[y] + 0.5 * torch.randn(300, 2)
    m = NoPropDT(2, [16], 3, T=3)
    opts = make_optimizers(m, 1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(15):
        for t in range(1, 4):
            for i in range(0, 300, 50):
                train_block_step(m, opts, t, x[i:i + 50], y[i:i + 50], g)
    acc = float((predict(m, x, torch.Generator().manual_seed(1)) == y).float().mean())
    assert acc > 0.95


def test_rejects_bad_block_index() -> None:
    with pytest.raises(ValueError, match="block index"):
        noprop_block_loss(NoPropDT(2, [2], 2, T=2), 3, torch.randn(1, 2), torch.tensor([0]))
