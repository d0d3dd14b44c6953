"""BD-KD's losses: forward/reverse KL on hand-computed values, the entropy switch, limits, options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.losses.bd_kd import (BDKDLoss, bd_kd_student_loss, bd_kd_weights, dml_student_loss, entropy,
                              kl_divergence, online_kd_teacher_loss)

LN3 = math.log(3.0)


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


# two classes: student logits (ln 3, 0) -> s = (3/4, 1/4); teacher logits (0, 0) -> t = (1/2, 1/2)
S = torch.tensor([[LN3, 0.0]], dtype=torch.float64)
TT = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([0])
FWD = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)   # KL(t || s)
REV = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(s || t)
CE = -math.log(0.75)


def test_kl_and_entropy_hand_values() -> None:
    ls, lt = S.log_softmax(1), TT.log_softmax(1)
    torch.testing.assert_close(kl_divergence(lt, ls), _t(FWD))
    torch.testing.assert_close(kl_divergence(ls, lt), _t(REV))
    torch.testing.assert_close(entropy(lt), _t(math.log(2.0)))


def test_switch_direction_and_values() -> None:
    """Here the student is the confident one (H(s) < H(t)): forward KL gets delta, (w_f, w_r) = (delta, 1)."""
    wf, wr = bd_kd_weights(S.log_softmax(1), TT.log_softmax(1), 3.0)
    assert (float(wf), float(wr)) == (3.0, 1.0)
    torch.testing.assert_close(bd_kd_student_loss(S, Y, TT, delta=3.0, reduction="none"), _t(CE + 3 * FWD + REV))
    # swap the roles: an unsure student (uniform) with a confident teacher -> (1, delta)
    wf, wr = bd_kd_weights(TT.log_softmax(1), S.log_softmax(1), 3.0)
    assert (float(wf), float(wr)) == (1.0, 3.0)
    torch.testing.assert_close(bd_kd_student_loss(TT, Y, S, delta=3.0, reduction="none"),
                               _t(math.log(2.0) + REV + 3 * FWD))  # KL(s'||t') with s'=(1/2,1/2), t'=(3/4,1/4) is FWD


def test_dml_and_teacher_losses() -> None:
    torch.testing.assert_close(dml_student_loss(S, Y, TT, reduction="none"), _t(CE + FWD))
    torch.testing.assert_close(online_kd_teacher_loss(TT, Y, S, reduction="none"), _t(math.log(2.0) + FWD))
    # KL(t || s) from the teacher's side with t = (1/2, 1/2), s = (3/4, 1/4) is FWD (reverse for the teacher)


def test_delta_one_is_symmetric_and_other_network_is_constant() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (7,), generator=g)
    ls, lt = s.log_softmax(1), t.log_softmax(1)
    want = F.cross_entropy(s, y, reduction="none") + kl_divergence(lt, ls) + kl_divergence(ls, lt)
    got = bd_kd_student_loss(s, y, t, delta=1.0, reduction="none")
    got2 = bd_kd_student_loss(s, y, t, delta=1.0, reduction="none")
    torch.testing.assert_close(got, want.detach())
    g_student = torch.autograd.grad(got2.sum(), s)[0]
    got.sum().backward()
    assert t.grad is None  # no gradient crosses into the teacher
    (online_kd_teacher_loss(t, y, s) + dml_student_loss(t, y, s)).backward()
    assert s.grad is not None and torch.equal(s.grad, g_student)  # the teacher's terms leave the student alone


def test_temperature_scales_the_divergence_by_t_squared() -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(5, 3, generator=g, dtype=torch.float64)
    t = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (5,), generator=g)
    T = 2.5
    lsT, ltT = (s / T).log_softmax(1), (t / T).log_softmax(1)
    wf, wr = bd_kd_weights(lsT, ltT, 2.0)
    want = F.cross_entropy(s, y, reduction="none") + T * T * (wf * kl_divergence(ltT, lsT) + wr * kl_divergence(lsT, ltT))
    torch.testing.assert_close(bd_kd_student_loss(s, y, t, 2.0, T, reduction="none"), want)


def test_module_weight_ignore_and_smoothing() -> None:
    g = torch.Generator().manual_seed(2)
    s = torch.randn(6, 3, generator=g, dtype=torch.float64)
    t = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=g)
    w = _t(0.5, 2.0, 1.0)
    y2 = y.clone()
    y2[1] = -100
    per = bd_kd_student_loss(s, y, t, reduction="none", label_smoothing=0.1)
    keep = y2 != -100
    m = BDKDLoss(weight=w, label_smoothing=0.1)
    torch.testing.assert_close(m(s, y2, t), (w[y[keep]] * per[keep]).sum() / w[y[keep]].sum())
    torch.testing.assert_close(per - bd_kd_student_loss(s, y, t, reduction="none"),
                               F.cross_entropy(s, y, reduction="none", label_smoothing=0.1) - F.cross_entropy(s, y, reduction="none"))
    with pytest.raises(ValueError):
        BDKDLoss(delta=0.0)
