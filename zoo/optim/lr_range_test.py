"""The learning-rate range test (Smith, 2017/2018): one short run with a growing learning rate.

Leslie N. Smith. *A disciplined approach to neural network hyper-parameters: Part 1 -- learning
rate, batch size, momentum, and weight decay*. 2018. https://arxiv.org/abs/1803.09820 (the test
itself: *Cyclical Learning Rates for Training Neural Networks*, WACV 2017,
https://arxiv.org/abs/1506.01186).

Train from the initial weights for ``num_iter`` mini-batches while the learning rate grows from
``start_lr`` to ``end_lr``; the loss first falls slowly, then fast, then blows up. Smith reads the
largest useful learning rate off this curve (the one-cycle policy's maximum) and takes the
minimum a factor of about 10 below. With iteration ``i = 0 .. num_iter - 1``::

    lr_i   = start_lr (end_lr / start_lr)^(i / (num_iter - 1))      (mode "exp")
    lr_i   = start_lr + (end_lr - start_lr) i / (num_iter - 1)      (mode "linear")
    L~_0   = L_0,   L~_i = smooth_f L_i + (1 - smooth_f) L~_{i-1}   (exponential smoothing)
    stop after i when L~_i > diverge_th min_{j <= i} L~_j

This is the procedure of ``torch_lr_finder.LRFinder.range_test`` (torch-lr-finder 0.2.2) on the
training loss, history for history (``tests/optim/test_lr_range_test.py``), written as a plain
function over mini-batches so it runs on the zoo's in-memory data. Two read-outs:
:meth:`RangeTest.min_loss_lr` (the learning rate of the lowest smoothed loss: beyond it the loss
rises, Smith's "maximum learning rate") and :meth:`RangeTest.steepest_lr` (torch-lr-finder's
suggestion: the steepest descent of the smoothed loss, after skipping ``skip_start`` and
``skip_end`` points). Departures: the model and optimizer are trained in place (the caller
passes copies; torch-lr-finder restores them afterwards), and a non-finite smoothed loss also
stops the test (torch-lr-finder's comparison is false for NaN and would run on).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["RangeTest", "lr_range_test", "range_lr"]


@dataclass(frozen=True)
class RangeTest:
    """The curve of one range test: the learning rate and smoothed loss of every step taken."""

    lrs: list[float]
    losses: list[float]  # smoothed, as torch-lr-finder's history["loss"]
    raw_losses: list[float]
    diverged: bool  # stopped early because the smoothed loss exceeded diverge_th x its minimum

    def min_loss_lr(self) -> float:
        """The learning rate at the lowest smoothed loss (the first one on a tie)."""
        i = min(range(len(self.losses)), key=lambda k: self.losses[k])
        return self.lrs[i]

    def steepest_lr(self, skip_start: int = 10, skip_end: int = 5) -> float:
        """torch-lr-finder's suggestion: the lr of the most negative ``numpy.gradient`` of the
        smoothed losses, after dropping ``skip_start`` points at the start and ``skip_end`` at the end."""
        lrs = self.lrs[skip_start:len(self.lrs) - skip_end if skip_end else None]
        ls = self.losses[skip_start:len(self.losses) - skip_end if skip_end else None]
        if len(ls) < 2:
            raise ValueError(f"steepest_lr: {len(self.losses)} points leave fewer than 2 after skipping "
                             f"{skip_start} + {skip_end}; run more iterations")
        n = len(ls)
        grad = [ls[1] - ls[0]] + [(ls[k + 1] - ls[k - 1]) / 2 for k in range(1, n - 1)] + [ls[-1] - ls[-2]]
        return lrs[min(range(n), key=lambda k: grad[k])]


def range_lr(i: int, num_iter: int, start_lr: float, end_lr: float, mode: Literal["exp", "linear"] = "exp") -> float:
    """The learning rate of step ``i`` (0-based) of a ``num_iter``-step range test."""
    r = i / (num_iter - 1)
    if mode == "exp":
        return start_lr * (end_lr / start_lr) ** r
    if mode == "linear":
        return start_lr + r * (end_lr - start_lr)
    raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    start_lr: float = 1e-5,
    end_lr: float = 10.0,
    num_iter: int = 100,
    mode: Literal["exp", "linear"] = "exp",
    smooth_f: float = 0.05,
    diverge_th: float = 5.0,
) -> RangeTest:
    """Run the range test on ``model`` with ``optimizer`` (both trained in place).

    ``batches()`` returns one epoch of mini-batches; it is called again whenever an epoch runs
    out. Every param group's ``lr`` is set to the step's value before the step; ``loss_fn(model,
    x, y)`` is the training loss, evaluated in the optimizer's ``step(closure)``.
    """
    if num_iter <= 1:
        raise ValueError("num_iter must be larger than 1")
    if not 0.0 <= smooth_f < 1.0:
        raise ValueError("smooth_f must be in [0, 1)")
    if not 0.0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    range_lr(0, num_iter, start_lr, end_lr, mode)  # validates mode

    def stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            empty = True
            for b in batches():
                empty = False
                yield b
            if empty:
                raise ValueError("batches() returned no mini-batch")

    it = stream()
    lrs: list[float] = []
    losses: list[float] = []
    raw: list[float] = []
    best = math.inf
    diverged = False
    model.train()
    for i in range(num_iter):
        lr = range_lr(i, num_iter, start_lr, end_lr, mode)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(it)

        def closure(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
            optimizer.zero_grad()
            value = loss_fn(model, x, y)
            value.backward()
            return value

        value = float(optimizer.step(closure).detach())  # type: ignore[union-attr]
        raw.append(value)
        smoothed = value if i == 0 or smooth_f == 0 else smooth_f * value + (1 - smooth_f) * losses[-1]
        best = min(best, smoothed)
        lrs.append(lr)
        losses.append(smoothed)
        if not math.isfinite(smoothed) or smoothed > diverge_th * best:
            diverged = True
            break
    return RangeTest(lrs, losses, raw, diverged)
