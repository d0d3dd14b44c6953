"""One optimizer comparison on the shared workload suite: the experiment every optimizer entry builds.

An optimizer entry declares its *methods* (arms) and gets a whole :class:`zoo.harness.Experiment`
from :func:`optbench`: jobs, tuned-baseline lookup, learning-rate grids picked on the validation
split, metrics per workload, and plots. No entry writes a training loop.

* A :class:`Method` builds an optimizer (and scheduler) for a workload's parameters and total
  step count, optionally at a learning rate from a grid. A method with ``lrs`` becomes one job
  arm per grid point (``<method>__<workload>__lr<x>``, internal: kept in ``jobs.json``) and a
  derived arm ``<method>`` reporting, per workload, the grid point with the best mean
  **validation** metric over seeds (ties: the smaller lr) and its ``<workload>_lr``.
* :func:`tuned` is a method whose learning rate was tuned once for the whole family by
  :mod:`zoo.workloads.tuning` (recorded in ``reproductions/_baselines/optim/tuned.json``, a DVC
  stage): entries never re-tune a baseline; an entry that uses one lists that file in its
  spec's ``reproduction.code`` so a new tuning makes it stale.
* ``Method(run=...)`` replaces the standard :func:`zoo.workloads.optim.run` for methods that are
  not an optimizer step (a training rule without back-propagation); it gets the same data, seed
  and epochs and returns the same metrics.

Config keys read here: ``workloads`` (names from :data:`zoo.workloads.optim.WORKLOADS`),
optional ``epochs`` (``{workload: epochs}`` overrides), ``n_train`` / ``n_test`` (a smaller
budget, for ``--quick``). Every derived arm ``<method>`` has metrics ``<workload>_<metric>``
(``test_acc``, ``val_acc``, ``train_loss``, ``grad_evals``, ``diverged``; ``subopt``,
``val_loss``, ``test_loss`` for a regression), e.g. ``dog.mnist1d_mlp_test_acc``.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.training import TensorData
from zoo.workloads.optim import Workload, get_workload, load, run

__all__ = ["Method", "tuned", "optbench", "job_arms", "slug", "TUNED_FILE", "tuned_record", "lr_grid_best",
           "Builder", "RunFn"]

TUNED_FILE = "reproductions/_baselines/optim/tuned.json"

# (params, total_steps, lr or None, cfg, workload) -> (optimizer, scheduler or None)
Builder = Callable[[list[nn.Parameter], int, float | None, dict[str, Any], Workload],
                   tuple[torch.optim.Optimizer, Any]]
# (cfg, workload, data, seed, epochs, device) -> (metrics, series): a method that is not an optimizer
RunFn = Callable[[dict[str, Any], Workload, TensorData, int, int, str], tuple[dict[str, float], dict[str, list[float]]]]


@dataclass(frozen=True)
class Method:
    """One arm of a comparison: how to build its optimizer, and on which grid (if any)."""

    build: Builder | None = None
    lrs: tuple[float, ...] | None = None
    workloads: tuple[str, ...] | None = None  # None: every workload of the config
    run: RunFn | None = None
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    tuned_as: str | None = None  # set by tuned(): the baseline's name in the tuning record

    def __post_init__(self) -> None:
        if (self.build is None) == (self.run is None):
            raise ValueError("a Method needs exactly one of build= (an optimizer) or run= (its own training rule)")


def slug(lr: float) -> str:
    """``0.003`` -> ``0_003``: a learning rate as part of an arm name."""
    return f"{lr:g}".replace(".", "_").replace("-", "m").replace("+", "")


def _repo_file(rel: str) -> Path:
    return Path(__file__).resolve().parents[2] / rel


def tuned_record(path: str | Path | None = None) -> dict[str, Any]:
    """The family's tuned baselines (``{"baselines": {workload: {baseline: {"lr": ..}}}, ...}``)."""
    p = Path(path) if path is not None else _repo_file(TUNED_FILE)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no tuned baselines; record them with `python -m zoo.baselines optim --record`")
    return json.loads(p.read_text())


def tuned(baseline: str, build: Builder) -> Method:
    """A baseline at the learning rate :mod:`zoo.workloads.tuning` chose for each workload.

    ``build`` receives that learning rate; ``baseline`` names it in the record (e.g.
    ``adam_cosine``). The record is read when a job starts, so every arm and seed sees one value.
    """
    return Method(build=build, tuned_as=baseline)


def job_arms(methods: dict[str, Method], cfg: dict[str, Any]) -> dict[str, tuple[str, str, float | None]]:
    """Every job arm: ``name -> (method, workload, lr)``, in run order."""
    out: dict[str, tuple[str, str, float | None]] = {}
    for w in cfg["workloads"]:
        get_workload(w)
        for m, meth in methods.items():
            if meth.workloads is not None and w not in meth.workloads:
                continue
            if meth.lrs is None:
                out[f"{m}__{w}"] = (m, w, None)
            else:
                for lr in meth.lrs:
                    out[f"{m}__{w}__lr{slug(float(lr))}"] = (m, w, float(lr))
    return out


def _epochs(cfg: dict[str, Any], w: Workload) -> int:
    over = cfg.get("epochs") or {}
    if isinstance(over, (int, float)):
        return int(over)
    return int(over.get(w.name, w.epochs))


def _setup(cfg: dict[str, Any], env: Env) -> dict[str, TensorData]:
    return {w: load(get_workload(w), env.data_dir, env.device, cfg.get("n_train"), cfg.get("n_test"))
            for w in cfg["workloads"]}


