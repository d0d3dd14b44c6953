"""BD-KD (Amara et al.) at small scale: online distillation between a wide and a narrow MLP.

The paper's claim: in online KD, where teacher and student learn together, balancing forward and
reverse KL per sample in the student's loss (with a reverse-KL regulariser on the teacher) gives
a compact student that is both more accurate and better calibrated than with the plain KL of
deep mutual learning (DML) and other online KD methods.

Built on the family's classification harness (:mod:`zoo.experiments._classbench`). The
*evaluated model is the student*: the harness's shared model (``cfg["model"]``), so every arm of a
seed starts the student from the same initial weights and trains it on the same batches with the
same optimizer and schedule. The teacher (``cfg["teacher"]``, a wider MLP) lives in the
objective (:meth:`OnlineKDObjective.modules`, optimised by the shared optimizer with the student);
its weights are drawn from their own generator, seeded by the job's seed, so both distillation
arms of a seed share the teacher's initial weights too and the student's draw is untouched. Arms:

* ``ce``: the student alone, cross-entropy;
* ``dml``: online KD with plain KL both ways, :func:`zoo.losses.bd_kd.dml_student_loss`
  (``CE + KL(other || self)`` for each network);
* ``bdkd``: :func:`zoo.losses.bd_kd.bd_kd_student_loss` for the student and
  :func:`zoo.losses.bd_kd.online_kd_teacher_loss` for the teacher.

Extra metrics: the teacher's ``teacher_test_acc`` and ``teacher_test_ece``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.experiments._classbench import Batch, Method, Objective, classbench
from zoo.losses.bd_kd import bd_kd_student_loss, dml_student_loss, online_kd_teacher_loss
from zoo.metrics.classification import classification_report
from zoo.workloads.classification import Task, build_model

__all__ = ["EXPERIMENT", "OnlineKDObjective", "TEACHER_SEED_OFFSET"]

TEACHER_SEED_OFFSET = 7_777_777
"""The teacher's generator is seeded ``job seed + TEACHER_SEED_OFFSET``."""


class OnlineKDObjective(Objective):
    """Student (the evaluated model) and teacher trained together; ``mode``: ``"dml"`` or ``"bdkd"``."""

    mode = "dml"

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        super().__init__(task, cfg, model)
        # The harness seeded the job's process with its seed (torch.initial_seed()); the teacher is
        # drawn from a forked stream so that the global stream (the student's and anything after)
        # is exactly what the ce arm sees.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch.initial_seed() + TEACHER_SEED_OFFSET)
            self.teacher = build_model(dict(cfg.get("teacher") or {"kind": "mlp", "hidden": [256, 256]}), task)
        self.temperature = float(cfg.get("temperature", 1.0))
        self.delta = float(cfg.get("delta", 2.0))

    def modules(self) -> list[nn.Module]:
        return [self.teacher]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        s, t = model(batch.x), self.teacher(batch.x)
        T = self.temperature
        if self.mode == "bdkd":
            return (bd_kd_student_loss(s, batch.y, t, self.delta, T)
                    + online_kd_teacher_loss(t, batch.y, s, T))
        return dml_student_loss(s, batch.y, t, T) + dml_student_loss(t, batch.y, s, T)

    def metrics(self, model: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            rep = classification_report(self.teacher(self.task.x_test), self.task.y_test)
        return {"teacher_test_acc": rep["acc"], "teacher_test_ece": rep["ece"]}


class DMLObjective(OnlineKDObjective):
    mode = "dml"


class BDKDObjective(OnlineKDObjective):
    mode = "bdkd"


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {"ce": Method(), "dml": Method(objective=DMLObjective), "bdkd": Method(objective=BDKDObjective)}


EXPERIMENT = classbench("balancing_divergences_online_kd", _methods)
