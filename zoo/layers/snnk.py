"""Scalable neural network kernels (Sehanobish, Choromanski et al., ICLR 2024, arXiv:2310.13225).

A feed-forward layer computes :math:`f(w_j^\\top x + b_j)` per output unit. An SNNK writes that
as a kernel between *separately* transformed input and parameters,

.. math::  f(w^\\top x + b) \\approx \\Phi(x)^\\top \\Psi(w, b),

with random feature maps built from one Gaussian matrix :math:`G \\in \\mathbb{R}^{m \\times d}`
(rows :math:`\\omega_r \\sim \\mathcal{N}(0, I_d)`), so the input tower never sees the parameters.

* :math:`f = \\exp` (positive random features, the softmax-kernel trick): for every complex
  vector :math:`u`, :math:`\\mathbb{E}_\\omega[e^{\\omega^\\top u}] = e^{u^\\top u/2}`, hence
  :math:`\\mathbb{E}[e^{\\omega^\\top x - \\|x\\|^2/2}\\, e^{\\omega^\\top w - \\|w\\|^2/2}] = e^{w^\\top x}`, and

  .. math:: \\Phi(x)_r = \\tfrac{1}{\\sqrt m} e^{\\omega_r^\\top x - \\|x\\|^2/2},\\qquad
            \\Psi(w, b)_r = \\tfrac{1}{\\sqrt m} e^{b}\\, e^{\\omega_r^\\top w - \\|w\\|^2/2}.

* :math:`f = \\cos, \\sin` (the same identity with :math:`u = \\sqrt{i}\\,x`, :math:`v = \\sqrt{i}\\,w`,
  the complex-Gaussian route the paper's universal random features take for a Fourier
  representation :math:`f(z) = \\int \\tau(\\xi) e^{i \\xi z} d\\xi`):
  :math:`\\phi(x)_r = e^{\\sqrt{i}\\,\\omega_r^\\top x - i\\|x\\|^2/2}`,
  :math:`\\mathbb{E}[\\phi(x)_r \\phi(w)_r] = e^{i w^\\top x}`; the real part estimates
  :math:`\\cos(w^\\top x)`, the imaginary part :math:`\\sin(w^\\top x)` (the bias enters as the phase
  :math:`e^{ib}`).

Both estimators are unbiased with variance :math:`O(1/m)` (:func:`kernel_estimate`).

**Bundling.** A block :math:`y = V f(Wx + b) + c` becomes :math:`y = V\\Psi(W, b)^\\top \\Phi(x) + c
= M \\Phi(x) + c`: the product :math:`M = V\\Psi(W,b)^\\top \\in \\mathbb{R}^{o \\times m}` is learned
directly (:class:`BundledSNNK`), so the block's trainable parameters fall from
:math:`H(d+1) + o(H+1)` to :math:`o(m+1)` and :math:`G` stays fixed. :class:`SNNKLinear` is the
unbundled layer (trainable :math:`W, b`, output :math:`\\Phi(x)^\\top\\Psi(W, b)`).

Departures: the input is scaled by a fixed ``input_scale`` before the feature map (the positive
features' variance grows like :math:`e^{\\|x\\|^2}`; the scale is absorbed by :math:`W`), plain
i.i.d. (not orthogonal) Gaussian rows, and only the exp/cos/sin instances, not the paper's general
URF sampler over :math:`\\tau`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "input_features", "param_features", "kernel_estimate", "exact", "SNNKLinear", "RandomFeatures", "BundledSNNK"]

ACTIVATIONS = ("exp", "cos", "sin")
_SQRT_I = complex(math.cos(math.pi / 4), math.sin(math.pi / 4))


def _complex_map(z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``exp(sqrt(i) G z - i |z|^2 / 2)`` per row of ``z`` (complex, [n, m])."""
    proj = z @ g.T
    sq = (z * z).sum(-1, keepdim=True)
    re = proj * _SQRT_I.real
    im = proj * _SQRT_I.imag - sq / 2
    return torch.exp(re) * torch.complex(torch.cos(im), torch.sin(im))


