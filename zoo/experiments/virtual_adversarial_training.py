"""Virtual adversarial training (Miyato et al., TPAMI 2018) at small scale: semi-supervised MNIST-5k, 100 labels.

The paper's semi-supervised claim: with few labels (MNIST, 100), adding the virtual adversarial
loss on labelled *and* unlabelled inputs cuts the test error of the supervised-only network by a
wide margin (and VAT + EntMin, the conditional-entropy term added, is better still on SVHN and
CIFAR-10).

Built on the classification harness (:mod:`zoo.experiments._classbench`). The task keeps 10
labels per class (``labels_per_class: 10``); the other training images carry the label
``UNLABELLED``. Every arm uses :class:`SemiSupervised`: at each step it draws a labelled batch
(``labelled_batch`` examples, cycling through seeded permutations of the 100 labelled ones, the
same sequence for every arm of a seed) for the cross-entropy term, and takes the harness's batch
(``batch_size`` examples of the whole training split, labelled and unlabelled alike, the same
batches for every arm) as the unlabelled batch. So every arm sees the same labelled data, the same
unlabelled batches and the same number of steps, as in the official code (32 labelled + 128
unlabelled per step); the arms differ in the term added to the cross-entropy only:

* ``supervised``: nothing (cross-entropy on the labelled batch: the supervised-only baseline);
* ``vat_eps<e>`` (``e`` with ``p`` for the point: ``vat_eps1p5``): ``LDS`` (:func:`zoo.regularizers.vat.lds`) at ``eps = e`` on the unlabelled batch;
* ``vat_ent_eps<e>``: ``LDS + H(p(y|x))`` (VAT + EntMin).

The derived arms ``vat`` and ``vat_ent`` are the ``eps`` of the grid with the best mean validation
accuracy (:func:`pick_by_validation`; the 400 validation images are labelled, as the paper's
validation set was); ``eps_picked`` records the choice. The supervised baseline has no
hyper-parameter of its own in this grid.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench, pick_by_validation
from zoo.harness import Table
from zoo.regularizers import vat
from zoo.workloads.classification import Task

__all__ = ["EXPERIMENT", "SemiSupervised", "arm_table", "eps_name"]


class SemiSupervised(Objective):
    """Cross-entropy on a seeded labelled batch each step, plus an optional term on the harness's batch.

    ``eps``: ``None`` (supervised only) or the VAT perturbation norm; ``entmin``: weight of the
    entropy term (VAT + EntMin).
    """

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module, eps: float | None = None,
                 entmin: float = 0.0) -> None:
        super().__init__(task, cfg, model)
        self.eps, self.entmin = eps, entmin
        self.xi, self.alpha = float(cfg.get("xi", 1e-6)), float(cfg.get("alpha", 1.0))
        self.lab = task.labelled.nonzero().squeeze(1)
        if self.lab.numel() == 0:
            raise ValueError("SemiSupervised needs labelled training examples")
        self.k = min(int(cfg.get("labelled_batch", 32)), self.lab.numel())
        # One stream per task (the labelled set depends on the seed): the same for every arm.
        key = int(self.lab.sum()) * 7919 + self.lab.numel()
        self.g_lab = torch.Generator().manual_seed(key)
        self.g_dir = torch.Generator().manual_seed(key + 1)
        self.order = torch.empty(0, dtype=torch.long)

    def labelled_batch(self) -> torch.Tensor:
        """The next ``labelled_batch`` indices into ``task.x_train`` (epochs of seeded permutations)."""
        while self.order.numel() < self.k:
            self.order = torch.cat([self.order, torch.randperm(self.lab.numel(), generator=self.g_lab)])
        take, self.order = self.order[: self.k], self.order[self.k :]
        return self.lab[take.to(self.lab.device)]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        idx = self.labelled_batch()
        out = F.cross_entropy(model(self.task.x_train[idx]), self.task.y_train[idx])
        if self.eps is not None:
            out = out + self.alpha * vat.lds(model, batch.x, self.eps, xi=self.xi, generator=self.g_dir)
        if self.entmin:
            out = out + self.entmin * vat.conditional_entropy(model(batch.x))
        return out


def eps_name(e: float) -> str:
    """``1.5 -> "1p5"``: an eps as it appears in an arm name (arm names are snake_case)."""
    return f"{float(e):g}".replace(".", "p")


def arm_table(cfg: dict[str, Any]) -> dict[str, tuple[float | None, float]]:
    """Job arms: name -> (eps or None, entmin weight)."""
    out: dict[str, tuple[float | None, float]] = {"supervised": (None, 0.0)}
    for e in cfg["eps_grid"]:
        out[f"vat_eps{eps_name(e)}"] = (float(e), 0.0)
    for e in cfg["eps_grid"]:
        out[f"vat_ent_eps{eps_name(e)}"] = (float(e), 1.0)
    return out


def _objective(eps: float | None, entmin: float):
    return lambda task, cfg, model: SemiSupervised(task, cfg, model, eps=eps, entmin=entmin)


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {arm: Method(objective=_objective(e, h)) for arm, (e, h) in arm_table(cfg).items()}


def _derive(cfg: dict[str, Any], table: Table, out: dict[str, dict[str, list[float]]]) -> None:
    for name, prefix in (("vat", "vat_eps"), ("vat_ent", "vat_ent_eps")):
        grid = {f"{prefix}{eps_name(e)}": float(e) for e in cfg["eps_grid"]}
        best = pick_by_validation(table, list(grid), "val_acc")
        out[name] = {**table.metrics_of(best), "eps_picked": [grid[best]] * len(table.seeds)}


EXPERIMENT = classbench("virtual_adversarial_training", _methods, extra_derive=_derive,
                        plot_methods=lambda cfg: list(arm_table(cfg)))
