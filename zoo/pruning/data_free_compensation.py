r"""Data-free compensation of channel pruning and quantisation in the next layer (UDFC).

Shipeng Bai, Jun Chen, Xintian Shen, Yixuan Qian, Yong Liu. "Unified Data-Free Compression:
Pruning and Quantization without Fine-Tuning", ICCV 2023. https://arxiv.org/abs/2308.07209

**Idea.** Layer :math:`l` (``nn.Linear``, weight :math:`W \in \mathbb{R}^{n\times d}`, bias
:math:`b`) is compressed: its rows outside the kept set :math:`K` are removed (channel pruning) and
the kept rows are quantised, :math:`\hat W_K = Q(W_K)`. UDFC assumes the information of every
damaged channel :math:`i` (pruned, or kept but quantised) survives as a linear combination of the
compressed channels,

.. math:: a_i \approx \sum_{j \in K} S_{ij}\, \hat a_j ,

and rebuilds it in the next layer (weight :math:`V \in \mathbb{R}^{m\times n}`), which reads
:math:`a` only linearly: :math:`V a \approx V S \hat a`, i.e. the next layer's input columns become

.. math:: \hat V_{:,K} = V S,\qquad \hat V_{:,\bar K} = 0 .

The coefficients minimise the expected reconstruction error of the next layer's output,
:math:`\mathbb{E}\lVert V a - \hat V_{:,K}\hat a\rVert^2`. Without data the expectation is taken
over an assumed input distribution of layer :math:`l`: with augmented weights
:math:`A = [W\; b]`, :math:`\hat A = [\hat W_K\; \hat b_K]` and the input second moment
:math:`C = \mathbb{E}[\tilde x\tilde x^\top]` of :math:`\tilde x = [x; 1]`, the (pre-activation)
error is :math:`\operatorname{tr} V(A - S\hat A)C(A - S\hat A)^\top V^\top`, minimised in closed
form (independently of :math:`V`, row by row) by

.. math:: S = A C \hat A^\top\,(\hat A C \hat A^\top + \lambda I)^{-1},

a ridge-regularised least-squares projection of each original channel onto the compressed ones
(:math:`\lambda` only guards a rank-deficient Gram matrix). For a kept channel without quantisation
:math:`S_{i,:} = e_i` exactly (with :math:`\lambda = 0`); for a pruned channel it is the
projection of its weight vector on the kept ones; for a quantised one it absorbs the rounding
error into a correction from the other channels. Pruning alone, quantisation alone and both are
the same formula (the paper's "unified" view).

**Quantised channels** (``quant_mode="scale"``, the default): a kept channel is rebuilt from
itself only, :math:`a_c \approx s_c \hat a_c` with
:math:`s_c = (A C \hat A^\top)_{cc} / (\hat A C \hat A^\top)_{cc}` (the paper's per-channel
scale for a quantised channel); pruned channels use the full row of :math:`S`. ``"full"`` uses the
full least-squares :math:`S` for every channel (under our isotropic prior it over-fits the rounding
noise: it lost up to 2 points at 3 bits in a pilot on two seeds).

**Departures.** (1) The paper derives the expectation through the BatchNorm statistics of a CNN
(Gaussian pre-activations with the BN mean/variance); our MLPs have no BatchNorm, so the data-free
prior is :math:`x \sim (0, \sigma^2 I)` plus the bias coordinate, :math:`C = \operatorname{diag}
(\sigma^2 I, 1)`. (2) The linear-combination assumption is applied to the pre-activations and
carried through the ReLU unchanged (the paper makes the same linear assumption on channel
outputs). (3) Channels are chosen by the L1 norm of their rows (the family's ``l1_channel``
criterion) and quantisation is symmetric per-row (:func:`zoo.quant.uniform.fake_quantize`);
the paper plugs in various pruning/quantisation criteria. (4) Layers are processed front to back,
each next layer compensated before it is itself compressed; the classifier is quantised only.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.quant.uniform import fake_quantize, symmetric_scale

__all__ = ["keep_by_l1", "quantize_rows", "compensation_matrix", "compensate_pair", "compress_mlp"]


def keep_by_l1(weight: torch.Tensor, ratio: float) -> torch.Tensor:
    """Indices (sorted) of the rows kept after removing the ``round(ratio * n)`` lowest L1 norms."""
    n = weight.shape[0]
    n_keep = n - round(ratio * n)
    return weight.detach().abs().sum(1).topk(n_keep).indices.sort().values


def quantize_rows(weight: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Symmetric per-row ``bits``-bit fake quantisation (identity for ``bits=None``)."""
    if bits is None:
        return weight.detach().clone()
    return fake_quantize(weight.detach(), int(bits), symmetric_scale(weight.detach(), int(bits)))


