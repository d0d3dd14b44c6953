r"""Bit-packing of signed integer codes: ``n`` codes of ``b`` bits take :math:`\lceil n b / 8 \rceil` bytes.

Codes :math:`q \in [-2^{b-1}, 2^{b-1}-1]` are offset to :math:`u = q + 2^{b-1} \in [0, 2^b)`;
bit :math:`k` of every :math:`u` forms a bit plane, and the ``b`` planes are concatenated and
packed eight bits to a byte (``numpy.packbits``). Unpacking inverts it exactly.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["pack_codes", "unpack_codes"]


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """The codes (any shape, flattened) as a ``uint8`` tensor of ``ceil(numel * bits / 8)`` bytes."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    u = (codes.detach().reshape(-1).long() + (1 << (bits - 1))).cpu().numpy()
    if u.size and (u.min() < 0 or u.max() >= (1 << bits)):
        raise ValueError(f"codes out of the {bits}-bit range [{-(1 << (bits - 1))}, {(1 << (bits - 1)) - 1}]")
    planes = ((u[None, :] >> np.arange(bits)[:, None]) & 1).astype(np.uint8).reshape(-1)
    return torch.from_numpy(np.packbits(planes)).to(codes.device)


def unpack_codes(packed: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    """The ``numel`` signed codes (int64) that :func:`pack_codes` packed."""
    planes = np.unpackbits(packed.cpu().numpy())[: bits * numel].reshape(bits, numel).astype(np.int64)
    u = (planes << np.arange(bits)[:, None]).sum(0)
    return torch.from_numpy(u - (1 << (bits - 1))).to(packed.device)
