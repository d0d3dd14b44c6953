"""Sparse-softmax (Sun et al. 2021) at small scale: top-k sparse-softmax CE vs softmax CE with many classes.

The paper's claims: in high-dimensional classification (many classes) sparse-softmax gives better
results than the softmax and is simpler and faster. Arms (``arms: {name: {k, warm}}``): softmax
cross-entropy (``k = 0``) and sparse-softmax cross-entropy at ``k``, either from the start
(``warm: 0``) or after the first ``warm`` fraction of the steps trained with softmax
cross-entropy (a fine-tuning arm: the paper's tasks fine-tune pre-trained models, and from a
random initialisation the top-k loss can collapse to equal logits, loss ``log k``).

Built on :mod:`zoo.experiments._classbench`: one job trains one MLP with one loss on one seed,
from the seed's initial weights and batch order, with the shared optimizer and schedule. Besides
the harness's metrics each job measures the speed of its loss, inside the run, after training:
the forward plus backward time of the arm's loss on a fixed ``(timing_batch, C)`` logits tensor
(``loss_us``, median over ``timing_blocks`` blocks of ``timing_reps`` calls, microseconds) and,
interleaved block by block in the same process so that machine load cancels, the same for
``F.cross_entropy`` (``ce_loss_us``); ``loss_time_ratio`` is the ratio of the two medians (1 for
the softmax arm, up to noise).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from zoo.experiments._classbench import Batch, LossObjective, Method, classbench
from zoo.losses.sparse_softmax import sparse_softmax_cross_entropy

__all__ = ["EXPERIMENT", "arm_ks", "time_fwd_bwd"]


def arm_ks(cfg: dict[str, Any]) -> dict[str, tuple[int, float]]:
    """The config's arm table: arm name -> (k, warm) (k = 0: the full softmax; warm: the CE fraction first)."""
    return {str(a): (int(v["k"]), float(v.get("warm", 0.0))) for a, v in cfg["arms"].items()}


# looked up at call time, so a test can spy on the loss every step goes through
def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _sparse(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    return sparse_softmax_cross_entropy(logits, y, k=k)


def time_fwd_bwd(fns: list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]], logits: torch.Tensor,
                 y: torch.Tensor, reps: int, blocks: int) -> list[float]:
    """Median (over ``blocks``) microseconds per forward+backward call of each loss, blocks interleaved."""
    times: list[list[float]] = [[] for _ in fns]
    x = logits.detach().clone().requires_grad_(True)
    for fn in fns:  # warm-up
        fn(x, y).backward()
    for _ in range(blocks):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(reps):
                x.grad = None
                fn(x, y).backward()
            times[i].append(1e6 * (time.perf_counter() - start) / reps)
    return [statistics.median(t) for t in times]


class _Timed(LossObjective):
    """The arm's loss on logits; its final metrics add the loss's measured speed against softmax CE."""

    def __init__(self, task: Any, cfg: dict[str, Any], model: torch.nn.Module, k: int, warm: float) -> None:
        super().__init__(task, cfg, model, lambda z, y: _ce(z, y) if k == 0 else _sparse(z, y, k))
        self.k, self.warm = k, warm

    def timed(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The arm's final loss, unwrapped (what the speed metrics time)."""
        return F.cross_entropy(z, y) if self.k == 0 else sparse_softmax_cross_entropy(z, y, k=self.k)

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        if self.k != 0 and batch.progress < self.warm:  # the softmax warm-up of a fine-tuning arm
            return _ce(model(batch.x), batch.y)
        return super().loss(model, batch)

    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        c = self.task.num_classes
        n = int(self.cfg.get("timing_batch", 128))
        g = torch.Generator().manual_seed(12345)
        logits = torch.randn(n, c, generator=g).to(self.task.x_test.device)
        y = torch.randint(0, c, (n,), generator=g).to(logits.device)
        with torch.enable_grad():
            t_mine, t_ce = time_fwd_bwd([self.timed, lambda z, t: F.cross_entropy(z, t)], logits, y,
                                        int(self.cfg.get("timing_reps", 50)), int(self.cfg.get("timing_blocks", 9)))
        return {"loss_us": t_mine, "ce_loss_us": t_ce, "loss_time_ratio": t_mine / t_ce}


def _method(k: int, warm: float) -> Method:
    return Method(objective=lambda task, cfg, model: _Timed(task, cfg, model, k, warm))


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {arm: _method(k, warm) for arm, (k, warm) in arm_ks(cfg).items()}


EXPERIMENT = classbench("sparse_softmax", _methods)
