"""FISH fixed sparse masks for transfer (Sung et al. 2021), scaled down: digits classes 0-4 -> 5-9.

Per seed, the harness pretrains the dense MLP (10-way head) on digits classes 0-4 only
(``pretrain_classes``); every arm starts from those weights and fine-tunes on classes 5-9
(``finetune_classes``) with the shared optimizer, schedule, epochs and batch order, testing on the
test images of classes 5-9. Arms (method ``fish_mask``, modes): ``fisher`` (top ``density`` of all
parameters by the empirical Fisher diagonal on the fine-tuning training split,
:mod:`zoo.pruning.fisher_mask`), ``random`` (the same count at random), ``bias`` (every bias), and
``full`` (method ``full_finetune``: every parameter). The trained model is exported as it is (this is parameter-efficient
*training*, not compression): ``updated_params`` counts the parameters that moved from the
pretrained values, ``update_fraction`` that over the total.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from zoo.experiments._compressbench import Method, arm_specs, fit, pretrain, register, setting_config
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table
from zoo.pruning.fisher_mask import GradMask, bias_mask, count, fisher_diagonal, random_param_mask, top_k_mask
from zoo.workloads.classification import Task, load_base, make_task

__all__ = ["FishMask", "class_task", "EXPERIMENT"]


def class_task(task: Task, classes: list[int]) -> Task:
    """``task`` restricted to the examples of ``classes`` (labels kept: the head stays 10-way)."""
    cls = torch.tensor(classes, device=task.y_test.device)

    def sel(y: torch.Tensor) -> torch.Tensor:
        return torch.isin(y, cls)

    tr, va, te = sel(task.y_train_clean), sel(task.y_val_clean), sel(task.y_test)
    return replace(task, x_train=task.x_train[tr], y_train=task.y_train[tr], y_train_clean=task.y_train_clean[tr],
                   noisy=task.noisy[tr], x_val=task.x_val[va], y_val=task.y_val[va], y_val_clean=task.y_val_clean[va],
                   x_test=task.x_test[te], y_test=task.y_test[te])


@register("fish_mask")
class FishMask(Method):
    """Fine-tune only a fixed parameter subset: ``mode`` fisher | random | bias, ``density`` of all parameters."""

    defaults = {"mode": "fisher", "density": 0.01, "n_samples": 1024}

    def attach(self, model: nn.Module) -> nn.Module:
        self.start = {n: p.detach().clone() for n, p in model.named_parameters()}
        k = int(round(float(self.opt["density"]) * count(model)))
        mode = self.opt["mode"]
        if mode == "fisher":
            scores = fisher_diagonal(model, self.task.x_train, self.task.y_train, int(self.opt["n_samples"]))
            masks = top_k_mask(scores, k)
        elif mode == "random":
            masks = random_param_mask(model, k)
        elif mode == "bias":
            masks = bias_mask(model)
        else:
            raise ValueError(f"fish_mask: unknown mode {mode!r}: use fisher, random or bias")
        self.grad_mask = GradMask(model, masks)
        return model

    def after_backward(self, model: nn.Module) -> None:
        self.grad_mask()

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {"trainable_params": float(self.grad_mask.trainable()), **updated(model, self.start)}


def updated(model: nn.Module, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """``updated_params``: parameters that differ from ``start``; ``update_fraction``: over all."""
    upd = sum(int((p.detach() != start[n]).sum()) for n, p in model.named_parameters())
    return {"updated_params": float(upd), "update_fraction": upd / sum(v.numel() for v in start.values())}


@register("full_finetune")
class FullFinetune(Method):
    """Every parameter fine-tuned (the dense arm, with the update count reported)."""

    def attach(self, model: nn.Module) -> nn.Module:
        self.start = {n: p.detach().clone() for n, p in model.named_parameters()}
        return model

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {"trainable_params": float(count(model)), **updated(model, self.start)}


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    arm_specs(cfg)
    cfg = setting_config(cfg, None)
    return load_base(cfg["dataset"], env.data_dir, env.device)


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str, torch.Tensor]:
    cfg = setting_config(cfg, None)
    torch.manual_seed(seed)  # the pretrained model's init is the seed's first draw, as in a job
    task = class_task(make_task(cfg, setup, seed), list(cfg["pretrain_classes"]))
    model = pretrain(task, cfg, seed, env.device)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    cfg = setting_config(cfg, None)
    task = class_task(make_task(cfg, ctx.setup, seed), list(cfg["finetune_classes"]))
    spec = dict(arm_specs(cfg)[arm])
    m = spec.pop("method")
    return fit(m, spec, task, cfg, seed, ctx.device, ctx.seed_state, arm=arm)


def _derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
    out = {a: table.metrics_of(a) for a in cfg["arms"]}
    if "full" in out:
        for a in out:
            out[a]["gap_to_full"] = [x - y for x, y in zip(out["full"]["test_acc"], out[a]["test_acc"])]
    return out


EXPERIMENT = Experiment(name="fisher_sparse_masks", arms=lambda cfg: list(cfg["arms"]), job=_job, setup=_setup,
                        per_seed=_per_seed, derive=_derive)
