"""Co-teaching: the forget-rate ramp, small-loss selection, and each network trained on its peer's pick."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.regularizers.co_teaching import co_teaching_loss, forget_rate, small_loss_indices


def test_forget_rate_is_the_authors_linspace() -> None:
    """np.linspace(0, tau, T_k) over the first T_k epochs, then tau."""
    assert [forget_rate(e, 0.4, 5) for e in range(1, 8)] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    assert forget_rate(1, 0.3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        forget_rate(0, 0.2)


def test_small_loss_indices() -> None:
    loss = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.2])
    assert small_loss_indices(loss, 0.4).tolist() == [1, 4, 3]  # int(0.6 * 5) = 3 smallest
    assert small_loss_indices(loss, 0.0).tolist() == [1, 4, 3, 0, 2]
    assert small_loss_indices(loss, 0.99).tolist() == [1]


def test_each_network_learns_from_its_peers_small_loss_examples() -> None:
    y = torch.tensor([0, 1, 0, 1])
    # f is right on examples 0 and 1, g on examples 2 and 3
    lf = torch.tensor([[3.0, 0.0], [0.0, 3.0], [0.0, 3.0], [3.0, 0.0]], requires_grad=True)
    lg = torch.tensor([[0.0, 3.0], [3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], requires_grad=True)
    loss_f, loss_g, by_f, by_g = co_teaching_loss(lf, lg, y, 0.5)
    assert sorted(by_f.tolist()) == [0, 1] and sorted(by_g.tolist()) == [2, 3]
    # f trains on g's pick (its own hard examples), g on f's
    torch.testing.assert_close(loss_f, F.cross_entropy(lf[[2, 3]], y[[2, 3]]))
    torch.testing.assert_close(loss_g, F.cross_entropy(lg[[0, 1]], y[[0, 1]]))
    (loss_f + loss_g).backward()
    assert torch.all(lf.grad[[0, 1]] == 0) and torch.all(lg.grad[[2, 3]] == 0)
    # selection logits, when given, decide the pick; ignored labels are never picked
    y2 = torch.tensor([0, -100, 0, 1])
    _, _, by_f, by_g = co_teaching_loss(lf, lg, y2, 0.0, select_f=lg.detach(), select_g=lf.detach())
    assert 1 not in by_f.tolist() and 1 not in by_g.tolist()
    _, _, by_f, _ = co_teaching_loss(lf, lg, y, 0.5, select_f=lg.detach())
    assert sorted(by_f.tolist()) == [2, 3]
