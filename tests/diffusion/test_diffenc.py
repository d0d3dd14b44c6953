"""DiffEnc's loss terms (zoo.diffusion.diffenc): hand-computed values on tiny tensors, the identity
encoder reducing DiffEnc to VDM exactly, the encoder's time derivative, and gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.diffusion.diffenc import VDM, IdentityEncoder, LearnedEncoder, LinearSchedule, discrete_levels


class ConstDenoiser(nn.Module):
    """eps_hat(z, t) = c z (a fixed, hand-computable denoiser)."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(float(c), dtype=torch.float64))

    def forward(self, z, t):
        return self.c * z


class AnalyticEncoder(nn.Module):
    """x_phi = (1 - s2) x + s2 y with y = x + a t^2 (so d x_phi / dt is known in closed form)."""

    learned = True

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a), dtype=torch.float64))

    def forward(self, x, t, sigma2):
        y = x + self.a * t[:, None] ** 2
        s2 = sigma2[:, None]
        return (1 - s2) * x + s2 * y


def _x(b=3, d=2, levels=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return discrete_levels(levels)[torch.randint(0, levels, (b, d), generator=g)].double()


def _model(encoder=None, levels=5, c=0.3, gmin=-7.0, gmax=5.0):
    m = VDM(2, levels, hidden=4, depth=1, encoder=encoder, schedule=LinearSchedule(gmin, gmax)).double()
    m.denoiser = ConstDenoiser(c).double()
    return m


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_vdm_terms_match_hand_computation():
    x = _x()
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    eps = torch.tensor([[0.3, -1.0], [1.2, 0.4], [-0.5, 0.8]], dtype=torch.float64)
    m = _model()
    torch.manual_seed(1)
    terms = m.loss_terms(x, t=t, eps=eps)
    for i in range(3):
        g = -7.0 + 12.0 * float(t[i])
        a, s = math.sqrt(1 / (1 + math.exp(g))), math.sqrt(1 / (1 + math.exp(-g)))
        z = [a * float(x[i, j]) + s * float(eps[i, j]) for j in range(2)]
        xh = [(zj - s * 0.3 * zj) / a for zj in z]
        # VDM: 1/2 gamma' e^{-gamma} ||x - x_hat||^2
        want = 0.5 * 12.0 * math.exp(-g) * sum((float(x[i, j]) - xh[j]) ** 2 for j in range(2))
        assert math.isclose(float(terms["diffusion"][i]), want, rel_tol=1e-10)
        # prior: KL(N(alpha_1 x, sigma_1^2) || N(0, 1))
        a1sq, s1sq = 1 / (1 + math.exp(5.0)), 1 / (1 + math.exp(-5.0))
        kl = sum(0.5 * (s1sq + a1sq * float(x[i, j]) ** 2 - 1 - math.log(s1sq)) for j in range(2))
        assert math.isclose(float(terms["prior"][i]), kl, rel_tol=1e-10)
    assert torch.allclose(terms["nelbo"], terms["diffusion"] + terms["prior"] + terms["recon"])


def test_discrete_decoder_hand_computed_and_normalised():
    m = _model(levels=3)
    x = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)
    a0, s0 = torch.tensor([[0.8]], dtype=torch.float64), torch.tensor([[0.6]], dtype=torch.float64)
    z0 = torch.tensor([[0.1, 0.4]], dtype=torch.float64)
    lp = m.log_decoder(x, z0, a0, s0)
    var = (0.6 / 0.8) ** 2
    for j, (xi, k) in enumerate([(-1.0, 0), (1.0, 2)]):
        logits = [-((float(z0[0, j]) / 0.8 - v) ** 2) / (2 * var) for v in (-1.0, 0.0, 1.0)]
        want = logits[k] - math.log(sum(math.exp(l) for l in logits))
        assert math.isclose(float(lp[0, j]), want, rel_tol=1e-10)
    # the levels' probabilities sum to one for any z0
    tot = sum(m.log_decoder(torch.full((1, 2), v, dtype=torch.float64), z0, a0, s0).exp() for v in (-1.0, 0.0, 1.0))
    assert torch.allclose(tot, torch.ones_like(tot))


