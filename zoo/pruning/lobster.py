r"""LOBSTER: loss-based sensitivity regularization (Tartaglione, Bragagnolo, Fiandrotti, Grangetto).

"LOss-Based SensiTivity rEgulaRization: towards deep sparse neural networks", Neural Networks 146
(2022). https://arxiv.org/abs/2011.09905

The *sensitivity* of a parameter :math:`w` is how much the loss reacts to it, read off the
gradient the training step already computed, :math:`S(w) = |\partial L / \partial w|`. Parameters
the loss is insensitive to are shrunk towards zero after the ordinary update,

.. math::

    w \leftarrow w - \eta\,\frac{\partial L}{\partial w} \;-\; \lambda\, w\, \bar S(w),
    \qquad \bar S(w) = \max\big(0,\; 1 - S(w)\big),

so a parameter with large sensitivity keeps its plain gradient update and one with none decays
like weight decay of strength :math:`\lambda`; a parameter that is small *and* unimportant drifts
to zero and is then pruned by a magnitude threshold. With ``rescaled=True`` (the variant of the
authors' EIDOSearch code, ``sensitivity / max(sensitivity)`` per tensor) the sensitivity is
normalised per tensor, :math:`\bar S = 1 - S / \max S`, which makes :math:`\lambda` independent of
the loss scale; ``rescaled=False`` is the paper's clipped form.

Our departures: the shrink is applied after whatever optimizer step the trainer uses (the family
trains with Adam; the paper uses SGD, where the update above is literal) with the raw gradient as
the sensitivity; and the pruning stage (the paper prunes weights below a threshold whenever the
validation loss plateaus, raising the threshold while validation performance allows) is here the
schedule of :class:`zoo.pruning.magnitude.GradualMagnitudePruning` to a fixed target, so the
method can be compared with gradual magnitude pruning at equal sparsity, the only difference being
the sensitivity-based shrinkage.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from zoo.pruning.structure import prunable

__all__ = ["LOBSTER", "insensitivity", "raw_weight"]


def raw_weight(layer: nn.Module) -> torch.Tensor:
    """The trained weight tensor of ``layer`` (the parametrization's original when masked)."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def insensitivity(grad: torch.Tensor, rescaled: bool = True, eps: float = 1e-12) -> torch.Tensor:
    r""":math:`\bar S = \max(0, 1 - |g|)`, or :math:`1 - |g| / \max |g|` with ``rescaled``."""
    s = grad.abs()
    if rescaled:
        s = s / s.max().clamp_min(eps)
    return (1.0 - s).clamp_min(0.0)


class LOBSTER:
    """Shrink the weights of ``model``'s Linear/Conv2d layers by their loss insensitivity.

    Call :meth:`step` after each optimizer step, while the step's gradients are still stored.
    ``lmbda`` is :math:`\\lambda`; biases are left alone (``biases=True`` shrinks them too).
    """

    def __init__(self, model: nn.Module, lmbda: float, rescaled: bool = True, biases: bool = False) -> None:
        if lmbda < 0:
            raise ValueError(f"lmbda must be >= 0, got {lmbda}")
        self.model, self.lmbda, self.rescaled, self.biases = model, float(lmbda), bool(rescaled), bool(biases)

    def tensors(self) -> list[torch.Tensor]:
        out = []
        for _, layer in prunable(self.model):
            out.append(raw_weight(layer))
            if self.biases and layer.bias is not None:
                out.append(layer.bias)
        return out

    @torch.no_grad()
    def step(self) -> None:
        for p in self.tensors():
            if p.grad is None:
                continue
            p.sub_(self.lmbda * p * insensitivity(p.grad, self.rescaled))
