"""ELR: the temporal-ensemble target update (Eq. 8), the regulariser (Eq. 6), its gradient and options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.regularizers.early_learning_regularization import EarlyLearningRegularization, elr_regularizer


# These tests compare formulas in float64 (the default dtype is restored after each).
pytestmark = pytest.mark.usefixtures("float64_default")


def _x(n: int = 4, c: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)


def _p(x: torch.Tensor) -> torch.Tensor:
    p = F.softmax(x, -1).clamp(1e-4, 1 - 1e-4)
    return p


def test_targets_are_a_running_average_of_predictions_per_example() -> None:
    elr = EarlyLearningRegularization(10, 3, beta=0.7, lam=3.0)
    x1, y = _x(seed=1)
    x2, _ = _x(seed=2)
    idx = torch.tensor([5, 0, 9, 2])
    elr(x1, y, idx)
    p1 = _p(x1) / _p(x1).sum(-1, keepdim=True)
    torch.testing.assert_close(elr.targets[idx], 0.3 * p1)
    elr(x2, y, idx)
    p2 = _p(x2) / _p(x2).sum(-1, keepdim=True)
    torch.testing.assert_close(elr.targets[idx], 0.7 * 0.3 * p1 + 0.3 * p2)
    # examples not in the batch keep their targets (here, still 0)
    others = torch.tensor([1, 3, 4, 6, 7, 8])
    assert (elr.targets[others] == 0).all()


def test_loss_is_ce_plus_lambda_log_one_minus_inner_product() -> None:
    elr = EarlyLearningRegularization(4, 3, beta=0.7, lam=3.0)
    x0, y = _x(seed=3)
    idx = torch.arange(4)
    elr(x0, y, idx)  # the targets now hold 0.3 p(x0)
    x, _ = _x(seed=4)
    t_before = elr.targets.clone()
    got = elr(x, y, idx)
    p = _p(x)
    t = 0.7 * t_before + 0.3 * p / p.sum(-1, keepdim=True)
    want = F.cross_entropy(x, y) + 3.0 * torch.log(1 - (p * t).sum(-1)).mean()
    torch.testing.assert_close(got, want)
    # hand-computed regulariser
    torch.testing.assert_close(elr_regularizer(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.2, 0.6]])),
                               torch.tensor(torch.log(torch.tensor(0.6)).item()))


def test_lambda_zero_is_cross_entropy() -> None:
    x, y = _x()
    xr = x.clone().requires_grad_(True)
    loss = EarlyLearningRegularization(4, 3, lam=0.0)(xr, y, torch.arange(4))
    torch.testing.assert_close(loss, F.cross_entropy(x, y))


def test_targets_are_not_differentiated_and_the_gradient_pulls_p_towards_t() -> None:
    elr = EarlyLearningRegularization(4, 3, beta=0.9, lam=1.0)
    x0, y = _x(seed=5)
    idx = torch.arange(4)
    for _ in range(3):
        elr(x0, y, idx)
    x, _ = _x(seed=6)
    xr = x.clone().requires_grad_(True)
    t_before = elr.targets.clone()
    loss = elr(xr, y, idx) - F.cross_entropy(xr, y)
    (g,) = torch.autograd.grad(loss, xr)
    # the regulariser's gradient with t held fixed (computed independently)
    p = _p(x)
    t = (0.9 * t_before + 0.1 * p / p.sum(-1, keepdim=True)).detach()
    xc = x.clone().requires_grad_(True)
    ref = torch.log(1 - (F.softmax(xc, -1).clamp(1e-4, 1 - 1e-4) * t).sum(-1)).mean()
    (gref,) = torch.autograd.grad(ref, xc)
    torch.testing.assert_close(g, gref)
    # a descent step on the regulariser raises <p, t>
    step = x - 0.5 * g
    assert ((F.softmax(step, -1) * t).sum(-1) > (F.softmax(x, -1) * t).sum(-1)).all()


def test_ignore_index_drops_the_ce_term_only() -> None:
    x, y = _x()
    y2 = y.clone()
    y2[1] = -100
    a = EarlyLearningRegularization(4, 3, lam=2.0)
    b = EarlyLearningRegularization(4, 3, lam=2.0)
    idx = torch.arange(4)
    got = a(x, y2, idx)
    reg = b(x, y, idx) - F.cross_entropy(x, y)
    torch.testing.assert_close(got, F.cross_entropy(x[[0, 2, 3]], y[[0, 2, 3]]) + reg)
    assert torch.isfinite(EarlyLearningRegularization(4, 3)(x, torch.full((4,), -100), idx))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        EarlyLearningRegularization(3, 3, beta=1.0)
    with pytest.raises(ValueError):
        elr_regularizer(torch.ones(1, 2) / 2, torch.ones(1, 2) / 2, reduction="max")
    assert "beta=0.7" in repr(EarlyLearningRegularization(3, 3))
