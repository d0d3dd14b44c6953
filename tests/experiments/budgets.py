"""What the experiment wiring tests share: an entry's spec budget, the quick environment, a job context, a checked quick run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from zoo.catalogue import get, repo_root
from zoo.harness import Env, Experiment, JobContext
from zoo.reproduce import base_config, main


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


def quick_run_metrics(entry_id: str, out: Path, workers: int | None = None,
                      skip: Callable[[str, str], bool] = lambda arm, metric: False) -> dict[str, dict[str, list[float]]]:
    """Run the entry's ``--quick`` budget into ``out`` and check its metrics file; return its arms' metrics.

    Every declared metric of every declared arm (except those ``skip(arm, metric)`` names, for
    metrics only some arms produce) holds one finite value per quick seed.
    """
    args = [entry_id, "--quick", "--no-progress", "--out", str(out)]
    if workers is not None:
        args += ["--workers", str(workers)]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())["arms"]
    _, seeds = spec_budget(entry_id, quick=True)
    r = get(entry_id).spec.reproduction
    assert r is not None
    for arm in r.arms:
        for metric in r.metrics:
            if skip(arm, metric):
                continue
            values = metrics[arm][metric]
            assert len(values) == len(seeds) and all(math.isfinite(v) for v in values), (arm, metric, values)
    return metrics
