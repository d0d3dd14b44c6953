r"""Channel masks from learnable Bernoulli distributions, optimised by policy gradient (forward passes only).

Yuan Gao, Zujing Liu, Weizhong Zhang, Bo Du, Gui-Song Xia. "Bypass Back-propagation:
Optimization-based Structural Pruning for Large Language Models via Policy Gradient", 2024.
https://arxiv.org/abs/2406.10576 (code: github.com/ethanygao/backprop-free_LLM_pruning)

Every output channel :math:`c` of every ``Linear``/``Conv2d`` but the classifier gets a keep
probability :math:`s_c`; a mask :math:`m \sim \prod_c \mathrm{Bern}(s_c)` multiplies the channels
of the (frozen, pretrained) model, and the pruning problem is

.. math:: \min_{s \in [0,1]^C} \; \mathbb E_{m \sim \mathrm{Bern}(s)} \, \mathcal L(W \odot m; \mathcal D_{\text{calib}})
          \quad \text{s.t.}\quad \textstyle\sum_c s_c = K.

Its gradient is estimated with REINFORCE from :math:`B` sampled masks, with the mean loss of the
other samples as the variance-reducing baseline :math:`\delta`:

.. math:: \hat g = \frac1B\sum_{i=1}^B \big(\mathcal L(m_i) - \delta_i\big)\,\nabla_s \log p(m_i \mid s),
          \qquad \nabla_{s_c} \log p(m \mid s) = \frac{m_c - s_c}{s_c (1 - s_c)},

followed by a projected step :math:`s \leftarrow \Pi(s - \eta \hat g)` onto
:math:`\{s \in [\epsilon, 1-\epsilon]^C, \sum_c s_c = K\}` (bisection on a shift). Only forward
passes are needed; no weight is changed. With ``allocation="global"`` the budget is shared by all
layers (the paper's heterogeneous global pruning), with ``"layer"`` each layer keeps its own share.
The final mask keeps the ``K`` channels of largest :math:`s` (per layer or globally).

Departures: channels of an MLP/CNN instead of heads/channels/layers of an LLM; the leave-one-out
baseline in place of the paper's moving average; :math:`s` initialised uniformly at the budget
(the paper also offers metric-based initialisation); a channel-count budget (not parameters).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.pruning.structure import prunable

__all__ = ["project_budget", "reinforce_gradient", "PolicyGradientMasks"]


def project_budget(s: torch.Tensor, k: float, eps: float = 1e-3) -> torch.Tensor:
    """Euclidean projection of ``s`` onto ``{eps <= s <= 1-eps, sum(s) = k}`` (bisection on the shift)."""
    lo, hi = float(s.min()) - 1.0, float(s.max()) + 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float((s - mid).clamp(eps, 1 - eps).sum()) > k:
            lo = mid
        else:
            hi = mid
    return (s - 0.5 * (lo + hi)).clamp(eps, 1 - eps)


def reinforce_gradient(s: torch.Tensor, masks: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1B\sum_i (L_i - \delta_i) (m_i - s)/(s(1-s))`, :math:`\delta_i` the mean of the other losses."""
    b = losses.numel()
    baseline = (losses.sum() - losses) / max(b - 1, 1) if b > 1 else torch.zeros_like(losses)
    score = (masks - s) / (s * (1 - s))
    return ((losses - baseline)[:, None] * score).mean(0)


class PolicyGradientMasks:
    """Learn channel keep-probabilities of a frozen model by REINFORCE; :meth:`harden` zeroes the pruned rows."""

    def __init__(self, model: nn.Module, keep: float, *, allocation: str = "global") -> None:
        if allocation not in ("global", "layer"):
            raise ValueError(f"allocation must be 'global' or 'layer', got {allocation!r}")
        self.model, self.keep, self.allocation = model, keep, allocation
        self.layers = [m for _, m in prunable(model)][:-1]
        self.sizes = [int(m.weight.shape[0]) for m in self.layers]
        dev = self.layers[0].weight.device
        self.s = torch.full((sum(self.sizes),), float(keep), device=dev)
        self._mask: torch.Tensor | None = None
        self._hooks = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self.layers)]

    def _hook(self, i: int) -> Callable:
        off = sum(self.sizes[:i])

        def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor | None:
            if self._mask is None:
                return None
            m = self._mask[:, off : off + self.sizes[i]]  # [B, C]: one mask per sample group
            b = m.shape[0]
            o = out.reshape(b, out.shape[0] // b, *out.shape[1:])
            return (o * m.reshape(b, 1, -1, *([1] * (out.dim() - 2)))).reshape(out.shape)

        return hook

    def _groups(self) -> list[slice]:
        if self.allocation == "global":
            return [slice(0, sum(self.sizes))]
        offs = [0]
        for n in self.sizes:
            offs.append(offs[-1] + n)
        return [slice(a, b) for a, b in zip(offs[:-1], offs[1:])]

    def _project(self, s: torch.Tensor) -> torch.Tensor:
        out = s.clone()
        for g in self._groups():
            out[g] = project_budget(s[g], self.keep * (g.stop - g.start))
        return out

    @torch.no_grad()
    def losses(self, masks: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the masked model on ``(x, y)`` for each of the ``B`` masks (one batched forward)."""
        b = masks.shape[0]
        self._mask = masks
        try:
            logits = self.model(x.repeat(b, *([1] * (x.dim() - 1))))
        finally:
            self._mask = None
        return F.cross_entropy(logits, y.repeat(b), reduction="none").reshape(b, -1).mean(1)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor, *, iterations: int, samples: int, lr: float, batch: int,
            generator: torch.Generator) -> list[float]:
        """``iterations`` projected REINFORCE steps on calibration batches; returns the mean sampled loss per step."""
        was = self.model.training
        self.model.eval()
        hist = []
        for _ in range(iterations):
            idx = torch.randint(0, x.shape[0], (batch,), generator=generator).to(x.device)
            u = torch.rand(samples, self.s.numel(), generator=generator).to(self.s.device)
            masks = (u < self.s).float()
            losses = self.losses(masks, x[idx], y[idx])
            self.s = self._project(self.s - lr * reinforce_gradient(self.s, masks, losses))
            hist.append(float(losses.mean()))
        self.model.train(was)
        return hist

    def final_mask(self) -> torch.Tensor:
        out = torch.zeros_like(self.s)
        for g in self._groups():
            k = max(1, round(self.keep * (g.stop - g.start)))
            out[g.start + self.s[g].topk(k).indices] = 1.0
        return out

    def layer_keep(self) -> list[float]:
        m, out, off = self.final_mask(), [], 0
        for n in self.sizes:
            out.append(float(m[off : off + n].mean()))
            off += n
        return out

    @torch.no_grad()
    def harden(self) -> nn.Module:
        """Remove the hooks and zero the pruned channels' weight rows and biases (export removes them)."""
        for h in self._hooks:
            h.remove()
        m, off = self.final_mask(), 0
        for layer, n in zip(self.layers, self.sizes):
            keep = m[off : off + n]
            layer.weight.mul_(keep.reshape(-1, *([1] * (layer.weight.dim() - 1))))
            if layer.bias is not None:
                layer.bias.mul_(keep)
            off += n
        return self.model