def test_identity_initialised_encoder_reduces_to_vdm_exactly():
    torch.manual_seed(0)
    enc = LearnedEncoder(2, 8, 2).double()
    x = _x(b=6)
    vdm, de = _model(), _model(encoder=enc)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = vdm.loss_terms(x, generator=g1), de.loss_terms(x, generator=g2)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-12), k
    # and any nonzero output layer changes it
    with torch.no_grad():
        enc.net[-1].bias.fill_(0.1)
    c = de.loss_terms(x, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(a["diffusion"], c["diffusion"])


def test_diffenc_v_target_matches_closed_form():
    # x_phi = x + s2 a t^2; d/dt = s2 (1 - s2) gamma' a t^2 + 2 s2 a t; v = x_phi - (d/dt) / gamma'
    a = 0.7
    m = _model(encoder=AnalyticEncoder(a))
    x, t = _x(), torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    s2 = torch.sigmoid(-7.0 + 12.0 * t)[:, None]
    xphi = x + s2 * a * t[:, None] ** 2
    dxdt = s2 * (1 - s2) * 12.0 * a * t[:, None] ** 2 + 2 * s2 * a * t[:, None]
    m_, dm = m.encode_with_dt(x, t)
    assert torch.allclose(m_, xphi) and torch.allclose(dm, dxdt)
    assert torch.allclose(m.v_target(x, t), xphi - dxdt / 12.0)


def test_diffenc_diffusion_term_hand_computed():
    a = 0.7
    m = _model(encoder=AnalyticEncoder(a))
    x = _x()
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    eps = torch.tensor([[0.3, -1.0], [1.2, 0.4], [-0.5, 0.8]], dtype=torch.float64)
    terms = m.loss_terms(x, t=t, eps=eps)

    def v(xx, tt):  # x_phi + d x_phi / d lambda, lambda = -gamma
        s2 = 1 / (1 + math.exp(-(-7.0 + 12.0 * tt)))
        xphi = xx + s2 * a * tt ** 2
        return xphi - (s2 * (1 - s2) * 12.0 * a * tt ** 2 + 2 * s2 * a * tt) / 12.0

    for i in range(3):
        ti = float(t[i])
        g = -7.0 + 12.0 * ti
        al, s = math.sqrt(1 / (1 + math.exp(g))), math.sqrt(1 / (1 + math.exp(-g)))
        s2 = s * s
        tot = 0.0
        for j in range(2):
            xphi = float(x[i, j]) + s2 * a * ti ** 2
            z = al * xphi + s * float(eps[i, j])
            xh = (z - s * 0.3 * z) / al
            tot += (v(float(x[i, j]), ti) - v(xh, ti)) ** 2
        want = 0.5 * 12.0 * math.exp(-g) * tot
        assert math.isclose(float(terms["diffusion"][i]), want, rel_tol=1e-9)
    # the prior uses the encoder at t = 1
    a1sq, s1sq = 1 / (1 + math.exp(5.0)), 1 / (1 + math.exp(-5.0))
    mean1 = x + s1sq * a
    kl = 0.5 * (s1sq + a1sq * mean1 ** 2 - 1 - math.log(s1sq)).sum(1)
    assert torch.allclose(terms["prior"], kl)


def test_learned_encoder_jvp_matches_finite_difference():
    torch.manual_seed(0)
    enc = LearnedEncoder(3, 8, 2).double()
    for p in enc.parameters():
        nn.init.normal_(p, std=0.5)
    m = VDM(3, 5, hidden=4, depth=1, encoder=enc).double()
    x, t = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=torch.float64)
    _, dm = m.encode_with_dt(x, t)
    h = 1e-6
    fd = (m.encode(x, t + h) - m.encode(x, t - h)) / (2 * h)
    assert torch.allclose(dm, fd, atol=1e-6)
    assert float(dm.abs().max()) > 1e-3


