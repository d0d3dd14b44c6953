"""NWOT, "Neural Architecture Search without Training" (Mellor, Turner, Storkey & Crowley,
ICML 2021, arXiv:2006.04647): the score SWAP-NAS compares itself with first.

Each sample ``x_i`` of a mini-batch of ``S`` gets the binary code ``c_i`` of all ``N_A`` ReLU
units; the kernel

    K_H[i, j] = N_A - d_H(c_i, c_j)

counts agreeing units (``d_H`` the Hamming distance), and the score is ``s = log |det K_H|``.
We compute ``K_H = C C^T + (1-C)(1-C)^T`` and its log-determinant with ``slogdet`` in float64;
a singular kernel (two samples with the same code) scores ``-inf`` in exact arithmetic, which we
report as the log-determinant of ``K_H + eps I`` (``eps = 1e-6 N_A``) so ranks stay defined.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.nas.swap import activation_signs

__all__ = ["hamming_kernel", "nwot_score"]


def hamming_kernel(codes: torch.Tensor) -> torch.Tensor:
    """``K_H = N_A - d_H`` of the rows of a boolean ``(S, N_A)`` code matrix, in float64."""
    c = codes.double()
    return c @ c.t() + (1 - c) @ (1 - c).t()


@torch.no_grad()
def nwot_score(model: nn.Module, x: torch.Tensor) -> float:
    """``log |det K_H|`` of ``model``'s ReLU codes on the batch ``x``."""
    k = hamming_kernel(activation_signs(model, x))
    sign, logdet = torch.linalg.slogdet(k)
    if sign <= 0 or not torch.isfinite(logdet):
        k = k + 1e-6 * k.diagonal().max() * torch.eye(k.shape[0], dtype=k.dtype, device=k.device)
        sign, logdet = torch.linalg.slogdet(k)
    return float(logdet)
