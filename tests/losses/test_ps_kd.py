"""PS-KD's soft-target cross-entropy: the paper's target on hand-computed values, the ramp, limits, options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.ps_kd import PSKDLoss, ps_kd_cross_entropy, pskd_alpha, pskd_targets

LN3 = math.log(3.0)


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def test_hand_values_two_classes() -> None:
    """Logits (ln 3, 0): p = (3/4, 1/4). Label 0, teacher (1/2, 1/2), alpha 0.4: q = (0.8, 0.2).

    L = -(0.8 ln(3/4) + 0.2 ln(1/4)); gradient p - q = (-0.05, 0.05).
    """
    x = torch.tensor([[LN3, 0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0])
    teacher = _t(0.5, 0.5)[None]
    loss = ps_kd_cross_entropy(x, y, teacher, 0.4, reduction="none")
    torch.testing.assert_close(loss, _t(-(0.8 * math.log(0.75) + 0.2 * math.log(0.25))))
    (g,) = torch.autograd.grad(loss.sum(), x)
    torch.testing.assert_close(g, torch.tensor([[-0.05, 0.05]], dtype=torch.float64))
    torch.testing.assert_close(pskd_targets(y, teacher, 0.4, 2, dtype=torch.float64), _t(0.8, 0.2)[None])


def test_teacher_is_a_constant() -> None:
    """No gradient reaches the teacher: it is the previous epoch's prediction."""
    x = torch.randn(4, 3, dtype=torch.float64)
    teacher = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    loss = ps_kd_cross_entropy(x.requires_grad_(True), torch.tensor([0, 1, 2, 0]), teacher.softmax(1), 0.5)
    loss.backward()
    assert teacher.grad is None or torch.all(teacher.grad == 0)


def test_alpha_ramp_is_the_authors() -> None:
    """alpha_t = alpha_T * t / T with 1-based t: the authors' alpha_T * (epoch + 1) / T."""
    assert pskd_alpha(1, 4) == pytest.approx(0.2)
    assert pskd_alpha(4, 4) == pytest.approx(0.8)
    assert pskd_alpha(3, 10, 0.5) == pytest.approx(0.15)
    with pytest.raises(ValueError):
        pskd_alpha(0, 4)


def test_limits_recover_cross_entropy_and_teacher_ce() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (8,), generator=g)
    t = torch.rand(8, 5, generator=g, dtype=torch.float64).softmax(1)
    torch.testing.assert_close(ps_kd_cross_entropy(x, y, t, 0.0), F.cross_entropy(x, y))
    torch.testing.assert_close(ps_kd_cross_entropy(x, y, None, 0.7), F.cross_entropy(x, y))
    # alpha = 1: cross-entropy against the teacher alone (torch's probability targets)
    torch.testing.assert_close(ps_kd_cross_entropy(x, y, t, 1.0), F.cross_entropy(x, t))
    # any alpha: the loss is linear in the target, CE(y) mixed with CE(teacher)
    a = 0.3
    torch.testing.assert_close(ps_kd_cross_entropy(x, y, t, a, reduction="none"),
                               (1 - a) * F.cross_entropy(x, y, reduction="none") + a * F.cross_entropy(x, t, reduction="none"))


def test_label_smoothing_weight_ignore_and_per_element_alpha() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    t = torch.rand(6, 4, generator=g, dtype=torch.float64).softmax(1)
    s, a = 0.2, 0.5
    q = (1 - a) * (F.one_hot(y, 4).double() * (1 - s) + s / 4) + a * t
    torch.testing.assert_close(ps_kd_cross_entropy(x, y, t, a, label_smoothing=s, reduction="none"),
                               -(q * x.log_softmax(1)).sum(1))
    w = _t(1.0, 2.0, 0.5, 3.0)
    y2 = y.clone()
    y2[0] = -100
    per = ps_kd_cross_entropy(x, y, t, a, reduction="none")
    got = ps_kd_cross_entropy(x, y2, t, a, weight=w)
    keep = y2 != -100
    torch.testing.assert_close(got, (w[y[keep]] * per[keep]).sum() / w[y[keep]].sum())
    alphas = torch.linspace(0, 1, 6, dtype=torch.float64)
    each = ps_kd_cross_entropy(x, y, t, alphas, reduction="none")
    for i in range(6):
        torch.testing.assert_close(each[i], ps_kd_cross_entropy(x[i:i + 1], y[i:i + 1], t[i:i + 1], float(alphas[i]), reduction="sum"))


def test_module_passes_options() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (5,), generator=g)
    t = torch.rand(5, 3, generator=g, dtype=torch.float64).softmax(1)
    m = PSKDLoss(alpha=0.3, reduction="sum", label_smoothing=0.1)
    torch.testing.assert_close(m(x, y, t), ps_kd_cross_entropy(x, y, t, 0.3, reduction="sum", label_smoothing=0.1))
    torch.testing.assert_close(m(x, y, t, alpha=0.9), ps_kd_cross_entropy(x, y, t, 0.9, reduction="sum", label_smoothing=0.1))
    assert "alpha=0.3" in repr(m)
