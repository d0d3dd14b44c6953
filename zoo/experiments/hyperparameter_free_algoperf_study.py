"""A miniature AlgoPerf study of learning-rate-free optimizers (Kasimbeg et al., 2025), on the shared suite.

The paper freezes every non-learning-rate hyperparameter of learning-rate-free (LRF) methods,
scores them with AlgoPerf's time-to-target performance profiles, first at the literature's
defaults and then at one configuration calibrated to do well on all workloads at once, and
compares them with a NadamW baseline calibrated the same way. Here:

* **Workloads**: four of the family's suite (:mod:`zoo.workloads.optim`), ``cfg["workloads"]``.
* **Submissions** (every arm: the workload's batch size and epochs; the same seeds, so the same
  initialisations and batch orders):

  - ``dog``, ``dadapt_adam``, ``prodigy``: DoG (:class:`zoo.optim.dog.DoG`), D-Adapted Adam
    (:class:`zoo.optim.d_adaptation.DAdaptAdam`) and Prodigy (the authors' ``prodigyopt``), lr 1;
  - ``sf_adamw``: Schedule-Free AdamW (:class:`zoo.optim.schedule_free.ScheduleFreeAdamW`);
  - ``nadamw``: ``torch.optim.NAdam(decoupled_weight_decay=True)``, the baseline.

  Each method has the same calibration effort, four configurations: the LRF methods with
  {constant, cosine} schedule x {no warmup, linear warmup over 5% of the steps}; Schedule-Free
  (which has no schedule) with lr {0.0025, 0.01, 0.03, 0.1}, no warmup; NadamW with a 5% warmup,
  cosine decay and lr {0.003, 0.01, 0.03, 0.1}. No weight decay anywhere. The *literature default* of an LRF
  method is its package default: constant lr 1 without warmup (Schedule-Free: lr 0.0025, no
  warmup), which is one of its four configurations.
* **Calibration** (on validation): per method, the configuration whose runs reach each
  workload's validation target soonest, summed over workloads (a miss counts as twice the
  budget), averaged over seeds. ``<method>_calibrated`` reports that configuration.
* **Targets and score** (on test): a workload's test target is the best mean final test metric of
  any configuration, minus 1 point of accuracy (``lstsq``: plus 0.3 in log10 suboptimality, i.e.
  within a factor 2 of the best suboptimality); the validation target is built the same way from
  validation accuracy. The time to target is the first epoch at which a run reaches it. Per seed,
  AlgoPerf's performance-profile score of a submission is
  ``(1/W) sum_w max(0, tau_max - max(r_w, 1)) / (tau_max - 1)`` with ``r_w`` its time to target
  over the best submission's on workload ``w`` (``inf`` if it never reaches it) and ``tau_max = 4``:
  1 for a submission that is fastest everywhere, 0 for one that never reaches any target. The
  submissions scored together are the four LRF defaults, the four calibrated LRF methods and
  calibrated NadamW (nine).

Departures: AlgoPerf measures wall-clock time to target on fixed hardware and eight large
workloads with held-out test targets set by tuned baselines; we count epochs on four small
workloads, set targets from the configurations themselves, and calibrate over four
configurations per method instead of a large search. Budgets: the workloads' own epochs.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from zoo.experiments._optbench import Method, optbench
from zoo.harness import Table
from zoo.optim.d_adaptation import DAdaptAdam
from zoo.optim.dog import DoG
from zoo.optim.schedule_free import ScheduleFreeAdamW
from zoo.workloads.optim import get_workload

__all__ = ["EXPERIMENT", "CONFIGS", "METHODS", "LRF", "score", "time_to_target", "PRODIGY_HINT"]

PRODIGY_HINT = 'the prodigy arms run the authors\' package prodigyopt==1.1.2, which is not installed; pip install -e ".[test]"'
LRF = ("dog", "dadapt_adam", "prodigy", "sf_adamw")
METHODS = (*LRF, "nadamw")
# method -> config name -> (lr, cosine, warmup fraction); the first is the literature default of an LRF method
CONFIGS: dict[str, dict[str, tuple[float, bool, float]]] = {
    **{m: {"const": (1.0, False, 0.0), "const_warm": (1.0, False, 0.05),
           "cos": (1.0, True, 0.0), "cos_warm": (1.0, True, 0.05)} for m in ("dog", "dadapt_adam", "prodigy")},
    # The learning-rate-based methods search the learning rate over 1.5 decades centred on the
    # family's tuned Adam rates (0.01-0.3 on these workloads). A first calibration space
    # (Schedule-Free lr {0.0025, 0.01}, NadamW lr {1e-3, 3e-3}) lay below all of them.
    "sf_adamw": {"lr0025": (0.0025, False, 0.0), "lr01": (0.01, False, 0.0),
                 "lr03": (0.03, False, 0.0), "lr1": (0.1, False, 0.0)},
    "nadamw": {"lr003_cos_warm": (3e-3, True, 0.05), "lr01_cos_warm": (1e-2, True, 0.05),
               "lr03_cos_warm": (3e-2, True, 0.05), "lr1_cos_warm": (0.1, True, 0.05)},
}
TAU_MAX = 4.0


def _schedule(opt: torch.optim.Optimizer, steps: int, cosine: bool, warmup: float, built_in_warmup: bool) -> Any:
    w = 0 if built_in_warmup else int(round(warmup * steps))

    def factor(k: int) -> float:
        f = min(1.0, (k + 1) / w) if w > 0 else 1.0
        if cosine:
            f *= 0.5 * (1.0 + math.cos(math.pi * min(k, steps) / steps))
        return f

    return torch.optim.lr_scheduler.LambdaLR(opt, factor) if (w > 0 or cosine) else None


def _prodigy() -> Any:
    try:
        from prodigyopt import Prodigy
    except ImportError:
        raise ModuleNotFoundError(PRODIGY_HINT) from None
    return Prodigy


def _builder(method: str, lr: float, cosine: bool, warmup: float) -> Any:
    def build(params: list[torch.nn.Parameter], steps: int, _lr: float | None, cfg: dict[str, Any], w: Any) -> Any:
        if method == "dog":
            opt: torch.optim.Optimizer = DoG(params, lr=lr)
        elif method == "dadapt_adam":
            opt = DAdaptAdam(params, lr=lr)
        elif method == "prodigy":
            opt = _prodigy()(params, lr=lr)
        elif method == "sf_adamw":  # warmup is Schedule-Free's own (warmup_steps), no scheduler
            return ScheduleFreeAdamW(params, lr=lr, warmup_steps=int(round(warmup * steps))), None
        else:
            opt = torch.optim.NAdam(params, lr=lr, decoupled_weight_decay=True, weight_decay=0.0)
        return opt, _schedule(opt, steps, cosine, warmup, built_in_warmup=False)

    return build


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return {f"{m}__{c}": Method(build=_builder(m, *spec)) for m in METHODS for c, spec in CONFIGS[m].items()}


def _key(wname: str) -> tuple[str, str, bool, float]:
    """(validation series, test series, higher is better, slack) of a workload."""
    if get_workload(wname).task == "classification":
        return "val_acc", "test_acc", True, 1.0
    return "subopt", "subopt", False, 0.3


def time_to_target(series: list[float], target: float, higher: bool) -> float:
    """The first epoch (1-based) at which ``series`` reaches ``target``; ``inf`` if it never does."""
    for i, v in enumerate(series):
        if (v >= target) if higher else (v <= target):
            return float(i + 1)
    return math.inf


def score(times: dict[str, list[float]], tau_max: float = TAU_MAX) -> dict[str, float]:
    """AlgoPerf's performance-profile score of each submission from its time to target per workload."""
    names = list(times)
    n_w = len(times[names[0]])
    best = [min(times[s][i] for s in names) for i in range(n_w)]
    out = {}
    for s in names:
        total = 0.0
        for i in range(n_w):
            t, b = times[s][i], best[i]
            if math.isinf(t) or math.isinf(b):
                continue
            r = max(t / b, 1.0)
            total += max(0.0, tau_max - r) / (tau_max - 1.0)
        out[s] = total / n_w
    return out


