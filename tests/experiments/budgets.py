"""What the experiment wiring tests share: an entry's spec budget, the quick environment, a job context."""

from __future__ import annotations

from typing import Any

from zoo.catalogue import get, repo_root
from zoo.harness import Env, Experiment, JobContext
from zoo.reproduce import base_config


def spec_budget(entry_id: str, quick: bool = True) -> tuple[dict[str, Any], list[int]]:
    """The entry's config and seeds: the full budget, or with its quick overrides (as the runner composes them)."""
    cfg = base_config(get(entry_id), quick)
    return cfg, cfg.pop("seeds")


def quick_env() -> Env:
    return Env("cpu", repo_root() / "data", quick=True)


def setup_context(experiment: Experiment, cfg: dict[str, Any]) -> JobContext:
    """A job context holding the experiment's per-process setup (no shared or per-seed state)."""
    env = quick_env()
    return JobContext(env, experiment.setup(cfg, env) if experiment.setup else None, None, None)
