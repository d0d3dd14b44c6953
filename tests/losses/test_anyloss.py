"""AnyLoss (Han et al. 2024): the amplification, the soft confusion matrix and each metric's loss."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.losses.anyloss import AnyLoss, amplify, anyloss, anyloss_f_beta, soft_confusion

BIG = 40.0  # logit whose sigmoid is 1 to float64 precision: a hard 0/1 prediction after amplification


def _hard(pred: list[int], y: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.tensor([BIG if p else -BIG for p in pred], dtype=torch.float64)
    return z, torch.tensor(y)


def test_amplification_formula_and_limits() -> None:
    p = torch.tensor([0.0, 0.4, 0.5, 0.6, 1.0], dtype=torch.float64)
    want = 1 / (1 + torch.exp(-73 * (p - 0.5)))
    torch.testing.assert_close(amplify(p), want)
    assert amplify(torch.tensor(0.5)) == 0.5
    # sigmoid(73 * 0.5) = 1 - 1.6e-16: the amplified values of certain predictions are 0/1
    assert float(amplify(torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError):
        amplify(p, 0.0)


def test_confusion_matrix_of_hard_predictions() -> None:
    # pred: 1 1 0 0 1 0 ; y: 1 0 1 0 1 0 -> TP 2, FP 1, FN 1, TN 2
    z, y = _hard([1, 1, 0, 0, 1, 0], [1, 0, 1, 0, 1, 0])
    c = soft_confusion(z, y)
    torch.testing.assert_close(torch.stack(list(c)), torch.tensor([2.0, 1.0, 1.0, 2.0], dtype=torch.float64))


def test_metrics_on_hard_predictions_are_exact() -> None:
    """pred 1 1 1 0 0 0 0 0 against y 1 1 0 1 1 1 0 0: TP 2, FP 1, FN 3, TN 2."""
    z, y = _hard([1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 0, 1, 1, 1, 0, 0])
    tp, fp, fn, tn = 2.0, 1.0, 3.0, 2.0
    tpr, tnr = tp / (tp + fn), tn / (tn + fp)
    f2 = 5 * tp / (5 * tp + 4 * fn + fp)  # = 10 / 23
    assert f2 == pytest.approx(10 / 23)
    assert float(anyloss(z, y, "f_beta", beta=2.0)) == pytest.approx(1 - 10 / 23, abs=1e-12)
    assert float(anyloss_f_beta(z, y, beta=2.0)) == pytest.approx(1 - 10 / 23, abs=1e-12)
    assert float(anyloss(z, y, "f1")) == pytest.approx(1 - 4 / 8, abs=1e-12)  # 2TP/(2TP+FN+FP) = 4/8
    assert float(anyloss(z, y, "f_beta", beta=0.5)) == pytest.approx(1 - 1.25 * 2 / (1.25 * 2 + 0.25 * 3 + 1), abs=1e-12)
    assert float(anyloss(z, y, "accuracy")) == pytest.approx(1 - 4 / 8, abs=1e-12)
    assert float(anyloss(z, y, "balanced_accuracy")) == pytest.approx(1 - (tpr + tnr) / 2, abs=1e-12)
    assert float(anyloss(z, y, "gmean")) == pytest.approx(1 - math.sqrt(tpr * tnr), abs=1e-12)
    # beta moves the loss: F2 weighs the (many) false negatives more than F1
    assert float(anyloss(z, y, "f_beta", beta=2.0)) > float(anyloss(z, y, "f1"))


def test_soft_values_by_hand() -> None:
    """z = 0 gives p = 1/2 and A = 1/2 exactly: TP = FN = P/2, FP = TN = N/2."""
    z = torch.zeros(4, dtype=torch.float64)
    y = torch.tensor([1, 0, 0, 0])
    c = soft_confusion(z, y)
    torch.testing.assert_close(torch.stack(list(c)), torch.tensor([0.5, 0.5, 1.5, 1.5], dtype=torch.float64))
    # F1 = 2 * 0.5 / (2 * 0.5 + 0.5 + 1.5) = 1/3
    assert float(anyloss(z, y)) == pytest.approx(2 / 3)
    # L scales the amplification: a small L leaves A(p) near 1/2, a large one near 0/1
    z = torch.tensor([1.0], dtype=torch.float64)
    p = 1 / (1 + math.exp(-1.0))
    assert float(soft_confusion(z, torch.tensor([1]), L=10.0).tp) == pytest.approx(1 / (1 + math.exp(-10 * (p - 0.5))))


def test_gradient_direction() -> None:
    """F1: raising a positive's logit lowers the loss, raising a negative's raises it."""
    z = torch.tensor([0.01, -0.02, 0.03, 0.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 0, 0, 1])
    (g,) = torch.autograd.grad(anyloss(z, y), z)
    assert (g[y == 1] < 0).all() and (g[y == 0] > 0).all()


def test_ignore_index_and_shape() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (3, 5), generator=g)
    y2 = y.clone()
    y2[0, :2] = -100
    keep = y2 != -100
    torch.testing.assert_close(anyloss(z, y2), anyloss(z[keep], y[keep]))
    torch.testing.assert_close(anyloss(z, y), anyloss(z.flatten(), y.flatten()))
    with pytest.raises(ValueError):
        anyloss(z, y[:, :2])


def test_degenerate_batches_are_finite() -> None:
    """No positive in the batch: rates are 0, not nan, and the gradient is finite."""
    z = torch.tensor([-3.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0])
    for m in ("f1", "gmean", "balanced_accuracy", "accuracy"):
        v = anyloss(z, y, m)
        (g,) = torch.autograd.grad(v, z)
        assert torch.isfinite(v) and torch.isfinite(g).all(), m


def test_module_and_custom_metric() -> None:
    z, y = _hard([1, 0, 1, 0], [1, 1, 0, 0])
    assert float(AnyLoss("f_beta", beta=2.0)(z, y)) == float(anyloss(z, y, "f_beta", beta=2.0))
    # a user metric: precision
    prec = AnyLoss(lambda c: c.tp / (c.tp + c.fp))
    assert float(prec(z, y)) == pytest.approx(0.5, abs=1e-12)
    assert "beta=2.0" in repr(AnyLoss("f_beta", beta=2.0))
    with pytest.raises(ValueError):
        AnyLoss("auc")
    with pytest.raises(ValueError):
        AnyLoss(L=-1.0)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_matches_pytorch_optimizer_soft_f1(beta: float) -> None:
    """pytorch_optimizer's SoftF1Loss(beta)(y_pred, y_true) takes probabilities; fed A(sigmoid(z)) it is AnyLoss.

    Read from its source (pytorch_optimizer/loss/f1.py): tp, fp, fn sums, precision and recall with
    eps = 1e-6, F = (1 + b^2) P R / (b^2 P + R), which is F-beta; its eps sets the tolerance.
    """
    ref = pytest.importorskip("pytorch_optimizer.loss.f1")
    g = torch.Generator().manual_seed(2)
    z = torch.randn(64, generator=g, dtype=torch.float64) * 0.2
    y = torch.randint(0, 2, (64,), generator=g)
    a = amplify(torch.sigmoid(z))
    want = ref.SoftF1Loss(beta=beta)(a, y.double())
    torch.testing.assert_close(anyloss(z, y, "f_beta", beta=beta), want.double(), atol=1e-5, rtol=0)