def input_features(x: torch.Tensor, g: torch.Tensor, activation: str = "exp") -> torch.Tensor:
    """The input tower Phi(x): [n, m] for exp, [n, 2m] (real and imaginary parts) for cos/sin."""
    m = g.shape[0]
    if activation == "exp":
        return torch.exp(x @ g.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)
    if activation in ("cos", "sin"):
        c = _complex_map(x, g) / math.sqrt(m)
        return torch.cat([c.real, c.imag], -1)
    raise ValueError(f"unknown activation {activation!r}: use one of {ACTIVATIONS}")


def param_features(w: torch.Tensor, b: torch.Tensor | None, g: torch.Tensor, activation: str = "exp") -> torch.Tensor:
    """The parameter tower Psi(w, b) per row of ``w``: [units, m] for exp, [units, 2m] for cos/sin."""
    m = g.shape[0]
    b = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device) if b is None else b
    if activation == "exp":
        return torch.exp(w @ g.T - (w * w).sum(-1, keepdim=True) / 2 + b[:, None]) / math.sqrt(m)
    if activation in ("cos", "sin"):
        c = _complex_map(w, g) * torch.complex(torch.cos(b), torch.sin(b))[:, None] / math.sqrt(m)
        # Re(phi psi) = Re phi Re psi - Im phi Im psi ; Im(phi psi) = Re phi Im psi + Im phi Re psi
        if activation == "cos":
            return torch.cat([c.real, -c.imag], -1)
        return torch.cat([c.imag, c.real], -1)
    raise ValueError(f"unknown activation {activation!r}: use one of {ACTIVATIONS}")


def kernel_estimate(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, g: torch.Tensor,
                    activation: str = "exp") -> torch.Tensor:
    """The SNNK estimate of ``f(x @ w.T + b)``: ``Phi(x) @ Psi(w, b).T`` ([n, units])."""
    return input_features(x, g, activation) @ param_features(w, b, g, activation).T


def exact(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, activation: str = "exp") -> torch.Tensor:
    z = x @ w.T + (0 if b is None else b)
    return {"exp": torch.exp, "cos": torch.cos, "sin": torch.sin}[activation](z)


def _gaussian(m: int, d: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(m, d, generator=generator)


class SNNKLinear(nn.Module):
    """Unbundled SNNK layer: trainable ``W`` [out, in], ``b``; output ``Phi(s x) Psi(W, b)^T`` ~ ``f(W s x + b)``."""

    def __init__(self, in_features: int, out_features: int, num_features: int = 256, activation: str = "exp",
                 input_scale: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of {ACTIVATIONS}")
        self.activation, self.input_scale = activation, float(input_scale)
        self.register_buffer("g", _gaussian(num_features, in_features, generator))
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / math.sqrt(in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernel_estimate(x * self.input_scale, self.weight, self.bias, self.g, self.activation)


class RandomFeatures(nn.Module):
    """The fixed input tower ``Phi(s x)`` (no trainable parameters; ``G`` is a stored buffer)."""

    def __init__(self, in_features: int, num_features: int, activation: str = "exp", input_scale: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of {ACTIVATIONS}")
        self.activation, self.input_scale = activation, float(input_scale)
        self.register_buffer("g", _gaussian(num_features, in_features, generator))

    @property
    def out_features(self) -> int:
        return self.g.shape[0] * (1 if self.activation == "exp" else 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return input_features(x.flatten(1) * self.input_scale, self.g, self.activation)


class BundledSNNK(nn.Module):
    """``V f(W x + b) + c`` bundled: ``M Phi(s x) + c`` with ``M`` [out, m] learned directly and ``Phi`` fixed."""

    def __init__(self, in_features: int, out_features: int, num_features: int = 256, activation: str = "exp",
                 input_scale: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.features = RandomFeatures(in_features, num_features, activation, input_scale, generator)
        self.linear = nn.Linear(self.features.out_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))
