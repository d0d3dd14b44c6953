"""The family's classification harness: fair arms, every method's pieces reach training, settings and metrics.

A harness that gave methods different initial weights or batches, dropped an objective's extra
modules from the optimizer, evaluated the model instead of the objective's prediction, leaked
withheld labels or mislabelled settings fails here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo import harness
from zoo.experiments._classbench import Batch, Method, Objective, classbench, fit, job_arms
from zoo.workloads.classification import UNLABELLED, build_model, load_base, make_task
from tests.experiments.budgets import quick_env

ENV = quick_env()
BASE = {"dataset": "digits", "model": {"kind": "mlp", "hidden": [16]}, "epochs": 2, "batch_size": 128,
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "val_fraction": 0.2}

SEEN: dict[tuple[str, int], dict[str, Any]] = {}


class _Recording(Objective):
    """Cross-entropy that records the initial weights, every batch's indices and labels."""

    tag = "rec"

    def __init__(self, task: Any, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        self.rec = SEEN.setdefault((self.tag, cfg["_seed"]), {"init": {k: v.clone() for k, v in model.state_dict().items()},
                                                             "idx": [], "y": [], "progress": []})

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        self.rec["idx"].append(batch.idx.clone())
        self.rec["y"].append(batch.y.clone())
        self.rec["progress"].append(batch.progress)
        assert torch.equal(batch.x, self.task.x_train[batch.idx])
        return F.cross_entropy(model(batch.x), batch.y, ignore_index=UNLABELLED)


class _Other(_Recording):
    tag = "other"

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return 0.5 * super().loss(model, batch)


def _task(cfg: dict[str, Any], seed: int = 0):
    return make_task(cfg, load_base(cfg["dataset"], ENV.data_dir), seed)


def test_methods_share_init_and_batches_and_seeds_differ() -> None:
    SEEN.clear()
    for seed in (0, 1):
        for meth in (_Recording, _Other):
            torch.manual_seed(seed)  # the harness seeds each job by its seed
            fit(Method(objective=meth), _task(BASE, seed), {**BASE, "_seed": seed}, seed, "cpu")
    for seed in (0, 1):
        a, b = SEEN[("rec", seed)], SEEN[("other", seed)]
        assert all(torch.equal(a["init"][k], b["init"][k]) for k in a["init"])
        assert all(torch.equal(x, y) for x, y in zip(a["idx"], b["idx"], strict=True))
        assert a["progress"][0] == 0.0 and 0.9 < a["progress"][-1] < 1.0
    assert not torch.equal(SEEN[("rec", 0)]["init"]["0.weight"], SEEN[("rec", 1)]["init"]["0.weight"])
    assert not torch.equal(SEEN[("rec", 0)]["idx"][0], SEEN[("rec", 1)]["idx"][0])


class _ExtraParam(Objective):
    """A loss whose value depends on an extra trainable scale: it must be optimised too."""

    def __init__(self, task: Any, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        self.head = nn.Linear(1, 1, bias=False)
        nn.init.ones_(self.head.weight)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(model(batch.x) * self.head.weight[0, 0], batch.y)

    def modules(self) -> list[nn.Module]:
        return [self.head]

    def metrics(self, model: nn.Module) -> dict[str, float]:
        return {"scale": float(self.head.weight.detach()[0, 0])}


class _Constant(Objective):
    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(torch.zeros(x.shape[0], dtype=torch.long), self.task.num_classes).float()


def test_extra_modules_are_trained_and_predict_is_what_is_measured() -> None:
    torch.manual_seed(0)
    out = fit(Method(objective=_ExtraParam), _task(BASE), BASE, 0, "cpu")
    assert out.metrics["scale"] != 1.0
    task = _task(BASE)
    out = fit(Method(objective=_Constant), task, BASE, 0, "cpu")
    share0 = 100.0 * float((task.y_test == 0).double().mean())
    assert abs(out.metrics["test_acc"] - share0) < 1e-9


def test_a_zero_loss_leaves_the_model_at_its_init() -> None:
    """The method's loss is what trains: scaled to zero, the final model is the initial one."""
    cfg = {**BASE, "epochs": 1}
    task = _task(cfg)
    torch.manual_seed(0)
    init = build_model(cfg["model"], task)
    init_acc = 100.0 * float((init(task.x_test).argmax(-1) == task.y_test).double().mean())
    torch.manual_seed(0)
    zero = fit(Method(loss=lambda z, y: 0.0 * F.cross_entropy(z, y)), task, cfg, 0, "cpu")
    torch.manual_seed(0)
    ce = fit(Method(loss=F.cross_entropy), task, cfg, 0, "cpu")
    assert zero.metrics["test_acc"] == init_acc != ce.metrics["test_acc"]


def test_withheld_labels_never_reach_a_loss() -> None:
    cfg = {**BASE, "labels_per_class": 5}
    seen: list[torch.Tensor] = []

    def loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(y)
        return F.cross_entropy(z, y)

    fit(Method(loss=loss), _task(cfg), cfg, 0, "cpu")
    ys = torch.cat(seen)
    assert (ys != UNLABELLED).all() and ys.numel() == 2 * 50


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {"ce": Method(loss=F.cross_entropy), "half": Method(loss=lambda z, y: 0.5 * F.cross_entropy(z, y),
                                                              settings=("noisy",))}


TEST_BENCH = classbench("test_bench", _methods)


def test_settings_name_arms_and_metrics() -> None:
    cfg = {**BASE, "epochs": 2, "settings": {"clean": {}, "noisy": {"noise": {"kind": "symmetric", "rate": 0.4}}}}
    assert list(job_arms(_methods(cfg), cfg)) == ["ce__clean", "ce__noisy", "half__noisy"]
    res = harness.run(TEST_BENCH, cfg, [0, 1], ENV, workers=1)
    ce = res.metrics["ce"]
    for k in ("test_acc", "test_ece", "test_nll", "test_f1", "val_acc", "peak_test_acc"):
        assert len(ce[f"clean_{k}"]) == 2 and len(ce[f"noisy_{k}"]) == 2
    assert "noisy_memorised" in ce and "clean_memorised" not in ce
    assert set(res.metrics["half"]) == {k for k in ce if k.startswith("noisy_")}
    titles = [c.title for c in res.curves]
    assert any("memorised" in t and "[noisy]" in t for t in titles)
    assert any(t.startswith("Reliability diagram") for t in titles)
