r"""Dynamic (per-input) channel pruning with self-supervised mask predictors ("Fire Together Wire Together").

Sara Elkerdawy, Mostafa Elhoushi, Hong Zhang, Nilanjan Ray. "Fire Together Wire Together: A
Dynamic Pruning Approach with Self-Supervised Mask Prediction", CVPR 2022.
https://arxiv.org/abs/2110.08232

For every gated layer :math:`l` with output activation :math:`a^l = \mathrm{ReLU}(W^l h^{l-1} + b^l)`
(channels :math:`c = 1..C_l`; for a conv layer each channel is a feature map):

**Self-supervised target (heatmap mass).** The heatmap of channel :math:`c` for input :math:`x` is
its activation mass :math:`m_c(x) = \sum_{u} |a^l_{c,u}(x)|` (sum over spatial positions
:math:`u`; a hidden unit has one). With the channels sorted by decreasing mass,
:math:`m_{(1)} \ge m_{(2)} \ge \dots`, the per-input budget is the smallest :math:`k(x)` holding a
fraction :math:`r` (``mass``) of the total,

.. math:: k(x) = \min\{k : \textstyle\sum_{i \le k} m_{(i)}(x) \ge r \sum_i m_i(x)\},

and the binary target is :math:`t_c(x) = 1` iff :math:`c` is among those top-:math:`k(x)` channels
(:func:`heatmap_mass_targets`).

**Mask predictor.** A small head reads the *previous* layer's (masked) activation,
:math:`s^l = P^l(h^{l-1})` (global max pooling first for feature maps), and is trained as a
binary classifier of the targets,

.. math:: \mathcal{L}_{mask} = \sum_l \mathrm{BCE}(\sigma(s^l), t^l),

with :math:`h^{l-1}` and :math:`t^l` detached, so the mask loss trains only the predictors and the
task loss only the network (the paper's decoupling; the two are trained jointly here,
:math:`\mathcal{L} = \mathcal{L}_{task} + \lambda \mathcal{L}_{mask}`).

**Per-input masking.** The layer's output is :math:`\tilde a^l = a^l \odot \mathbb{1}[s^l > 0]`
(predicted probability above 0.5): channels the predictor rejects are not computed for that
input, and the next layer reads only the kept ones. During the first ``teacher_forcing``
fraction of training the target mask :math:`t^l` is applied instead (the predictor is untrained).

**Cost.** For input :math:`x`, with :math:`n_l(x)` kept channels of gated layer :math:`l`
(:math:`n_0 = ` input features), a Linear layer costs :math:`n_{l-1}(x)\, n_l(x)` MACs and its
predictor :math:`n_{l-1}(x) R + R\, C_l` (rank-:math:`R` head); :func:`expected_macs` averages that
over the inputs actually seen, the predictors' own MACs included.

Departures: the paper gates conv filters of VGG/ResNet/MobileNet with a global-max-pool + 1x1-conv
head; here the gated "channels" are the hidden units of an MLP (conv feature maps also work in
:func:`heatmap_mass_targets`), and the head is a rank-``R`` factorised linear map
(in -> R -> C) so that its cost stays small next to the layer's; with ``svd_init`` it starts
from the rank-R truncated SVD of the gated layer's weights (the pre-activation's best rank-R
approximation), then learns the targets. The masking is simulated
(the full layer is computed and multiplied by the mask); the MACs are accounted, not realised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["heatmap_mass_targets", "MaskPredictor", "predictor_loss", "DynamicMaskedMLP", "expected_macs"]


def heatmap_mass_targets(act: torch.Tensor, mass: float) -> torch.Tensor:
    """{0, 1} targets ``[B, C]``: the fewest channels per input holding ``mass`` of its activation mass.

    ``act`` is ``[B, C]`` (units) or ``[B, C, H, W]`` (feature maps, mass summed over positions).
    An input with no activation at all keeps its single first channel (ties broken by index).
    """
    a = act.detach()
    m = a.abs().reshape(a.shape[0], a.shape[1], -1).sum(-1)
    sorted_m, order = m.sort(dim=1, descending=True)
    total = sorted_m.sum(1, keepdim=True)
    before = sorted_m.cumsum(1) - sorted_m  # mass of the channels ranked above each one
    keep_sorted = before < mass * total  # the channel is needed to reach the mass fraction
    keep_sorted[:, 0] = True
    out = torch.zeros_like(m)
    out.scatter_(1, order, keep_sorted.to(m.dtype))
    return out


class MaskPredictor(nn.Module):
    """Mask logits ``[B, C_out]`` from the previous activation ``[B, C_in]`` (or ``[B, C_in, H, W]``, max-pooled)."""

    def __init__(self, in_features: int, out_features: int, rank: int = 16) -> None:
        super().__init__()
        self.rank = int(rank)
        self.down = nn.Linear(in_features, self.rank, bias=False)
        self.up = nn.Linear(self.rank, out_features)
        nn.init.constant_(self.up.bias, 1.0)  # start by keeping most channels

    @torch.no_grad()
    def init_from(self, layer: nn.Linear) -> None:
        """Start from the rank-R truncated SVD of the gated layer, :math:`s \approx U_R S_R V_R^T h + b`."""
        u, sv, vh = torch.linalg.svd(layer.weight.detach(), full_matrices=False)
        r = min(self.rank, sv.numel())
        root = sv[:r].sqrt()
        self.down.weight.zero_()
        self.up.weight.zero_()
        self.down.weight[:r] = root[:, None] * vh[:r]
        self.up.weight[:, :r] = u[:, :r] * root[None, :]
        self.up.bias.copy_(layer.bias.detach() if layer.bias is not None else torch.zeros_like(self.up.bias))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() == 4:
            h = h.amax(dim=(2, 3))
        return self.up(self.down(h))


def predictor_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """:math:`\\mathrm{BCE}(\\sigma(s), t)`, mean over inputs and channels."""
    return F.binary_cross_entropy_with_logits(logits, targets.detach())


class DynamicMaskedMLP(nn.Module):
    """An :class:`~zoo.training.MLP` whose hidden units are gated per input by :class:`MaskPredictor` s.

    ``mode`` is ``"predicted"`` (the predictors' masks, the deployed behaviour), ``"target"`` (the
    heatmap-mass targets) or ``"dense"`` (no gating). Each forward stores ``mask_losses`` (one BCE
    per gated layer) and ``masks`` (the applied masks, for the cost accounting).
    """

    def __init__(self, mlp: nn.Module, mass: float = 0.9, rank: int = 16, svd_init: bool = False) -> None:
        super().__init__()
        self.linears = nn.ModuleList([m for m in mlp.modules() if isinstance(m, nn.Linear)])
        if len(self.linears) < 2:
            raise ValueError("DynamicMaskedMLP needs at least one hidden layer")
        self.mass, self.mode = float(mass), "predicted"
        self.predictors = nn.ModuleList([MaskPredictor(lin.in_features, lin.out_features, rank)
                                         for lin in self.linears[:-1]])
        if svd_init:
            for lin, pred in zip(self.linears[:-1], self.predictors):
                pred.init_from(lin)
        self.mask_losses: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        self.mask_losses, self.masks = [], []
        for lin, pred in zip(self.linears[:-1], self.predictors):
            a = torch.relu(lin(h))
            if self.mode == "dense":
                self.masks.append(torch.ones_like(a))
                h = a
                continue
            target = heatmap_mass_targets(a, self.mass)
            logits = pred(h.detach())
            self.mask_losses.append(predictor_loss(logits, target))
            mask = target if self.mode == "target" else (logits > 0).to(a.dtype)
            self.masks.append(mask)
            h = a * mask
        return self.linears[-1](h)

    def mask_loss(self) -> torch.Tensor:
        return torch.stack(self.mask_losses).sum()


@torch.no_grad()
def expected_macs(model: DynamicMaskedMLP, x: torch.Tensor, include_predictors: bool = True) -> dict[str, float]:
    """Mean per-input MACs of ``model`` on ``x`` from the masks it applies (its current ``mode``).

    Returns ``macs`` (network + predictors), ``network_macs``, ``predictor_macs``, ``kept`` (mean
    fraction of gated units kept) and ``dense_macs`` (the ungated network's).
    """
    model(x)
    n_prev = torch.full((x.shape[0],), float(model.linears[0].in_features))
    net = torch.zeros(x.shape[0])
    predc = torch.zeros(x.shape[0])
    kept, total = 0.0, 0
    for lin, pred, mask in zip(model.linears[:-1], model.predictors, model.masks):
        n = mask.reshape(mask.shape[0], -1).sum(1).float().cpu()
        net += n_prev * n
        predc += n_prev * pred.rank + pred.rank * lin.out_features
        kept += float(n.sum())
        total += mask.shape[0] * mask.shape[1]
        n_prev = n
    net += n_prev * model.linears[-1].out_features
    dense = sum(lin.in_features * lin.out_features for lin in model.linears)
    macs = net + (predc if include_predictors else 0.0)
    return {"macs": float(macs.mean()), "network_macs": float(net.mean()), "predictor_macs": float(predc.mean()),
            "kept": kept / max(total, 1), "dense_macs": float(dense)}
