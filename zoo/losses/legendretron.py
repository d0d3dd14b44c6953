"""LegendreTron: a proper canonical multiclass loss learned jointly with the model.

Kevin H. Lam, Christian Walder, Spiridon Penev, Richard Nock. *LegendreTron: Uprising Proper
Multiclass Loss Learning*. ICML 2023. https://arxiv.org/abs/2301.11695 (authors' code:
https://github.com/khflam/legendretron; re-implemented here, nothing copied).

Notation (code name -> paper symbol): ``v`` the model's output in ``R^{C-1}``, ``u`` the learned
monotone map ``R^{C-1} -> R^{C-1}`` (the inverse of the paper's ``v`` in its (u, v)-geometric
structure), ``softmax+`` the map ``z -> exp(z) / (1 + sum exp(z))`` onto the projected simplex
(the gradient of the convex ``LogSumExp+(z) = log(1 + sum exp z)``), ``p`` the class
probabilities (the last one ``1 - sum p_{1:C-1}``).

A proper canonical loss is fixed by its inverse link ``psi^{-1}: R^{C-1} -> projected simplex``,
which must be the gradient of a convex (Legendre) function. LegendreTron writes it as::

    psi^{-1}(v) = softmax+(u(v)),      u = grad g_B o ... o grad g_1

with each ``g_b`` convex, here (as in the authors' code, after Huang et al.'s convex potential
flows) ``g_b(z) = softplus(w1) ICNN_b(z) + softplus(w0) |z|^2 / 2``: an input-convex network
plus a strongly convex quadratic, so every block ``grad g_b`` is strictly monotone and
invertible. With ``u`` the identity this is the softmax of ``(v, 0)``: multinomial logistic
regression. The model and the link are trained together on the log loss of the resulting
probabilities, ``-log p_y`` (the authors' ``NLLLoss`` on ``log_softmax_plus(u(v))``).

Input convention here: the model emits ``C`` logits ``z`` (as every zoo classifier does) and
``v = z_{1:C-1} - z_C``, so the identity link gives *exactly* ``F.cross_entropy(z, y)``
(softmax is shift-invariant). The loss takes torch's ``weight``, ``ignore_index`` and
``reduction`` (through :func:`torch.nn.functional.nll_loss`).

Departures from the authors' code, all in the ICNN: no data-dependent ActNorm layers (their
ICNN3 normalises hidden units with an ActNorm initialised on the first batch); we keep the
structure (a free first layer, positive-weight hidden-to-hidden layers scaled by 1/fan-in,
skip connections from the input, softplus activations) with a fixed final layer. Defaults follow
the authors' LIBSVM runs: 2 blocks, hidden width 2, depth 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.losses.registry import LossCase

__all__ = ["ICNN", "ConvexPotentialBlock", "LegendreLink", "softmax_plus", "log_softmax_plus", "legendretron_nll",
           "LegendreTronLoss"]


def log_softmax_plus(v: Tensor) -> Tensor:
    """``log p`` for ``p = (softmax+(v), 1 - sum softmax+(v))``: ``log_softmax`` of ``(v, 0)``, shape ``(N, C)``."""
    return torch.cat([v, v.new_zeros(v.shape[:-1] + (1,))], dim=-1).log_softmax(-1)


def softmax_plus(v: Tensor) -> Tensor:
    """``exp(v) / (1 + sum exp(v))``: the gradient of ``LogSumExp+``, onto the projected simplex."""
    return log_softmax_plus(v)[..., :-1].exp()


class _PosLinear(nn.Linear):
    """A linear layer with positive weights ``softplus(W) / fan_in`` (keeps the ICNN convex)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, F.softplus(self.weight), self.bias) / x.shape[-1]


