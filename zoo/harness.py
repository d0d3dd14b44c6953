"""The experiment harness: the runner owns the loop over seeds and arms, an experiment owns one job.

An experiment module defines one :class:`Experiment`: what a single ``(arm, seed)`` job does, plus
what is computed once and shared. The harness runs the stages, in parallel processes on a CPU and
in one process on a GPU, and assembles per-seed metrics and curves:

1. ``setup(cfg, env)``: per *process*, cheap and deterministic (load the dataset onto the device);
   never pickled, rebuilt in each worker.
2. ``shared(cfg, env, setup)``: once per run (a fixed evaluation classifier, a reference model);
   its result is pickled to the jobs that need it.
3. ``per_seed(cfg, seed, env, setup, shared)``: once per seed, shared by that seed's arms (a model
   trained once and then sampled by every arm).
4. ``job(cfg, arm, seed, ctx)``: one arm on one seed, returning a :class:`JobOutput`: scalar
   metrics and named per-seed series (e.g. test accuracy per epoch).
5. ``derive(cfg, table)`` (optional, in the parent): arms computed from other arms' per-seed
   values, e.g. the grid point of a learning-rate sweep with the best *validation* mean.
6. ``curves(cfg, table)`` (optional, in the parent): the plot's panels from the per-seed series.

``arms(cfg)`` lists every job's arm, grid points included; the metrics file reports the arms the
spec declares (plus derived ones), the rest are internal but kept in ``jobs.json``. Every stage is
seeded before it runs and CPU workers use one torch thread, so a job's output depends on its
``(arm, seed)`` and config only: results are identical for any number of workers (a test checks),
and the jobs of a sweep split over processes or machines merge into exactly the result one
process gives (:func:`assemble`).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import statistics
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from zoo.experiment import Curve

__all__ = [
    "Experiment",
    "JobOutput",
    "JobContext",
    "Env",
    "Table",
    "JobRecord",
    "HarnessResult",
    "run",
    "assemble",
    "mean_band",
    "default_workers",
]


@dataclass
class JobOutput:
    """What one ``(arm, seed)`` job returns: scalar metrics and named series (lists of floats)."""

    metrics: dict[str, float]
    series: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Env:
    """Where the jobs run."""

    device: str
    data_dir: Path
    quick: bool = False


@dataclass
class JobContext:
    """What a job receives: the environment and the outputs of the setup, shared and per-seed stages."""

    env: Env
    setup: Any
    shared: Any
    seed_state: Any

    @property
    def device(self) -> str:
        return self.env.device


@dataclass
class Experiment:
    """An experiment, as its module declares it (``EXPERIMENT = Experiment(...)``); see the module docstring."""

    name: str
    arms: Callable[[dict[str, Any]], list[str]]
    job: Callable[[dict[str, Any], str, int, JobContext], JobOutput]
    setup: Callable[[dict[str, Any], Env], Any] | None = None
    shared: Callable[[dict[str, Any], Env, Any], Any] | None = None
    per_seed: Callable[[dict[str, Any], int, Env, Any, Any], Any] | None = None
    derive: Callable[[dict[str, Any], "Table"], dict[str, dict[str, list[float]]]] | None = None
    curves: Callable[[dict[str, Any], "Table"], list[Curve]] | None = None
    shared_seed: int = 0

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        # Sent to worker processes by reference (its module and name), not by value: its
        # functions may be lambdas or closures, and the worker imports the module anyway.
        import sys

        module = self.job.__module__
        # Built by a factory (zoo.experiments._optbench), it lives in another module than its job.
        for mod in [module, *(m for m in list(sys.modules) if m.startswith("zoo.experiments.") and m != module)]:
            for name, value in list(vars(sys.modules[mod]).items()):
                if value is self:
                    return (_lookup, (mod, name))
        raise TypeError(f"Experiment {self.name!r} must be a module-level name of {module} to run in worker processes")


def _lookup(module: str, name: str) -> "Experiment":
    import importlib

    return getattr(importlib.import_module(module), name)


@dataclass
class JobRecord:
    """One finished job, as kept in ``jobs.json``."""

    arm: str
    seed: int
    metrics: dict[str, float]
    series: dict[str, list[float]] = field(default_factory=dict)


class Table:
    """Finished jobs, by arm and seed, in seed order; what ``derive`` and ``curves`` read."""

    def __init__(self, seeds: list[int], records: Iterable[JobRecord]) -> None:
        self.seeds = list(seeds)
        self._by: dict[str, dict[int, JobRecord]] = {}
        for r in records:
            self._by.setdefault(r.arm, {})[r.seed] = r
        self.derived: dict[str, dict[str, list[float]]] = {}

    @property
    def arms(self) -> list[str]:
        return list(self._by)

    def __contains__(self, arm: str) -> bool:
        return arm in self._by or arm in self.derived

    def metric(self, arm: str, name: str) -> list[float]:
        """``arm.name`` per seed, in seed order (derived arms included)."""
        if arm in self.derived:
            return list(self.derived[arm][name])
        return [float(self._by[arm][s].metrics[name]) for s in self.seeds]

    def series(self, arm: str, name: str) -> list[list[float]]:
        """The named series of ``arm``, one list per seed, in seed order."""
        return [list(self._by[arm][s].series[name]) for s in self.seeds]

    def metrics_of(self, arm: str) -> dict[str, list[float]]:
        if arm in self.derived:
            return {k: list(v) for k, v in self.derived[arm].items()}
        names = self._by[arm][self.seeds[0]].metrics
        return {m: self.metric(arm, m) for m in names}


@dataclass
class HarnessResult:
    metrics: dict[str, dict[str, list[float]]]
    curves: list[Curve]
    jobs: list[JobRecord]


def mean_band(rows: list[list[float]]) -> tuple[list[float], tuple[list[float], list[float]]]:
    """Mean and (min, max) band over seeds of equally long rows; NaNs are skipped per point."""
    cols = list(zip(*rows))
    mean, lo, hi = [], [], []
    for c in cols:
        vals = [v for v in c if not math.isnan(v)]
        mean.append(statistics.fmean(vals) if vals else math.nan)
        lo.append(min(vals) if vals else math.nan)
        hi.append(max(vals) if vals else math.nan)
    return mean, (lo, hi)


def default_workers(device: str, n_jobs: int) -> int:
    """Both cores (all of them) on a CPU, one process on a GPU (it already runs the kernels in parallel)."""
    if not device.startswith("cpu"):
        return 1
    return max(1, min(n_jobs, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


# ----------------------------------------------------------------------------- stages
# Per-process state, so a worker loads its dataset once and reuses it for every job it runs.
_PROCESS: dict[str, Any] = {}


def _prepare_process(device: str) -> None:
    import torch

    if device.startswith("cpu"):
        # Tiny models: one thread per process is fastest, and it makes CPU results independent of
        # the core count (the provenance records it).
        torch.set_num_threads(1)


def _setup(exp: Experiment, cfg: dict[str, Any], env: Env) -> Any:
    key = f"{exp.name}:{sorted(cfg.items())!r}:{env}"
    if _PROCESS.get("key") != key:
        _prepare_process(env.device)
        _PROCESS["key"], _PROCESS["setup"] = key, exp.setup(cfg, env) if exp.setup else None
    return _PROCESS["setup"]


def _seeded(seed: int) -> None:
    from zoo.training.seed import seed_everything

    seed_everything(seed)


def _stage_shared(exp: Experiment, cfg: dict[str, Any], env: Env) -> Any:
    setup = _setup(exp, cfg, env)
    _seeded(exp.shared_seed)
    return exp.shared(cfg, env, setup) if exp.shared else None


def _stage_seed(exp: Experiment, cfg: dict[str, Any], env: Env, seed: int, shared: Any) -> Any:
    setup = _setup(exp, cfg, env)
    _seeded(seed)
    return exp.per_seed(cfg, seed, env, setup, shared) if exp.per_seed else None


def _stage_job(exp: Experiment, cfg: dict[str, Any], env: Env, arm: str, seed: int, shared: Any, state: Any) -> JobRecord:
    setup = _setup(exp, cfg, env)
    _seeded(seed)
    out = exp.job(cfg, arm, seed, JobContext(env, setup, shared, state))
    if not isinstance(out, JobOutput):
        raise TypeError(f"{exp.name}: job({arm!r}, seed {seed}) returned {type(out).__name__}, not a JobOutput")
    # Series feed plots only: six significant digits keep jobs.json small in git (metrics keep
    # full precision). Rounded here, in the job, so a merged sweep sees exactly the same values.
    return JobRecord(arm, seed, {k: float(v) for k, v in out.metrics.items()},
                     {k: [float(f"{float(x):.6g}") for x in v] for k, v in out.series.items()})


def _to_cpu(obj: Any) -> Any:
    """Move tensors in a (nested) stage output to the CPU before pickling them to another process."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, torch.nn.Module):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


