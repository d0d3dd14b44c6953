"""Tests for zoo.losses.polyloss: identities from the paper, torch conventions, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.polyloss import (
    Poly1CrossEntropyLoss,
    Poly1FocalLoss,
    Poly1SigmoidFocalLoss,
    PolyNCrossEntropyLoss,
    poly1_cross_entropy,
    poly1_focal_loss,
    poly1_sigmoid_focal_loss,
    poly_n_cross_entropy,
    polynomial_loss,
)


def _data(n: int = 16, c: int = 7, dtype: torch.dtype = torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(n, c, generator=g, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return x, y


def _pt(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x.softmax(1).gather(1, y[:, None]).squeeze(1)


# --- epsilon = 0 recovers the base losses exactly ------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_epsilon_zero_is_cross_entropy(reduction: str, label_smoothing: float, weighted: bool) -> None:
    x, y = _data(dtype=torch.float32)
    y[3] = -100  # an ignored target
    w = torch.linspace(0.5, 2.0, x.shape[1]) if weighted else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=label_smoothing)
    assert torch.equal(poly1_cross_entropy(x, y, epsilon=0.0, **kw), F.cross_entropy(x, y, **kw))
    assert torch.equal(poly_n_cross_entropy(x, y, [0.0, 0.0, 0.0], **kw), F.cross_entropy(x, y, **kw))


def test_epsilon_zero_probability_targets_and_spatial() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 3, 2, generator=g)
    q = torch.randn(4, 5, 3, 2, generator=g).softmax(1)
    for red in ("none", "mean", "sum"):
        assert torch.equal(poly1_cross_entropy(x, q, 0.0, reduction=red), F.cross_entropy(x, q, reduction=red))
        assert torch.equal(
            poly1_cross_entropy(x, q, 0.0, reduction=red, label_smoothing=0.2),
            F.cross_entropy(x, q, reduction=red, label_smoothing=0.2),
        )
    y = torch.randint(0, 5, (4, 3, 2), generator=g)
    assert torch.equal(poly1_cross_entropy(x, y, 0.0, reduction="none"), F.cross_entropy(x, y, reduction="none"))


def test_epsilon_zero_is_focal_loss() -> None:
    x, y = _data()
    pt = _pt(x, y)
    gamma = 2.0
    focal = -((1 - pt) ** gamma) * pt.log()
    torch.testing.assert_close(poly1_focal_loss(x, y, 0.0, gamma, reduction="none"), focal)
    # gamma = 0 too: plain cross-entropy.
    torch.testing.assert_close(poly1_focal_loss(x, y, 0.0, 0.0), F.cross_entropy(x, y))


def test_epsilon_zero_is_sigmoid_focal_loss() -> None:
    g = torch.Generator().manual_seed(2)
    x = 3 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    t = (torch.rand(6, 4, generator=g) > 0.7).double()
    p = torch.sigmoid(x)
    pt = t * p + (1 - t) * (1 - p)
    a_t = 0.25 * t + 0.75 * (1 - t)
    ref = -a_t * (1 - pt) ** 2 * pt.log()  # Lin et al.'s focal loss
    torch.testing.assert_close(poly1_sigmoid_focal_loss(x, t, 0.0, reduction="none"), ref)


# --- the formulas ------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [-1.0, 1.0, 2.0])
def test_poly1_formula(eps: float) -> None:
    x, y = _data()
    pt = _pt(x, y)
    torch.testing.assert_close(poly1_cross_entropy(x, y, eps, reduction="none"), -pt.log() + eps * (1 - pt))
    torch.testing.assert_close(
        poly1_focal_loss(x, y, eps, 2.0, reduction="none"), -((1 - pt) ** 2) * pt.log() + eps * (1 - pt) ** 3
    )
    p = torch.sigmoid(x)
    t = F.one_hot(y, x.shape[1]).double()
    pt_s = t * p + (1 - t) * (1 - p)
    a_t = 0.25 * t + 0.75 * (1 - t)
    torch.testing.assert_close(
        poly1_sigmoid_focal_loss(x, t, eps, 2.0, reduction="none"),
        -a_t * (1 - pt_s) ** 2 * pt_s.log() + eps * (1 - pt_s) ** 3,
    )


def test_poly_n_closed_form_matches_truncated_series() -> None:
    """Eq. 4: -log P_t + sum_j e_j (1-P_t)^j equals sum_j (1/j + e_j)(1-P_t)^j, all terms."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(32, 6, generator=g, dtype=torch.float64)  # moderate logits: P_t not tiny
    y = torch.randint(0, 6, (32,), generator=g)
    pt = _pt(x, y)
    eps = [0.7, -0.3, 1.5]
    m = 400
    alphas = [1.0 / j + (eps[j - 1] if j <= len(eps) else 0.0) for j in range(1, m + 1)]
    series = polynomial_loss(x, y, alphas, reduction="none")
    closed = poly_n_cross_entropy(x, y, eps, reduction="none")
    # The dropped tail sum_{j>m} (1-P_t)^j / j is below (1-P_t)^(m+1) / ((m+1) P_t).
    bound = (1 - pt) ** (m + 1) / ((m + 1) * pt)
    assert torch.all(closed - series >= -1e-12)
    assert torch.all(closed - series <= bound + 1e-12)
    # And a short truncation is visibly not cross-entropy (the paper's "drop" study).
    short = polynomial_loss(x, y, [1.0 / j for j in range(1, 3)], reduction="none")
    assert (F.cross_entropy(x, y, reduction="none") - short).max() > 1e-2