def lr_grid_best(table: Table, arms: list[tuple[str, float]], metric: str, higher: bool) -> tuple[str, float]:
    """The ``(arm, lr)`` with the best mean ``metric`` over seeds; ties go to the smaller lr.

    Means are compared after rounding to 9 significant digits, so a tie is a tie across
    platforms; a grid point whose runs diverged (non-finite mean) never wins.
    """
    def key(item: tuple[str, float]) -> tuple[float, float]:
        m = statistics.fmean(table.metric(item[0], metric))
        if not math.isfinite(m):
            m = -math.inf if higher else math.inf
        m = float(f"{m:.9g}")
        return (-m if higher else m, item[1])

    return min(arms, key=key)


def optbench(name: str, methods: Callable[[dict[str, Any]], dict[str, Method]],
             extra_derive: Callable[[dict[str, Any], Table, dict[str, dict[str, list[float]]]], None] | None = None,
             plot_methods: Callable[[dict[str, Any]], list[str]] | None = None,
             tuned_file: str | Path | None = None) -> Experiment:
    """The :class:`Experiment` comparing ``methods(cfg)`` on ``cfg["workloads"]``.

    ``extra_derive(cfg, table, derived)`` may add arms or metrics to ``derived`` (e.g. a
    learning-rate band width); ``plot_methods(cfg)`` picks the methods drawn per epoch (default:
    every method). Assign the result to a module-level name (the harness pickles it by name).
    """

    def arms(cfg: dict[str, Any]) -> list[str]:
        return list(job_arms(methods(cfg), cfg))

    def job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
        m, wname, lr = job_arms(methods(cfg), cfg)[arm]
        meth = methods(cfg)[m]
        w = get_workload(wname)
        data = ctx.setup[wname]
        epochs = _epochs(cfg, w)
        if meth.run is not None:
            metrics, series = meth.run(cfg, w, data, seed, epochs, ctx.device)
            return JobOutput(metrics, series)
        if meth.tuned_as is not None:
            rec = tuned_record(tuned_file)["baselines"]
            try:
                lr = float(rec[wname][meth.tuned_as]["lr"])
            except KeyError:
                raise KeyError(f"{TUNED_FILE}: no tuned {meth.tuned_as!r} for workload {wname!r}; "
                               "add it to zoo.workloads.tuning and re-record the baselines") from None
        assert meth.build is not None
        build = meth.build
        metrics, series = run(w, data, lambda ps, steps: build(ps, steps, lr, cfg, w), seed,
                              epochs=epochs, device=ctx.device, loss=meth.loss)
        if lr is not None:
            metrics["lr"] = lr
        return JobOutput(metrics, series)

    def derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
        ms = methods(cfg)
        jobs = job_arms(ms, cfg)
        out: dict[str, dict[str, list[float]]] = {}
        for m, meth in ms.items():
            row: dict[str, list[float]] = {}
            for wname in cfg["workloads"]:
                mine = [(a, lr) for a, (mm, ww, lr) in jobs.items() if mm == m and ww == wname]
                if not mine:
                    continue
                if meth.lrs is None:
                    pick = mine[0][0]
                else:
                    metric, higher = get_workload(wname).objective
                    pick, _ = lr_grid_best(table, [(a, float(lr)) for a, lr in mine], metric, higher)  # type: ignore[arg-type]
                for k, v in table.metrics_of(pick).items():
                    row[f"{wname}_{k}"] = v
            out[m] = row
        if extra_derive is not None:
            extra_derive(cfg, table, out)
        return out

    def curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
        ms = methods(cfg)
        jobs = job_arms(ms, cfg)
        shown = plot_methods(cfg) if plot_methods else list(ms)
        derived = derive(cfg, table)
        out: list[Curve] = []
        for wname in cfg["workloads"]:
            w = get_workload(wname)
            key = "test_acc" if w.task == "classification" else "subopt"
            series, bands = {}, {}
            for m in shown:
                if f"{wname}_{key}" not in derived.get(m, {}):
                    continue
                meth = ms[m]
                if meth.lrs is None:
                    arm = f"{m}__{wname}"
                    label = m
                else:
                    lr = derived[m][f"{wname}_lr"][0]
                    arm = f"{m}__{wname}__lr{slug(lr)}"
                    label = f"{m} (lr {lr:g}, by validation)"
                if arm in jobs:
                    series[label], bands[label] = mean_band(table.series(arm, key))
            if series:
                n = len(next(iter(series.values())))
                out.append(Curve(title=f"{w.description}: {'test accuracy' if key == 'test_acc' else 'log10 suboptimality'} "
                                       f"per epoch (mean, min-max, {len(table.seeds)} seeds)",
                                 x=[float(e) for e in range(1, n + 1)], series=series, bands=bands, xlabel="epoch",
                                 ylabel="test accuracy (%)" if key == "test_acc" else "log10(F - F*)"))
            # learning-rate sensitivity of every grid method on this workload
            sens, style = {}, {}
            xs: list[float] | None = None
            for m, meth in ms.items():
                if meth.lrs is None or (meth.workloads is not None and wname not in meth.workloads):
                    continue
                lrs = [float(v) for v in meth.lrs]
                vals = [statistics.fmean(table.metric(f"{m}__{wname}__lr{slug(lr)}", key)) for lr in lrs]
                if xs is None:
                    xs = lrs
                if lrs == xs:
                    sens[m], style[m] = vals, "o-"
            if sens and xs is not None and len(xs) > 1:
                out.append(Curve(title=f"{w.description}: final {'test accuracy' if key == 'test_acc' else 'log10 suboptimality'} "
                                       f"vs learning rate (mean, {len(table.seeds)} seeds)",
                                 x=xs, series=sens, style=style, xlabel="learning rate",
                                 ylabel="test accuracy (%)" if key == "test_acc" else "log10(F - F*)", logx=True))
        return out

    return Experiment(name=name, arms=arms, job=job, setup=_setup, derive=derive, curves=curves)
