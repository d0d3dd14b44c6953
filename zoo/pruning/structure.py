"""Sparsity structures shared by the pruning methods: which weights compete, and hard masks.

A structure says what a mask zeroes and among which weights the budget is shared:

* :class:`Unstructured` - single weights, ranked across the whole tensor;
* :class:`NM` - N:M sparsity: in every group of ``m`` consecutive input weights of an output
  unit (row of the weight viewed as ``[out, in * kh * kw]``) keep the ``n`` largest;
* :class:`Channel` - whole output channels (rows), ranked by their squared L2 norm.

Scores are squared magnitudes, as in PDP (the mask compares ``w^2`` with ``t^2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Structure", "Unstructured", "NM", "Channel", "parse_structure", "hard_mask", "sparsity_of"]


@dataclass(frozen=True)
class Unstructured:
    def __str__(self) -> str:
        return "unstructured"


@dataclass(frozen=True)
class NM:
    n: int
    m: int

    def __post_init__(self) -> None:
        if not 0 < self.n < self.m:
            raise ValueError(f"N:M needs 0 < N < M, got {self.n}:{self.m}")

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n / self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


@dataclass(frozen=True)
class Channel:
    def __str__(self) -> str:
        return "channel"


Structure = Unstructured | NM | Channel


def parse_structure(s: str | Structure) -> Structure:
    """``"unstructured"``, ``"channel"`` or ``"N:M"`` (e.g. ``"1:4"``)."""
    if not isinstance(s, str):
        return s
    if s == "unstructured":
        return Unstructured()
    if s == "channel":
        return Channel()
    if ":" in s:
        n, m = s.split(":")
        return NM(int(n), int(m))
    raise ValueError(f"unknown sparsity structure {s!r}; use 'unstructured', 'channel' or 'N:M' like '1:4'")


def rows(weight: torch.Tensor) -> torch.Tensor:
    """The weight as ``[out, fan_in]`` (a view for contiguous Linear/Conv weights)."""
    return weight.reshape(weight.shape[0], -1)


def nm_groups(weight: torch.Tensor, m: int) -> torch.Tensor:
    """The weight as ``[out, fan_in / m, m]`` groups of consecutive input weights."""
    r = rows(weight)
    if r.shape[1] % m:
        raise ValueError(f"N:M with M={m} needs fan-in divisible by {m}; weight has fan-in {r.shape[1]}")
    return r.reshape(r.shape[0], -1, m)


def hard_mask(weight: torch.Tensor, sparsity: float, structure: Structure) -> torch.Tensor:
    """A {0, 1} mask of ``weight``'s shape keeping the largest-magnitude weights.

    Exactly ``round(sparsity * count)`` units are zeroed (units are weights or channels); for
    :class:`NM` exactly ``n`` of every ``m`` are kept and ``sparsity`` is ignored. Ties are
    broken by ``topk``, so the count is exact even with equal magnitudes.
    """
    w2 = weight.detach().square()
    if isinstance(structure, NM):
        g = nm_groups(w2, structure.m)
        keep = torch.zeros_like(g)
        keep.scatter_(-1, g.topk(structure.n, dim=-1).indices, 1.0)
        return keep.reshape(weight.shape)
    if isinstance(structure, Channel):
        score = rows(w2).sum(1)
        n_keep = score.numel() - round(sparsity * score.numel())
        keep = torch.zeros_like(score)
        keep[score.topk(n_keep).indices] = 1.0
        return keep.reshape(-1, *([1] * (weight.dim() - 1))).expand_as(weight).clone()
    flat = w2.reshape(-1)
    n_keep = flat.numel() - round(sparsity * flat.numel())
    keep = torch.zeros_like(flat)
    keep[flat.topk(n_keep).indices] = 1.0
    return keep.reshape(weight.shape)


def sparsity_of(weight: torch.Tensor) -> float:
    """Fraction of exact zeros."""
    return float((weight == 0).sum()) / weight.numel()