def test_poly_n_with_one_coefficient_is_poly1() -> None:
    x, y = _data()
    torch.testing.assert_close(poly_n_cross_entropy(x, y, [1.7]), poly1_cross_entropy(x, y, 1.7))


def test_label_smoothing_poly_term_uses_smoothed_pt() -> None:
    """The paper's appendix: 1 - P_t = sum_c q_c (1 - p_c) with smoothed labels q."""
    x, y = _data()
    s, c = 0.1, x.shape[1]
    q = F.one_hot(y, c).double() * (1 - s) + s / c
    one_minus = (q * (1 - x.softmax(1))).sum(1)
    ce = F.cross_entropy(x, y, reduction="none", label_smoothing=s)
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0, reduction="none", label_smoothing=s), ce + 2 * one_minus)
    # Class indices and the equivalent one-hot probabilities agree.
    torch.testing.assert_close(
        poly1_cross_entropy(x, y, 2.0, label_smoothing=s),
        poly1_cross_entropy(x, F.one_hot(y, c).double(), 2.0, label_smoothing=s),
    )


# --- reductions, weights, ignore_index ---------------------------------------------------------


def test_reductions_and_weights() -> None:
    x, y = _data()
    y[0] = y[5] = -100
    w = torch.rand(x.shape[1], dtype=torch.float64) + 0.5
    per = poly1_cross_entropy(x, y, 2.0, weight=w, reduction="none")
    assert per.shape == y.shape
    assert per[0] == 0 and per[5] == 0
    keep = y != -100
    pt = _pt(x[keep], y[keep])
    torch.testing.assert_close(per[keep], w[y[keep]] * (-pt.log() + 2.0 * (1 - pt)))
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0, weight=w, reduction="sum"), per.sum())
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0, weight=w), per.sum() / w[y[keep]].sum())
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0), poly1_cross_entropy(x, y, 2.0, reduction="none")[keep].mean())
    for fn in (poly1_focal_loss, poly1_sigmoid_focal_loss):
        xx, tt = (x[keep], y[keep]) if fn is poly1_focal_loss else (x, (x > 0).double())
        none = fn(xx, tt, 1.0, reduction="none")
        torch.testing.assert_close(fn(xx, tt, 1.0, reduction="sum"), none.sum())
        torch.testing.assert_close(fn(xx, tt, 1.0, reduction="mean"), none.mean())
    with pytest.raises(ValueError):
        poly1_cross_entropy(x, y, reduction="avg")
    with pytest.raises(ValueError):
        poly1_cross_entropy(x, x.softmax(1), weight=w)


def test_unbatched_input() -> None:
    x, y = _data(n=1)
    torch.testing.assert_close(poly1_cross_entropy(x[0], y[0], 2.0), poly1_cross_entropy(x, y, 2.0))


