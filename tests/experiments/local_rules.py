"""Helpers shared by the wiring tests of the learning-rule experiments (zoo.experiments._local_rules)."""

from __future__ import annotations

from typing import Any

from zoo.catalogue import get, repo_root
from zoo.harness import Env, JobContext, JobOutput, JobRecord, Table
from zoo.training.seed import seed_everything


def quick(entry: str) -> tuple[dict[str, Any], list[int]]:
    r = get(entry).spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config}, list(r.quick.seeds or r.seeds)


def job(exp: Any, cfg: dict[str, Any], arm: str, seed: int = 0) -> JobOutput:
    """One job as the harness runs it (seeded first)."""
    env = Env("cpu", repo_root() / "data", quick=True)
    seed_everything(seed)
    return exp.job(cfg, arm, seed, JobContext(env, exp.setup(cfg, env), None, None))


def hand_table(arms: list[str], seeds: list[int], val: list[float], test: list[float]) -> Table:
    """Grid jobs whose validation and test rankings disagree (per-seed noise keeps the means' order)."""
    recs = [JobRecord(a, s, {"val_acc": val[i] + s, "test_acc": test[i] - s, "train_loss": 0.1 * i, "grad_evals": 1.0,
                             "diverged": 0.0})
            for i, a in enumerate(arms) for s in seeds]
    return Table(seeds, recs)