class ICNN(nn.Module):
    """An input-convex network ``R^d -> R``: convex in its input because every hidden-to-hidden
    weight is positive and softplus is convex and increasing."""

    def __init__(self, dim: int, hidden: int = 2, depth: int = 4) -> None:
        super().__init__()
        h2 = max(hidden // 2, 1)
        self.first = nn.Linear(dim, hidden)
        self.zs = nn.ModuleList([_PosLinear(hidden if i == 0 else 2 * h2, h2) for i in range(depth - 1)])
        self.xs = nn.ModuleList([nn.Linear(dim, h2) for _ in range(depth - 1)])
        self.augs = nn.ModuleList([nn.Linear(dim, h2) for _ in range(depth - 1)])
        self.out_z = _PosLinear(2 * h2 if depth > 1 else hidden, 1, bias=False)
        self.out_x = nn.Linear(dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        z = F.softplus(self.first(x))
        for wz, wx, wa in zip(self.zs, self.xs, self.augs):
            z = torch.cat([F.softplus(wz(z) + wx(x)), F.softplus(wa(x))], dim=-1)
        return (self.out_z(z) + self.out_x(x)).squeeze(-1)


class ConvexPotentialBlock(nn.Module):
    """``z -> grad g(z)`` with ``g(z) = softplus(w1) ICNN(z) + softplus(w0) |z|^2 / 2`` (strictly monotone)."""

    def __init__(self, dim: int, hidden: int = 2, depth: int = 4) -> None:
        super().__init__()
        self.icnn = ICNN(dim, hidden, depth)
        self.w1 = nn.Parameter(torch.randn(()))
        self.w0 = nn.Parameter(torch.randn(()))

    def potential(self, z: Tensor) -> Tensor:
        return F.softplus(self.w1) * self.icnn(z) + F.softplus(self.w0) * z.pow(2).sum(-1) / 2

    def forward(self, z: Tensor) -> Tensor:
        with torch.enable_grad():
            zz = z if z.requires_grad else z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.potential(zz).sum(), zz, create_graph=True)
        return g


class LegendreLink(nn.Module):
    """The learned part of the inverse canonical link, ``u = grad g_B o ... o grad g_1`` on ``R^{C-1}``."""

    def __init__(self, num_classes: int, blocks: int = 2, hidden: int = 2, depth: int = 4) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"LegendreTron needs at least 2 classes, got {num_classes}")
        self.num_classes = int(num_classes)
        self.blocks = nn.ModuleList([ConvexPotentialBlock(num_classes - 1, hidden, depth) for _ in range(blocks)])

    def forward(self, v: Tensor) -> Tensor:
        for b in self.blocks:
            v = b(v)
        return v

    def log_probs(self, logits: Tensor) -> Tensor:
        """``log psi^{-1}`` of a model's ``C`` logits: ``log_softmax+(u(z_{1:C-1} - z_C))``, shape ``(N, C)``."""
        v = logits[..., :-1] - logits[..., -1:]
        return log_softmax_plus(self(v))


def legendretron_nll(logits: Tensor, target: Tensor, link: LegendreLink, weight: Tensor | None = None,
                     ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """The log loss of LegendreTron's probabilities, ``-log psi^{-1}(v)_y`` (``v = z_{1:C-1} - z_C``).

    Args:
        logits: ``(N, C)`` model outputs.
        target: ``(N,)`` class indices.
        link: the :class:`LegendreLink` trained with the model.
    """
    if logits.dim() != 2 or logits.shape[1] != link.num_classes:
        raise ValueError(f"logits must be (N, {link.num_classes}), got {tuple(logits.shape)}")
    return F.nll_loss(link.log_probs(logits), target, weight=weight, ignore_index=ignore_index, reduction=reduction)


class LegendreTronLoss(nn.Module):
    """LegendreTron as a loss module that owns its learnable link (optimise ``loss.parameters()`` too).

    Example:
        >>> crit = LegendreTronLoss(num_classes=4)
        >>> opt = torch.optim.Adam([*model.parameters(), *crit.parameters()])  # doctest: +SKIP
    """

    def __init__(self, num_classes: int, blocks: int = 2, hidden: int = 2, depth: int = 4, weight: Tensor | None = None,
                 ignore_index: int = -100, reduction: str = "mean", dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.link = LegendreLink(num_classes, blocks, hidden, depth)
        if dtype is not None:
            self.link.to(dtype)
        self.register_buffer("weight", weight)
        self.ignore_index, self.reduction = int(ignore_index), reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return legendretron_nll(logits, target, self.link, self.weight, self.ignore_index, self.reduction)


# A learned link on (N, C) logits: the shared tests run in float64 (dtype), with a fixed seed for
# the link's initial weights. masked_logits=False: v = z - z_C is undefined (inf - inf) for -inf
# logits and the link is a network on v; spatial=False: the link acts on (N, C) rows only.
def _seeded(**kw):  # the registry builds the module twice for some checks: the same weights each time
    torch.manual_seed(0)
    return LegendreTronLoss(**kw)


LOSS_CASES = [
    LossCase("legendretron", _seeded, {"num_classes": 5, "dtype": torch.float64}, masked_logits=False, spatial=False),
]