def test_confident_predictions_stay_accurate() -> None:
    """1 - P_t as the other classes' probability: precise in float32 where 1 - softmax is not."""
    x = torch.tensor([[14.0, 0.0, 0.0]])
    y = torch.tensor([0])
    exact = 2 * math.exp(-14.0) / (1 + 2 * math.exp(-14.0))
    extra = poly1_cross_entropy(x, y, 1.0, reduction="none") - F.cross_entropy(x, y, reduction="none")
    assert math.isclose(float(extra), exact, rel_tol=1e-4)
    naive = 1 - x.softmax(1)[0, 0]  # what the one-line version computes
    assert not math.isclose(float(naive), exact, rel_tol=1e-3)
    t = torch.tensor([[1.0]])
    focal_extra = poly1_sigmoid_focal_loss(torch.tensor([[14.0]]), t, 1.0, gamma=0.0, alpha=-1, reduction="none")
    focal_extra = focal_extra - F.binary_cross_entropy_with_logits(torch.tensor([[14.0]]), t, reduction="none")
    assert math.isclose(float(focal_extra), 1 / (1 + math.exp(14.0)), rel_tol=1e-4)


# --- gradients ---------------------------------------------------------------------------------


def test_gradcheck_float64() -> None:
    x, y = _data(n=5, c=4)
    x.requires_grad_(True)
    w = torch.rand(4, dtype=torch.float64) + 0.5
    t = (torch.rand(5, 4) > 0.5).double()
    q = torch.rand(5, 4, dtype=torch.float64).softmax(1)
    assert torch.autograd.gradcheck(lambda z: poly1_cross_entropy(z, y, 2.0, weight=w, label_smoothing=0.1), (x,))
    assert torch.autograd.gradcheck(lambda z: poly1_cross_entropy(z, q, -0.5), (x,))
    assert torch.autograd.gradcheck(lambda z: poly_n_cross_entropy(z, y, [1.0, -0.5, 0.3], reduction="none"), (x,))
    assert torch.autograd.gradcheck(lambda z: poly1_focal_loss(z, y, 1.0, 2.0, alpha=w), (x,))
    assert torch.autograd.gradcheck(lambda z: poly1_sigmoid_focal_loss(z, t, -1.0, 2.0), (x,))


def test_poly1_gradient_leading_term() -> None:
    """d/dP_t of Poly-1 is -1/P_t - epsilon: a positive epsilon pushes harder near P_t = 1."""
    x, y = _data(n=6)
    x.requires_grad_(True)
    g0 = torch.autograd.grad(poly1_cross_entropy(x, y, 0.0, reduction="sum"), x)[0]
    g2 = torch.autograd.grad(poly1_cross_entropy(x, y, 2.0, reduction="sum"), x)[0]
    p = x.detach().softmax(1)
    pt = p.gather(1, y[:, None])
    # Extra gradient of 2(1 - P_t) w.r.t. logits: -2 P_t (onehot - p).
    extra = -2.0 * pt * (F.one_hot(y, x.shape[1]).double() - p)
    torch.testing.assert_close(g2 - g0, extra)


# --- modules -----------------------------------------------------------------------------------


def test_modules_match_functional_and_move_buffers() -> None:
    x, y = _data()
    w = torch.rand(x.shape[1], dtype=torch.float64) + 0.5
    m = Poly1CrossEntropyLoss(2.0, weight=w, label_smoothing=0.1)
    torch.testing.assert_close(m(x, y), poly1_cross_entropy(x, y, 2.0, weight=w, label_smoothing=0.1))
    assert "weight" in dict(m.named_buffers())
    torch.testing.assert_close(PolyNCrossEntropyLoss([1.0, 0.5])(x, y), poly_n_cross_entropy(x, y, [1.0, 0.5]))
    torch.testing.assert_close(Poly1FocalLoss(1.0, 2.0)(x, y), poly1_focal_loss(x, y, 1.0, 2.0))
    t = (x > 0).double()
    torch.testing.assert_close(Poly1SigmoidFocalLoss(-1.0)(x, t), poly1_sigmoid_focal_loss(x, t, -1.0))
    assert "epsilon=2.0" in repr(m)
    with pytest.raises(ValueError):
        PolyNCrossEntropyLoss([])


# --- differential test against the `polyloss` PyPI package (test-only oracle) -----------------


def test_matches_pypi_polyloss() -> None:
    """polyloss 0.0.2 (jahongir7174) implements Poly-1 CE, class indices, mean reduction.

    It computes 1 - P_t as 1 - sum(onehot * softmax), ours by expm1; float32 agreement to 1e-5.
    """
    ref = pytest.importorskip("polyloss")
    x, y = _data(n=64, c=10, dtype=torch.float32, seed=4)
    for eps in (-1.0, 0.0, 1.0, 2.0):
        torch.testing.assert_close(
            Poly1CrossEntropyLoss(eps)(x, y), ref.PolyLoss(epsilon=eps)(x, y), rtol=1e-5, atol=1e-5
        )