class _Inline:
    """A stand-in for a process pool that runs each call at once, in this process."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - re-raised by result()
            f.set_exception(e)
        return f

    def shutdown(self, cancel_futures: bool = False) -> None:
        pass


def run(
    exp: Experiment,
    cfg: dict[str, Any],
    seeds: list[int],
    env: Env,
    *,
    workers: int | None = None,
    progress: Callable[..., Any] | None = None,
) -> HarnessResult:
    """Run every stage and job of ``exp`` for ``seeds`` and assemble the result."""
    arms = list(exp.arms(cfg))
    if not arms:
        raise ValueError(f"{exp.name}: the config selects no arms")
    n_jobs = len(arms) * len(seeds)
    n = workers or default_workers(env.device, n_jobs)
    total = n_jobs + (len(seeds) if exp.per_seed else 0) + (1 if exp.shared else 0)
    bar = progress(total=total, desc=exp.name) if progress else None

    if n > 1:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
        pool: Any = ProcessPoolExecutor(max_workers=n, mp_context=ctx)
    else:
        pool = _Inline()
    records: list[JobRecord] = []
    try:
        shared = None
        if exp.shared:
            shared = pool.submit(_stage_shared, exp, cfg, env).result()
            shared = _to_cpu(shared) if n > 1 else shared
            if bar:
                bar.update(1)
        states: dict[int, Any] = {}
        if exp.per_seed:
            futs = {pool.submit(_stage_seed, exp, cfg, env, s, shared): s for s in seeds}
            for f in _as_done(futs):
                states[futs[f]] = f.result()
                if bar:
                    bar.update(1)
                    bar.set_postfix_str(f"seed {futs[f]} ready")
        futs2 = {pool.submit(_stage_job, exp, cfg, env, a, s, shared, states.get(s)): (a, s) for s in seeds for a in arms}
        for f in _as_done(futs2):
            records.append(f.result())
            if bar:
                bar.update(1)
                a, s = futs2[f]
                bar.set_postfix_str(f"{a} seed {s}")
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
    finally:
        if bar:
            bar.close()
    pool.shutdown()
    records.sort(key=lambda r: (seeds.index(r.seed), arms.index(r.arm)))
    return assemble(exp, cfg, seeds, records)


def _as_done(futs: dict[Future, Any]) -> Iterable[Future]:
    pending = set(futs)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        # Deterministic order among those that finished together (the result never depends on it).
        yield from sorted(done, key=lambda f: list(futs).index(f))


def assemble(exp: Experiment, cfg: dict[str, Any], seeds: list[int], records: list[JobRecord]) -> HarnessResult:
    """Metrics and curves from finished jobs: a pure function of the per-seed records.

    The records may come from one process or from many (a sweep's jobs): for the same seeds the
    result is identical.
    """
    seeds = list(seeds)
    arms = list(exp.arms(cfg))
    have = {(r.arm, r.seed) for r in records}
    missing = [(a, s) for s in seeds for a in arms if (a, s) not in have]
    if missing:
        raise ValueError(f"{exp.name}: no result for jobs {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    ordered = sorted((r for r in records if r.seed in seeds and r.arm in arms),
                     key=lambda r: (seeds.index(r.seed), arms.index(r.arm)))
    table = Table(seeds, ordered)
    if exp.derive:
        table.derived = exp.derive(cfg, table)
    metrics = {a: table.metrics_of(a) for a in [*arms, *table.derived]}
    curves = exp.curves(cfg, table) if exp.curves else []
    return HarnessResult(metrics=metrics, curves=curves, jobs=ordered)
