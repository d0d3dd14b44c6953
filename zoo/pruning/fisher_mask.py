"""FISH masks (Sung, Nair & Raffel 2021, *Training Neural Networks with Fixed Sparse Masks*, NeurIPS).

Train only a fixed subset of ``k`` parameters, chosen once before training as those with the
largest diagonal of the **empirical Fisher information** on the task's data:

.. math:: \\hat F_\\theta = \\frac{1}{N} \\sum_{i=1}^{N} \\big(\\nabla_\\theta \\log p_\\theta(y_i \\mid x_i)\\big)^2

with the *observed* labels ``y_i`` (the paper also tried sampling ``y`` from the model; the
empirical version is the one it uses), ``N`` examples (1024 in the paper) and the per-example
gradient squared element-wise (not the squared batch gradient). The mask keeps the top ``k``
entries of ``F̂`` over *all* parameters (weights and biases, one global ranking) and is then fixed
for the whole training: the other parameters keep their pretrained values.

:func:`fisher_diagonal` computes per-example gradients with ``torch.func`` (vmap of grad), so the
squares are of individual examples' gradients. :func:`top_k_mask` ranks; :func:`random_param_mask`
draws the same number of parameters uniformly at random; :func:`bias_mask` selects every bias
(BitFit-like). :class:`GradMask` zeroes the gradients outside the mask before each optimizer step
(with Adam and no weight decay a parameter whose gradient is always zero never moves).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

__all__ = ["fisher_diagonal", "top_k_mask", "random_param_mask", "bias_mask", "GradMask", "count"]


def fisher_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_samples: int | None = 1024,
                    chunk: int = 256) -> dict[str, torch.Tensor]:
    """Mean over (the first ``n_samples``) examples of the squared per-example gradient of log p(y|x)."""
    if n_samples is not None:
        x, y = x[:n_samples], y[:n_samples]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def logp(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return -F.cross_entropy(out, yi.unsqueeze(0))

    per_example = vmap(grad(logp), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(0, x.shape[0], chunk):
        g = per_example(params, x[i : i + chunk], y[i : i + chunk])
        for n in total:
            total[n] += g[n].pow(2).sum(0)
    return {n: t / x.shape[0] for n, t in total.items()}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def top_k_mask(scores: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """0/1 masks keeping the ``k`` largest scores over all parameters (one global ranking)."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = torch.zeros_like(flat)
    keep[torch.topk(flat, k).indices] = 1.0
    out, i = {}, 0
    for n, s in scores.items():
        out[n] = keep[i : i + s.numel()].view_as(s)
        i += s.numel()
    return out


def random_param_mask(model: nn.Module, k: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``k`` parameters drawn uniformly at random over all parameters."""
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    keep = torch.zeros(total)
    keep[torch.randperm(total, generator=generator)[:k]] = 1.0
    out, i = {}, 0
    for n, p in params.items():
        out[n] = keep[i : i + p.numel()].view_as(p).to(p.device, p.dtype)
        i += p.numel()
    return out


def bias_mask(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every bias trainable, every weight frozen."""
    return {n: (torch.ones_like(p) if n.endswith("bias") else torch.zeros_like(p)) for n, p in model.named_parameters()}


class GradMask:
    """Zero the gradients of the parameters outside ``masks`` (call after backward, before the step)."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        params = dict(model.named_parameters())
        self.pairs = [(params[n], m) for n, m in masks.items()]

    @torch.no_grad()
    def __call__(self) -> None:
        for p, m in self.pairs:
            if p.grad is not None:
                p.grad.mul_(m)

    def trainable(self) -> int:
        return int(sum(float(m.sum()) for _, m in self.pairs))
