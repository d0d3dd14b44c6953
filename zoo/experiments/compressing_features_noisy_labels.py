"""Compressing features for noisy labels (Chen et al., TNNLS 2022) at small scale.

The paper's claims: compressing the penultimate features with Dropout or, better, Nested Dropout
makes a network fit noisy labels less and generalise better than plain cross-entropy, and
combining the compressed networks with Co-teaching (Han et al. 2018) beats Co-teaching alone.

Built on the family's classification harness (:mod:`zoo.experiments._classbench`): every arm of a
seed starts the evaluated network from the same initial weights, trains it on the same noisy
labels and batches with the same optimizer and schedule. Settings: symmetric 40% and pair-flip
noise (``cfg["settings"]``). Arms:

* ``ce``: cross-entropy;
* ``dropout``: Bernoulli dropout (``p = cfg["dropout_p"]``) on the penultimate features;
* ``nested``: :class:`~zoo.regularizers.nested_dropout.NestedDropout` on the penultimate
  features (``sigma = cfg["nested_sigma"]``); after the last epoch the number of features used
  at test time, ``K``, is the most accurate on the (noisy) validation split, as the authors pick it;
* ``coteach``: Co-teaching (:func:`~zoo.regularizers.co_teaching.co_teaching_loss`) with a peer
  network of the same architecture (its own seeded initial weights, in the objective's
  ``modules()``), forget rate ``tau`` = the setting's noise rate, ramp over ``T_k`` epochs; the
  evaluated network is the first one (the harness's shared model);
* ``nested_coteach``: both co-teaching networks carry nested dropout; ``K`` picked as in
  ``nested``. As the authors do, the nested networks train first (``cfg["nested_stage_epochs"]``
  epochs, every example) and are then fine-tuned with Co-teaching (selection by the validation-
  chosen ``K``), both stages within the shared epoch budget and learning-rate schedule.

Departures: the authors' two stages are two runs, each with its own schedule and model
selection on validation; here they share one run and one cosine schedule, and the final model
is evaluated (no early stopping). Co-teaching alone follows Han et al. (selection from epoch 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench
from zoo.regularizers.co_teaching import co_teaching_loss, forget_rate
from zoo.regularizers.nested_dropout import NestedDropout, feature_dropout_layer, select_k, with_feature_dropout
from zoo.workloads.classification import Task, build_model

__all__ = ["EXPERIMENT", "CoTeachingObjective", "NestedKObjective", "PEER_SEED_OFFSET"]

PEER_SEED_OFFSET = 5_555_555
"""The peer network's generator is seeded ``job seed + PEER_SEED_OFFSET``."""


def _penultimate(model: nn.Module) -> int:
    last = list(model.children())[-1]
    assert isinstance(last, nn.Linear)
    return int(last.in_features)


def _transform(kind: str) -> Any:
    def apply(model: nn.Module, task: Task, cfg: dict[str, Any]) -> nn.Module:
        if kind == "nested":
            layer = feature_dropout_layer("nested", _penultimate(model), sigma=float(cfg.get("nested_sigma", 10.0)))
        else:
            layer = feature_dropout_layer("dropout", _penultimate(model), p=float(cfg.get("dropout_p", 0.3)))
        return with_feature_dropout(model, layer)  # type: ignore[arg-type]

    apply.__name__ = f"with_{kind}"
    return apply


def _nested_layer(model: nn.Module) -> NestedDropout | None:
    for m in model.modules():
        if isinstance(m, NestedDropout):
            return m
    return None


def choose_k(model: nn.Module, task: Task) -> int | None:
    """Set the nested layer's ``k_eval`` to the most accurate ``K`` on the noisy validation split."""
    layer = _nested_layer(model)
    if layer is None or task.x_val.shape[0] == 0:
        return None
    mods = list(model.children())
    body = nn.Sequential(*mods[:-2])  # everything before the nested layer and the classifier
    was = model.training
    model.eval()
    k, _ = select_k(lambda x: body(x.flatten(1)), mods[-1], task.x_val, task.y_val)
    model.train(was)
    layer.k_eval = k
    return k


class NestedKObjective(Objective):
    """Cross-entropy; after every epoch ``K`` is chosen on validation (the last one: ``nested_k``).

    As in the authors' training, which validates every epoch over all ``K``; the per-epoch test
    accuracy is then measured with the current ``K``, and co-teaching selects with it.
    """

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        self.k: int | None = None

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        self.k = choose_k(model, self.task)

    def metrics(self, model: nn.Module) -> dict[str, float]:
        return {"nested_k": float(self.k)} if self.k is not None else {}


class CoTeachingObjective(NestedKObjective):
    """Co-teaching between the shared model (evaluated) and a peer of the same architecture.

    ``transform`` (the arm's feature-dropout insertion, or ``None``) is applied to the peer too.
    """

    transform: Any = None

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch.initial_seed() + PEER_SEED_OFFSET)
            peer = build_model(dict(cfg.get("model") or {"kind": "mlp"}), task)
        self.peer = type(self).transform(peer, task, cfg) if type(self).transform is not None else peer
        noise = cfg.get("noise") or {}
        self.tau = float(cfg.get("forget_rate", noise.get("rate", 0.0)))
        self.t_k = int(cfg.get("t_k", 10))
        self.start = self.first_epoch(cfg)
        self.rates: list[float] = []

    def first_epoch(self, cfg: dict[str, Any]) -> int:
        """The epoch co-teaching's sample selection starts (before it both networks see every example)."""
        return 1

    def modules(self) -> list[nn.Module]:
        return [self.peer]

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        super().on_epoch_end(model, epoch)
        choose_k(self.peer, self.task)  # the peer selects with its own K

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        rate = 0.0 if batch.epoch < self.start else forget_rate(batch.epoch - self.start + 1, self.tau, self.t_k)
        self.rates.append(rate)
        # Selection as the authors do it: an eval()-mode pass without gradient (nested dropout
        # then keeps the K last chosen on validation), before the training-mode pass.
        model.eval()
        self.peer.eval()
        with torch.no_grad():
            sel_f, sel_g = model(batch.x), self.peer(batch.x)
        model.train()
        self.peer.train()
        loss_f, loss_g, _, _ = co_teaching_loss(model(batch.x), self.peer(batch.x), batch.y, rate,
                                                select_f=sel_f, select_g=sel_g)
        return loss_f + loss_g  # each term reaches one network only


class NestedCoTeachingObjective(CoTeachingObjective):
    """The authors' two stages in one run: nested-dropout training, then Co-teaching fine-tuning.

    For the first ``cfg["nested_stage_epochs"]`` epochs both nested networks train on every
    example (the nested stage); Co-teaching's selection, with its forget-rate ramp, starts after.
    """

    transform = staticmethod(_transform("nested"))

    def first_epoch(self, cfg: dict[str, Any]) -> int:
        return int(cfg.get("nested_stage_epochs", int(cfg["epochs"]) // 2)) + 1


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {
        "ce": Method(),
        "dropout": Method(model=_transform("dropout")),
        "nested": Method(model=_transform("nested"), objective=NestedKObjective),
        "coteach": Method(objective=CoTeachingObjective),
        "nested_coteach": Method(model=_transform("nested"), objective=NestedCoTeachingObjective),
    }


EXPERIMENT = classbench("compressing_features_noisy_labels", _methods)