def test_gradients_reach_the_encoder_and_through_its_time_derivative():
    torch.manual_seed(0)
    m = VDM(4, 5, hidden=8, depth=1, encoder=LearnedEncoder(4, 8, 2)).double()
    x = _x(b=16, d=4)
    m.loss_terms(x, generator=torch.Generator().manual_seed(0))["nelbo"].mean().backward()
    last = m.encoder.net[-1]
    assert float(last.weight.grad.abs().sum()) > 0 and float(last.bias.grad.abs().sum()) > 0
    assert all(p.grad is not None for p in m.denoiser.parameters())
    # the analytic encoder's parameter only enters x_phi through terms that vanish at t = 0;
    # its gradient from the diffusion term alone matches a finite difference of that term
    am = _model(encoder=AnalyticEncoder(0.4))
    t = torch.tensor([0.3, 0.6, 0.95], dtype=torch.float64)
    eps = torch.tensor([[0.3, -1.0], [1.2, 0.4], [-0.5, 0.8]], dtype=torch.float64)
    xx = _x()
    am.loss_terms(xx, t=t, eps=eps)["diffusion"].sum().backward()
    grad = float(am.encoder.a.grad)
    h = 1e-6
    vals = []
    for d in (h, -h):
        with torch.no_grad():
            am.encoder.a.add_(d)
            vals.append(float(am.loss_terms(xx, t=t, eps=eps)["diffusion"].sum()))
            am.encoder.a.sub_(d)
    assert math.isclose(grad, (vals[0] - vals[1]) / (2 * h), rel_tol=1e-5)


def test_bpd_divides_by_dim_ln2_and_schedule_options():
    m = _model()
    terms = {"nelbo": torch.tensor([2.0, 4.0])}
    assert math.isclose(m.bpd(terms)["nelbo"], 3.0 / (2 * math.log(2)))
    s = LinearSchedule(-3.0, 2.0)
    assert torch.allclose(s(torch.tensor([0.0, 1.0])), torch.tensor([-3.0, 2.0]))
    assert torch.allclose(s.dgamma(torch.tensor([0.4])), torch.tensor([5.0]))
    assert isinstance(VDM(2, 5).encoder, IdentityEncoder)


class OffsetEncoder(AnalyticEncoder):
    """y = x + a t^2 + b: differs from x at t = 0, so the reconstruction term sees the encoder."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__(a)
        self.b = b

    def forward(self, x, t, sigma2):
        s2 = sigma2[:, None]
        return (1 - s2) * x + s2 * (x + self.a * t[:, None] ** 2 + self.b)


def test_reconstruction_term_uses_the_encoder_at_t0_hand_computed():
    b = 0.8
    m = _model(encoder=OffsetEncoder(0.0, b), gmin=-2.0, gmax=3.0)
    x = _x()
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    eps = torch.zeros(3, 2, dtype=torch.float64)
    terms = m.loss_terms(x, t=t, eps=eps, generator=torch.Generator().manual_seed(7))
    eps0 = torch.randn(x.shape, generator=torch.Generator().manual_seed(7)).double()  # drawn in float32
    a0, s0 = math.sqrt(1 / (1 + math.exp(-2.0))), math.sqrt(1 / (1 + math.exp(2.0)))
    levels = [-1.0, -0.5, 0.0, 0.5, 1.0]
    for i in range(3):
        want = 0.0
        for j in range(2):
            z0 = a0 * (float(x[i, j]) + s0 ** 2 * b) + s0 * float(eps0[i, j])
            logits = [-((z0 / a0 - v) ** 2) / (2 * (s0 / a0) ** 2) for v in levels]
            k = levels.index(float(x[i, j]))
            want -= logits[k] - math.log(sum(math.exp(l) for l in logits))
        assert math.isclose(float(terms["recon"][i]), want, rel_tol=1e-9)