# --- hand-derived values on a two-class example -----------------------------------------------
# Logits z = (ln 3, 0) give p = (3/4, 1/4) exactly: for target 0, P_t = 3/4 and 1 - P_t = 1/4; for
# target 1, P_t = 1/4 and 1 - P_t = 3/4. Every number below is worked out by hand from the
# paper's equations, not by re-running a formula on random inputs.

LN3 = math.log(3.0)


def _two_class(targets: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[LN3, 0.0]] * len(targets), dtype=torch.float64)
    return x, torch.tensor(targets)


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_poly1_hand_values_and_gradient() -> None:
    """Poly-1 with eps = 2: ln(4/3) + 2/4 and ln 4 + 2 * 3/4; its logit gradient by hand.

    d/dz CE = p - onehot; d/dz (1 - P_t) = -P_t (onehot - p). Target 0: (-1/4, 1/4) + 2 (-3/16, 3/16)
    = (-5/8, 5/8). Target 1: (3/4, -3/4) + 2 (3/16, -3/16) = (9/8, -9/8).
    """
    x, y = _two_class([0, 1])
    x.requires_grad_(True)
    loss = poly1_cross_entropy(x, y, 2.0, reduction="none")
    torch.testing.assert_close(loss, _t(math.log(4 / 3) + 0.5, math.log(4.0) + 1.5))
    (grad,) = torch.autograd.grad(loss.sum(), x)
    torch.testing.assert_close(grad, torch.tensor([[-5 / 8, 5 / 8], [9 / 8, -9 / 8]], dtype=torch.float64))
    # eps = 0: exactly the cross-entropy values ln(4/3), ln 4.
    torch.testing.assert_close(poly1_cross_entropy(x, y, 0.0, reduction="none"), _t(math.log(4 / 3), math.log(4.0)))
    # eps = -1 (the paper's detection setting): the leading coefficient 1 + eps vanishes.
    torch.testing.assert_close(
        poly1_cross_entropy(x, y, -1.0, reduction="none"), _t(math.log(4 / 3) - 0.25, math.log(4.0) - 0.75)
    )


def test_poly_n_hand_values() -> None:
    """eps = (1, 2, 3): 1/4 + 2/16 + 3/64 = 27/64 and 3/4 + 2 * 9/16 + 3 * 27/64 = 201/64 over CE."""
    x, y = _two_class([0, 1])
    extra = poly_n_cross_entropy(x, y, [1.0, 2.0, 3.0], reduction="none") - _t(math.log(4 / 3), math.log(4.0))
    torch.testing.assert_close(extra, _t(27 / 64, 201 / 64))
    # The truncated series with alphas (1, 1/2): 1/4 + 1/32 and 3/4 + 9/32.
    torch.testing.assert_close(polynomial_loss(x, y, [1.0, 0.5], reduction="none"), _t(9 / 32, 33 / 32))
    torch.testing.assert_close(polynomial_loss(x, y, [1.0, 0.5]), _t(21 / 32)[0])


def test_focal_hand_values_gamma_alpha_eps() -> None:
    """-a_t (1 - P_t)^g ln P_t + eps (1 - P_t)^(g + 1), with a_t weighting the focal term only."""
    x, y = _two_class([0, 1])
    # gamma = 1/2, eps = 1, no alpha: -(1/2) ln(3/4) + 1/8 and -(3/4)^(1/2) ln(1/4) + (3/4)^(3/2).
    want = _t(-0.5 * math.log(0.75) + 1 / 8, -math.sqrt(0.75) * math.log(0.25) + 0.75**1.5)
    torch.testing.assert_close(poly1_focal_loss(x, y, 1.0, 0.5, reduction="none"), want)
    # gamma = 2, eps = 3, alpha = (0.2, 0.8).
    alpha = _t(0.2, 0.8)
    want = _t(-0.2 / 16 * math.log(0.75) + 3 / 64, -0.8 * 9 / 16 * math.log(0.25) + 3 * 27 / 64)
    torch.testing.assert_close(poly1_focal_loss(x, y, 3.0, 2.0, alpha=alpha, reduction="none"), want)
    torch.testing.assert_close(poly1_focal_loss(x, y, 3.0, 2.0, alpha=alpha), want.mean())
    torch.testing.assert_close(poly1_focal_loss(x, y, 3.0, 2.0, alpha=alpha, reduction="sum"), want.sum())
    # Modules pass every option through.
    torch.testing.assert_close(Poly1FocalLoss(3.0, 2.0, alpha=alpha, reduction="none")(x, y), want)
    both = -0.5 * math.log(0.75) + 1 / 8 - math.sqrt(0.75) * math.log(0.25) + 0.75**1.5
    torch.testing.assert_close(Poly1FocalLoss(1.0, 0.5, reduction="sum")(x, y), _t(both)[0])