def _targets(cfg: dict[str, Any], table: Table, arms: list[str], which: int) -> dict[str, float]:
    """Per workload: the best mean final metric over ``arms`` with the slack (which: 0 val, 1 test)."""
    out = {}
    for w in cfg["workloads"]:
        val, test, higher, slack = _key(w)
        name = (val, test)[which]
        finals = [statistics.fmean(s[-1] for s in table.series(f"{a}__{w}", name)) for a in arms]
        finals = [f for f in finals if math.isfinite(f)]
        best = max(finals) if higher else min(finals)
        out[w] = best - slack if higher else best + slack
    return out


def _times(cfg: dict[str, Any], table: Table, arm: str, targets: dict[str, float], which: int) -> list[list[float]]:
    """Per seed, the time to target on each workload."""
    rows = []
    for si in range(len(table.seeds)):
        row = []
        for w in cfg["workloads"]:
            val, test, higher, _ = _key(w)
            series = table.series(f"{arm}__{w}", (val, test)[which])[si]
            row.append(time_to_target(series, targets[w], higher))
        rows.append(row)
    return rows


def _derive(cfg: dict[str, Any], table: Table, derived: dict[str, dict[str, list[float]]]) -> None:
    arms = list(_methods(cfg))
    workloads = list(cfg["workloads"])
    budget = {w: float(len(table.series(f"{arms[0]}__{w}", _key(w)[0])[0])) for w in workloads}
    val_targets = _targets(cfg, table, arms, 0)
    test_targets = _targets(cfg, table, arms, 1)

    # calibration, on validation: the smallest mean (over seeds) total time to target, misses at twice the budget
    picks: dict[str, str] = {}
    for m in METHODS:
        cost = {}
        for c in CONFIGS[m]:
            times = _times(cfg, table, f"{m}__{c}", val_targets, 0)
            cost[c] = statistics.fmean(sum(2 * budget[w] if math.isinf(t) else t for t, w in zip(row, workloads))
                                       for row in times)
        picks[m] = min(CONFIGS[m], key=lambda c: (float(f"{cost[c]:.9g}"), list(CONFIGS[m]).index(c)))

    subs = {**{f"{m}_default": f"{m}__{next(iter(CONFIGS[m]))}" for m in LRF},
            **{f"{m}_calibrated": f"{m}__{picks[m]}" for m in METHODS}}
    times = {s: _times(cfg, table, arm, test_targets, 1) for s, arm in subs.items()}
    per_seed = [score({s: times[s][si] for s in subs}) for si in range(len(table.seeds))]

    for s, arm in subs.items():
        m = s.rsplit("_", 1)[0]
        cfg_index = list(CONFIGS[m]).index(arm.split("__")[1])
        row: dict[str, list[float]] = {
            "score": [p[s] for p in per_seed],
            "config": [float(cfg_index)] * len(table.seeds),
            "targets_hit": [float(sum(math.isfinite(t) for t in times[s][si])) for si in range(len(table.seeds))],
        }
        for w in workloads:
            row[f"{w}_{_key(w)[1]}"] = [x[-1] for x in table.series(f"{arm}__{w}", _key(w)[1])]
        derived[s] = row
    # the paired differences the claims test, per seed
    lrf_cal = [f"{m}_calibrated" for m in LRF]
    best_lrf = max(lrf_cal, key=lambda s: (statistics.fmean(_val_score(cfg, table, subs, val_targets)[s]), -lrf_cal.index(s)))
    derived["summary"] = {
        "calibration_gain": [statistics.fmean(derived[f"{m}_calibrated"]["score"][i] - derived[f"{m}_default"]["score"][i]
                                              for m in LRF) for i in range(len(table.seeds))],
        "nadamw_minus_best_lrf": [derived["nadamw_calibrated"]["score"][i] - derived[best_lrf]["score"][i]
                                  for i in range(len(table.seeds))],
        "best_lrf": [float(lrf_cal.index(best_lrf))] * len(table.seeds),
        "mean_default_score": [statistics.fmean(derived[f"{m}_default"]["score"][i] for m in LRF)
                               for i in range(len(table.seeds))],
    }
    derived["summary"]["nadamw_minus_mean_default"] = [
        derived["nadamw_calibrated"]["score"][i] - derived["summary"]["mean_default_score"][i] for i in range(len(table.seeds))]


def _val_score(cfg: dict[str, Any], table: Table, subs: dict[str, str], val_targets: dict[str, float]) -> dict[str, list[float]]:
    """Per-seed scores of the submissions on the VALIDATION targets (what picks the best LRF method)."""
    times = {s: _times(cfg, table, arm, val_targets, 0) for s, arm in subs.items()}
    per_seed = [score({s: times[s][si] for s in subs}) for si in range(len(table.seeds))]
    return {s: [p[s] for p in per_seed] for s in subs}


def _plot_methods(cfg: dict[str, Any]) -> list[str]:
    return [f"{m}__{next(iter(CONFIGS[m]))}" for m in METHODS]


EXPERIMENT = optbench("hyperparameter_free_algoperf_study", _methods, extra_derive=_derive, plot_methods=_plot_methods)
