"""The shared full-batch loop: the oracle's gradient drives the optimizer, hooks see x_k, g_k and the new state."""

from __future__ import annotations

import torch

from zoo.training.full_batch import full_batch_descent


def test_gradient_descent_on_a_quadratic_follows_the_closed_form():
    # f(x) = 0.5 ||x||^2, gradient x: plain GD with step 0.1 gives x_k = 0.9^k x_0, f_k = 0.5 * 0.81^k ||x_0||^2.
    x = torch.tensor([3.0, -4.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.1)
    seen, after = [], []

    def oracle(ps):
        return 0.5 * ps[0].pow(2).sum(), [ps[0].detach().clone()]

    f = full_batch_descent([x], oracle, opt, 5,
                           before_step=lambda k, g: seen.append((k, float(g[0][0]), float(x[0]))),
                           after_step=lambda k: after.append((k, float(x[0]))))
    expected = [12.5 * 0.81**k for k in range(5)]
    torch.testing.assert_close(f, torch.tensor(expected, dtype=torch.float64))
    assert [k for k, _, _ in seen] == list(range(5))
    assert all(abs(gx - xx) < 1e-12 for _, gx, xx in seen), "before_step sees x_k and its gradient"
    assert [round(v, 10) for _, v in after] == [round(3.0 * 0.9 ** (k + 1), 10) for k in range(5)]


def test_the_oracle_gradient_is_what_the_optimizer_uses():
    x = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([x], lr=1.0)
    full_batch_descent([x], lambda ps: (ps[0].sum(), [torch.tensor([1.0, -2.0, 0.5])]), opt, 2)
    assert torch.equal(x.detach(), torch.tensor([-2.0, 4.0, -1.0]))