def test_sigmoid_focal_hand_values() -> None:
    """sigmoid(ln 3) = 3/4: target 1 has P_t = 3/4, a_t = alpha; target 0 has P_t = 1/4, a_t = 1 - alpha."""
    x = _t(LN3, LN3)
    t = _t(1.0, 0.0)
    want = _t(-0.25 / 16 * math.log(0.75) + 1 / 64, -0.75 * 9 / 16 * math.log(0.25) + 27 / 64)
    torch.testing.assert_close(poly1_sigmoid_focal_loss(x, t, 1.0, reduction="none"), want)
    # gamma = 1, eps = -1, alpha = 0.6.
    want = _t(-0.6 / 4 * math.log(0.75) - 1 / 16, -0.4 * 3 / 4 * math.log(0.25) - 9 / 16)
    torch.testing.assert_close(poly1_sigmoid_focal_loss(x, t, -1.0, 1.0, 0.6, reduction="none"), want)
    torch.testing.assert_close(Poly1SigmoidFocalLoss(-1.0, 1.0, 0.6, reduction="none")(x, t), want)
    # alpha < 0 switches the class weighting off.
    want = _t(-1 / 4 * math.log(0.75) + 2 / 16, -3 / 4 * math.log(0.25) + 2 * 9 / 16)
    torch.testing.assert_close(poly1_sigmoid_focal_loss(x, t, 2.0, 1.0, -1.0, reduction="none"), want)


def test_label_smoothing_hand_value() -> None:
    """s = 0.1, C = 2, target 0: q = (0.95, 0.05), 1 - <q, p> = 1 - (0.7125 + 0.0125) = 0.275."""
    x, y = _two_class([0])
    ce = -(0.95 * math.log(0.75) + 0.05 * math.log(0.25))
    want = _t(ce + 2.0 * 0.275)
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0, reduction="none", label_smoothing=0.1), want)
    q = _t(1.0, 0.0)[None]
    torch.testing.assert_close(poly1_cross_entropy(x, q, 2.0, reduction="none", label_smoothing=0.1), want)
    torch.testing.assert_close(Poly1CrossEntropyLoss(2.0, reduction="none", label_smoothing=0.1)(x, y), want)


def test_weight_ignore_and_mean_hand_values() -> None:
    """weight (2, 1/2), targets (0, 1, ignored): terms 2 (ln(4/3) + 1/2), (1/2)(ln 4 + 3/2), 0; mean over 2.5."""
    x, y = _two_class([0, 1, 1])
    y[2] = 5
    w = _t(2.0, 0.5)
    per = _t(2 * (math.log(4 / 3) + 0.5), 0.5 * (math.log(4.0) + 1.5), 0.0)
    kw = dict(weight=w, ignore_index=5)
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0, reduction="none", **kw), per)
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0, reduction="sum", **kw), per.sum())
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0, **kw), per.sum() / 2.5)
    # Unweighted mean: over the two kept targets, not three.
    unweighted = (math.log(4 / 3) + 0.5 + math.log(4.0) + 1.5) / 2
    torch.testing.assert_close(poly1_cross_entropy(x, y, 2.0, ignore_index=5), _t(unweighted)[0])
    torch.testing.assert_close(Poly1CrossEntropyLoss(2.0, weight=w, ignore_index=5)(x, y), per.sum() / 2.5)
    extra = _t(27 / 64, 201 / 64, 0.0)
    torch.testing.assert_close(
        PolyNCrossEntropyLoss([1.0, 2.0, 3.0], ignore_index=5, reduction="none")(x, y),
        _t(math.log(4 / 3), math.log(4.0), 0.0) + extra,
    )
    torch.testing.assert_close(
        PolyNCrossEntropyLoss([1.0, 2.0, 3.0], weight=w, ignore_index=5, reduction="sum")(x, y),
        _t(2 * (math.log(4 / 3) + 27 / 64) + 0.5 * (math.log(4.0) + 201 / 64))[0],
    )
