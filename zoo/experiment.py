"""The contract between the runner (``zoo.reproduce``) and an experiment. No torch here.

An experiment is a function ``run(cfg: dict, ctx: RunContext) -> RunResult`` in
``zoo/experiments/<id>.py``. It trains and evaluates every arm for every seed in ``ctx.seeds``
using the shared utilities in :mod:`zoo.training`, and returns per-seed metrics and curves.
The runner owns everything else: config composition, results on disk, verdicts, provenance,
the plot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

__all__ = ["RunContext", "RunResult", "Curve", "Experiment"]


@dataclass
class Curve:
    """One panel of the run's plot: named series over a shared x axis.

    ``series`` maps a label to y values (one per x); ``bands`` optionally maps the same label to
    a (low, high) pair of lists drawn as a shaded spread, e.g. min/max over seeds.
    """

    title: str
    x: list[float]
    series: dict[str, list[float]]
    xlabel: str = ""
    ylabel: str = ""
    logx: bool = False
    logy: bool = False
    bands: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    style: dict[str, str] = field(default_factory=dict)  # label -> matplotlib format string


@dataclass
class RunContext:
    """What the runner gives an experiment."""

    device: str
    seeds: list[int]
    data_dir: Path
    quick: bool = False
    progress: Callable[..., Any] | None = None  # tqdm-like factory: progress(total=, desc=)

    def bar(self, total: int, desc: str) -> Any:
        """A progress bar (a no-op one when the runner gives none)."""
        if self.progress is None:
            return _NullBar()
        return self.progress(total=total, desc=desc)


class _NullBar:
    def update(self, n: int = 1) -> None:  # noqa: D401 - tqdm interface
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NullBar":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@dataclass
class RunResult:
    """What an experiment returns: ``metrics[arm][metric]`` has one value per seed, in seed order."""

    metrics: dict[str, dict[str, list[float]]]
    curves: list[Curve] = field(default_factory=list)


class Experiment(Protocol):
    def __call__(self, cfg: dict[str, Any], ctx: RunContext) -> RunResult: ...


def seed_values(per_seed: Iterable[dict[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """Turn ``[{arm: {metric: value}} for each seed]`` into ``{arm: {metric: [per seed]}}``."""
    out: dict[str, dict[str, list[float]]] = {}
    for one in per_seed:
        for arm, ms in one.items():
            for m, v in ms.items():
                out.setdefault(arm, {}).setdefault(m, []).append(float(v))
    return out
