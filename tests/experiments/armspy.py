"""A spy for classbench loss experiments: which loss each job trains with, from which init, on which batches.

:class:`JobSpy` is the part every experiment's spy shares (the running job, its initial MLP).
The experiment module looks its loss functions up at call time; :class:`ArmSpy` replaces them
with recording wrappers, records every job's initial MLP weights and each step's targets, so a
test can assert that every arm trained with its own loss (and only it), from the seed's shared
initial weights and batch order.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import zoo.workloads.classification as workloads
from zoo.experiments._classbench import job_arms


Key = tuple[str, int]


class JobSpy:
    """Which job is running, and the initial weights and model of its MLP (the shared model's factory).

    Wraps ``experiment.job`` (setting :attr:`current` to ``(arm, seed)`` and calling
    :meth:`start_job` before the job runs) and the workload suite's ``MLP``. Subclasses add their
    own wrappers of the functions an experiment's arms call, and reset what they record per job in
    :meth:`start_job`.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, experiment: Any) -> None:
        self.current: Key | None = None
        self.init: dict[Key, dict[str, torch.Tensor]] = {}
        self.models: dict[Key, torch.nn.Module] = {}
        real_job, real_mlp = experiment.job, workloads.MLP

        def mlp(*args: Any, **kw: Any) -> torch.nn.Module:
            model = real_mlp(*args, **kw)
            self.init[self.current] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.models[self.current] = model
            return model

        def job(cfg: dict[str, Any], arm: str, seed: int, ctx: Any) -> Any:
            self.current = (arm, seed)
            self.start_job(self.current)
            return real_job(cfg, arm, seed, ctx)

        monkeypatch.setattr(workloads, "MLP", mlp)
        monkeypatch.setattr(experiment, "job", job)

    def start_job(self, key: Key) -> None:
        """Reset the per-job records of ``key`` (called as each job starts)."""


class ArmSpy(JobSpy):
    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, experiment: Any, names: list[str],
                 scale: float = 1.0) -> None:
        super().__init__(monkeypatch, experiment)
        self.calls: dict[Key, list[str]] = {}
        self.targets: dict[Key, list[torch.Tensor]] = {}

        def wrap(name: str) -> Any:
            real = getattr(module, name)

            def fn(logits: torch.Tensor, y: torch.Tensor, *a: Any, **kw: Any) -> torch.Tensor:
                if self.current is not None and torch.is_grad_enabled() and logits.requires_grad:
                    self.calls[self.current].append(name)
                    self.targets[self.current].append(y.clone())
                return scale * real(logits, y, *a, **kw)

            return fn

        for n in names:
            monkeypatch.setattr(module, n, wrap(n))

    def start_job(self, key: Key) -> None:
        self.calls[key], self.targets[key] = [], []

    def assert_models_unmoved(self) -> None:
        """Every job called its loss and ended at its initial weights: with ``scale=0`` (and no weight
        decay) that says the spied loss is the one training uses."""
        for key, model in self.models.items():
            assert self.calls[key], key
            for k, v in model.state_dict().items():
                assert torch.equal(v, self.init[key][k]), (key, k)

    def check(self, experiment_methods: Any, cfg: dict[str, Any], seeds: list[int], expected: dict[str, Any],
              n_train: dict[str | None, int]) -> None:
        """Every job called only its method's loss, once per step; methods of a setting and seed share init and batches.

        ``expected[method]`` is the name of the method's loss, or a function ``steps -> [name per step]``.
        """
        jobs = job_arms(experiment_methods(cfg), cfg)
        for arm, (method, setting) in jobs.items():
            steps = cfg["epochs"] * math.ceil(n_train[setting] / cfg["batch_size"])
            for seed in seeds:
                want = expected[method](steps) if callable(expected[method]) else [expected[method]] * steps
                assert self.calls[(arm, seed)] == want, (arm, seed, self.calls[(arm, seed)][:3])
        for seed in seeds:
            by_setting: dict[Any, list[str]] = {}
            for arm, (_, setting) in jobs.items():
                by_setting.setdefault(setting, []).append(arm)
            for arms in by_setting.values():
                ref = (arms[0], seed)
                for arm in arms[1:]:
                    for k, v in self.init[(arm, seed)].items():
                        assert torch.equal(v, self.init[ref][k]), (arm, seed, k)
                    assert all(torch.equal(a, b) for a, b in
                               zip(self.targets[(arm, seed)], self.targets[ref], strict=True)), (arm, seed)
                finals = {a: torch.cat([p.detach().flatten() for p in self.models[(a, seed)].parameters()])
                          for a in arms}
                for i, a in enumerate(arms):
                    for b in arms[i + 1:]:
                        assert not torch.allclose(finals[a], finals[b]), (a, b, seed)
        if len(seeds) > 1:
            arm = next(iter(jobs))
            k = next(iter(self.init[(arm, seeds[0])]))
            assert not torch.equal(self.init[(arm, seeds[0])][k], self.init[(arm, seeds[1])][k])