def compensation_matrix(a: torch.Tensor, a_hat: torch.Tensor, cov: torch.Tensor | None = None,
                        ridge: float = 1e-6, keep: torch.Tensor | None = None) -> torch.Tensor:
    r""":math:`S = A C \hat A^\top (\hat A C \hat A^\top + \lambda I)^{-1}` (``n x k``).

    ``a``: original augmented weights ``[n, d+1]``; ``a_hat``: compressed ones ``[k, d+1]``;
    ``cov``: :math:`C` ``[d+1, d+1]`` (identity if None); ``ridge``: :math:`\lambda` relative to the
    Gram matrix's mean diagonal.
    """
    a, a_hat = a.double(), a_hat.double()
    c = torch.eye(a.shape[1], dtype=a.dtype, device=a.device) if cov is None else cov.double()
    gram = a_hat @ c @ a_hat.T
    lam = ridge * gram.diagonal().mean().clamp_min(1e-12)
    rhs = a @ c @ a_hat.T  # [n, k]
    s = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=a.dtype, device=a.device), rhs.T).T
    if keep is not None:  # kept (quantised) channels: a scale of themselves only
        k = torch.arange(keep.numel(), device=a.device)
        diag = rhs[keep, k] / gram.diagonal()
        s[keep] = 0.0
        s[keep, k] = diag
    return s


def _augmented(layer: nn.Linear, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
    w = layer.weight.detach() if weight is None else weight
    b = (layer.bias.detach() if layer.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)) \
        if bias is None else bias
    return torch.cat([w, b[:, None]], 1)


@torch.no_grad()
def compensate_pair(layer: nn.Linear, nxt: nn.Linear, ratio: float, bits: int | None, compensate: bool = True,
                    input_var: float = 1.0, ridge: float = 1e-6, quant_mode: str = "scale") -> torch.Tensor:
    """Prune ``ratio`` of ``layer``'s rows, quantise its kept rows (``bits``), compensate in ``nxt``.

    In place: ``layer``'s pruned rows and biases become zero and its kept rows the quantised
    values; ``nxt``'s columns reading pruned channels become zero and, with ``compensate``, its
    kept columns :math:`V S`. Returns the kept indices.
    """
    keep = keep_by_l1(layer.weight, ratio)
    w_hat = quantize_rows(layer.weight[keep], bits)
    b_hat = layer.bias.detach()[keep].clone() if layer.bias is not None else None
    if compensate:
        d = layer.weight.shape[1]
        cov = torch.diag(torch.cat([torch.full((d,), float(input_var)), torch.ones(1)])).to(layer.weight)
        s = compensation_matrix(_augmented(layer), _augmented(layer, w_hat, b_hat), cov, ridge,
                                keep if quant_mode == "scale" else None)
        v_keep = (nxt.weight.detach().double() @ s).to(nxt.weight.dtype)
    else:
        v_keep = nxt.weight.detach()[:, keep].clone()
    new_w = torch.zeros_like(layer.weight)
    new_w[keep] = w_hat
    layer.weight.copy_(new_w)
    if layer.bias is not None:
        new_b = torch.zeros_like(layer.bias)
        new_b[keep] = b_hat
        layer.bias.copy_(new_b)
    new_v = torch.zeros_like(nxt.weight)
    new_v[:, keep] = v_keep
    nxt.weight.copy_(new_v)
    return keep


@torch.no_grad()
def compress_mlp(layers: list[nn.Linear], ratio: float, bits: int | None, compensate: bool = True,
                 input_var: float = 1.0, ridge: float = 1e-6, quant_mode: str = "scale") -> list[torch.Tensor]:
    """Compress a chain of Linear layers (ReLU in between) front to back; the last is quantised only.

    Returns the kept indices of every layer but the last.
    """
    kept = [compensate_pair(layers[i], layers[i + 1], ratio, bits, compensate, input_var, ridge, quant_mode)
            for i in range(len(layers) - 1)]
    layers[-1].weight.copy_(quantize_rows(layers[-1].weight, bits))
    return kept
