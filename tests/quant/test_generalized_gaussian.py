"""GG sampler moments (against scipy.stats.gennorm), init variance, and the shape penalty's direction."""

import math

import pytest
import torch

from zoo.quant.generalized_gaussian import (empirical_rho, gg_alpha, gg_init_, gg_rho, gg_sample, shape_penalty,
                                            weights_of)
from zoo.training import MLP

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("beta", [0.7, 1.0, 2.0, 4.0])
def test_sampler_moments_match_scipy_gennorm(beta):
    std = 0.3
    torch.manual_seed(0)
    w = gg_sample((200_000,), beta, std).double()
    ref = stats.gennorm(beta, scale=gg_alpha(beta, std))
    assert ref.std() == pytest.approx(std, rel=1e-9)
    assert float(w.std()) == pytest.approx(std, rel=0.02)
    assert float(w.abs().mean()) == pytest.approx(ref.expect(abs), rel=0.02)
    kurt = float(((w - w.mean()) / w.std()).pow(4).mean())
    assert kurt == pytest.approx(ref.stats(moments="k") + 3.0, rel=0.08)
    assert float(empirical_rho(w)) == pytest.approx(gg_rho(beta), abs=0.005)
    # distribution, not just moments: Kolmogorov-Smirnov against gennorm
    assert stats.kstest(w[:20_000].numpy(), ref.cdf).pvalue > 1e-3


def test_rho_known_values_and_monotone():
    assert gg_rho(1.0) == pytest.approx(0.5)
    assert gg_rho(2.0) == pytest.approx(2 / math.pi)
    assert gg_rho(0.8) < gg_rho(1.5) < gg_rho(3.0)


def test_init_matches_he_variance_and_shape():
    torch.manual_seed(0)
    m = gg_init_(MLP(64, [300, 100], 10), beta=1.0, xi=2.0)
    first = weights_of(m)[0][1]
    assert float(first.weight.detach().var()) == pytest.approx(2.0 / 64, rel=0.05)
    assert float(empirical_rho(first.weight.detach())) == pytest.approx(gg_rho(1.0), abs=0.01)
    assert float(first.bias.abs().max()) == 0.0


def _shape_after(beta_target, sign=1.0, steps=300):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4000))
    opt = torch.optim.Adam([w], lr=1e-2)
    for _ in range(steps):
        loss = sign * shape_penalty([w], beta_target)
        opt.zero_grad(); loss.backward(); opt.step()
    return float(empirical_rho(w.detach()))


def test_shape_penalty_pulls_toward_the_target_shape():
    start = 2 / math.pi
    r = _shape_after(1.0)
    assert abs(r - gg_rho(1.0)) < 0.2 * abs(start - gg_rho(1.0))  # most of the way from Gaussian to Laplacian
    r4 = _shape_after(4.0)
    assert abs(r4 - gg_rho(4.0)) < 0.2 * abs(start - gg_rho(4.0))


def test_reversed_penalty_moves_away():
    # the check a broken sign must fail: descending -penalty increases the gap
    assert abs(_shape_after(1.0, sign=-1.0) - gg_rho(1.0)) > abs(2 / math.pi - gg_rho(1.0))
