"""D-Adaptation (Defazio & Mishchenko, ICML 2023) at small scale, on the experiment harness.

Every job is one ``(arm, seed)``; the harness seeds it, so the initialisation and batch order are
the seed's and the same for every arm. Two parts:

1. **Learning-rate-free training.** An MLP on MNIST-1D. A validation split (``val_fraction`` of
   the training set, drawn once with ``val_seed`` by :meth:`TensorData.with_validation`, the same
   for every arm and seed) is carved from the training data; models train on the rest. Arms:

   * ``adam_lr<x>`` / ``sgd_lr<x>``: plain Adam / SGD (momentum ``sgd_momentum``) at one learning
     rate of the grid ``adam_lrs`` / ``sgd_lrs`` (internal arms, kept in ``jobs.json``);
   * ``dadapt_adam`` / ``dadapt_sgd``: our D-Adapted Adam / SGD at the package defaults (lr
     multiplier 1, no bias correction, no growth cap, no weight decay);
   * ``dadapt_adam_ref`` / ``dadapt_sgd_ref``: the authors' package (``dadaptation.DAdaptAdam`` /
     ``DAdaptSGD``, pinned in the ``test`` extra) at the same setting, in the same loop;
   * ``dadapt_adam_bc``: our D-Adapted Adam with ``use_bias_correction=True``, the one practical
     switch the package offers for Adam beyond the defaults the README already prescribes
     (lr 1, the problem's usual schedule, weight decay as the baseline's: none here);
   * ``dadapt_da``: the paper's Algorithm 1 (dual averaging, constant multiplier, no schedule).

   Every arm but Algorithm 1 runs the same cosine schedule over the whole run (one scheduler
   step per optimizer step). :func:`_derive` makes the tuned baselines ``adam_best`` /
   ``sgd_best``: the grid point with the best **validation** accuracy averaged over seeds (ties:
   the smaller learning rate), reporting that grid point's test accuracy per seed.

2. **The distance estimate on a convex Lipschitz problem with a known solution.** Least absolute
   deviations ``f(x) = mean_i |a_i^T x - b_i|`` with ``b = A x*`` (Gaussian ``A`` of full column
   rank, so ``x*`` is the unique minimiser, ``f* = 0``), started at ``x0 = 0``; full-batch
   (sub)gradients, no momentum, constant multiplier. Every D-Adapted arm runs it in the same job
   as its MLP run; fixed-step Adam / SGD run it as their own internal arms ``lad_adam_lr<x>`` /
   ``lad_sgd_lr<x>`` over ``convex_adam_lrs`` / ``convex_sgd_lrs``, and ``adam_best`` /
   ``sgd_best`` report the grid point with the lowest mean suboptimality (a training objective,
   no held-out data involved). The tracked ratio is ``d_k / D*`` with ``D* = ||x0 - x*||_2`` for
   the SGD-type methods and ``||x0 - x*||_inf`` for the Adam-type ones (whose estimate divides by
   ``||s||_1``, an l-infinity bound). Fixed-step baselines have no estimate of their own; for them
   the same convexity bound the paper inverts,
   ``max_k sum_{i<=k} l_i <g_i, x0 - x_i> / ||sum_{i<=k} l_i g_i||`` (``l_i`` = the step), is
   evaluated along their own iterates. Suboptimality is that of the best iterate.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.optim.d_adaptation import DAdaptAdam, DAdaptDualAveraging, DAdaptSGD
from zoo.training import MLP, TensorData, evaluate, load_dataset, train
from zoo.training.full_batch import full_batch_descent
from zoo.training.seed import generator

__all__ = ["EXPERIMENT", "Arm", "arm_table", "lad_problem", "lad_subgradient", "pick_best", "REFERENCE_HINT"]

REFERENCE_HINT = (
    "the reference arms run the authors' package dadaptation==3.2, which is not installed; "
    'install the test extra: pip install -e ".[test]"'
)
# The arms whose MLP test accuracy is plotted per epoch, by panel.
_ADAM_PANEL = ("dadapt_adam", "dadapt_adam_ref", "dadapt_adam_bc")
_SGD_PANEL = ("dadapt_sgd", "dadapt_sgd_ref", "dadapt_da")


@dataclass(frozen=True)
class Arm:
    """What one job arm runs.

    ``family`` is the method type (``adam``, ``sgd`` or ``da``: which D* norm applies);
    ``impl`` is ``torch`` (fixed learning rate ``lr``), ``ours`` (zoo.optim) or ``reference``
    (the authors' ``dadaptation`` package); ``mlp`` / ``convex`` say which parts it runs.
    """

    family: str
    impl: str
    lr: float | None = None
    mlp: bool = True
    convex: bool = True
    bias_correction: bool = False


def _slug(lr: float) -> str:
    return f"{lr:g}".replace(".", "_").replace("-", "m")


def arm_table(cfg: dict[str, Any]) -> dict[str, Arm]:
    """Every job arm of the config, in run order: the D-Adapted arms, then the grids."""
    arms: dict[str, Arm] = {
        "dadapt_adam": Arm("adam", "ours"),
        "dadapt_adam_ref": Arm("adam", "reference"),
        "dadapt_adam_bc": Arm("adam", "ours", bias_correction=True),
        "dadapt_sgd": Arm("sgd", "ours"),
        "dadapt_sgd_ref": Arm("sgd", "reference"),
        "dadapt_da": Arm("da", "ours"),
    }
    for fam in ("adam", "sgd"):
        for lr in cfg[f"{fam}_lrs"]:
            arms[f"{fam}_lr{_slug(float(lr))}"] = Arm(fam, "torch", float(lr), mlp=True, convex=False)
        for lr in cfg[f"convex_{fam}_lrs"]:
            arms[f"lad_{fam}_lr{_slug(float(lr))}"] = Arm(fam, "torch", float(lr), mlp=False, convex=True)
    return arms


def _reference() -> Any:
    """The authors' package, imported only by the jobs that run it."""
    try:
        import dadaptation
    except ImportError:
        raise ModuleNotFoundError(REFERENCE_HINT) from None
    return dadaptation


def _optimizer(arm: Arm, params: Any, momentum: float) -> torch.optim.Optimizer:
    """The arm's optimizer; ``momentum`` applies to the SGD-type arms."""
    if arm.impl == "torch":
        assert arm.lr is not None
        if arm.family == "adam":
            return torch.optim.Adam(params, lr=arm.lr)
        return torch.optim.SGD(params, lr=arm.lr, momentum=momentum)
    if arm.family == "da":
        return DAdaptDualAveraging(params)
    if arm.impl == "reference":
        ref = _reference()
        if arm.family == "adam":
            return ref.DAdaptAdam(params, lr=1.0, use_bias_correction=arm.bias_correction)
        return ref.DAdaptSGD(params, lr=1.0, momentum=momentum)
    if arm.family == "adam":
        return DAdaptAdam(params, lr=1.0, use_bias_correction=arm.bias_correction)
    return DAdaptSGD(params, lr=1.0, momentum=momentum)


def _base_lr(arm: Arm, opt: torch.optim.Optimizer) -> float | None:
    """The learning rate before the schedule's factor: the grid lr, or the final adapted step."""
    if arm.impl == "torch":
        return arm.lr
    g = opt.param_groups[0]
    if arm.family == "adam":
        return float(g["d"])  # the multiplier is 1: d is Adam's learning rate
    if arm.family == "sgd":
        return float(g["d"]) / float(g["g0_norm"])  # DAdaptSGD steps d lr / ||g_0||
    return None


# ----------------------------------------------------------------------------- convex problem
def lad_problem(
    seed: int, n: int, dim: int, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A least-absolute-deviations problem ``(A, b, x*)`` with ``b = A x*``, in float64.

    ``A`` is ``n x dim`` standard Gaussian (full column rank almost surely when ``n >= dim``),
    so ``x*`` is the unique minimiser of ``mean |A x - b|`` and the optimal value is 0.
    """
    g = generator(10_000 + seed)
    a = torch.randn(n, dim, generator=g, dtype=torch.float64)
    x_star = torch.randn(dim, generator=g, dtype=torch.float64)
    return a.to(device), (a @ x_star).to(device), x_star.to(device)


class _BoundTracker:
    """The convexity lower bound on ``||x0 - x*||`` along a fixed-step method's own iterates.

    Called before each step with the iterate ``x_k`` and the subgradient ``g_k``. With weights
    ``l_k`` = the step's lr, ``D >= sum l <g, x0 - x> / ||sum l g||_q`` (``q = 2`` for the l2
    distance, ``q = 1`` for the l-infinity one); :attr:`best` is the running maximum.
    """

    def __init__(self, x0: torch.Tensor, lr: float, norm: float) -> None:
        self.x0, self.lr, self.norm = x0.detach().clone(), lr, norm
        self.s = torch.zeros_like(x0)
        self.num = 0.0
        self.best = 0.0

    @torch.no_grad()
    def update(self, x: torch.Tensor, g: torch.Tensor) -> float:
        self.num += self.lr * float(torch.dot(g.reshape(-1), (self.x0 - x).reshape(-1)))
        self.s.add_(g, alpha=self.lr)
        self.best = max(self.best, self.num / float(torch.linalg.vector_norm(self.s, self.norm)))
        return self.best


def lad_subgradient(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(x) = mean |A x - b|`` and its subgradient ``A^T sign(A x - b) / n`` (autograd's, at kinks too)."""
    r = a @ x - b
    return r.abs().mean(), a.T @ torch.sign(r) / a.shape[0]


def _log_steps(steps: int, n: int = 120) -> list[int]:
    """About ``n`` log-spaced step indices in ``[0, steps)`` (the plotted trajectory)."""
    return sorted({min(steps - 1, round(v)) for v in torch.logspace(0, math.log10(steps), n).tolist()})


@torch.no_grad()
def _convex(cfg: dict[str, Any], arm: Arm, seed: int, device: str) -> JobOutput:
    """The subgradient method of ``arm`` on the seed's LAD problem from ``x0 = 0``.

    Full-batch and deterministic, so the subgradient is written out (:func:`lad_subgradient`) and
    run by the shared :func:`zoo.training.full_batch.full_batch_descent` rather than through
    autograd and the mini-batch loop: the same iterates at a fraction of the per-step overhead
    (2,000 steps for each convex arm).
    """
    n, dim, steps = int(cfg["convex_n"]), int(cfg["convex_dim"]), int(cfg["convex_steps"])
    a, b, x_star = lad_problem(seed, n, dim, device)
    dstar = float(x_star.abs().max() if arm.family == "adam" else x_star.norm())
    x = nn.Parameter(torch.zeros(dim, dtype=torch.float64, device=device))  # x0 = 0, so D* = ||x*||
    opt = _optimizer(arm, [x], momentum=0.0)  # the theory has no momentum
    tracker = _BoundTracker(x, float(arm.lr), 1.0 if arm.family == "adam" else 2.0) if arm.impl == "torch" else None
    d_hist: list[float] = []

    def oracle(ps: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f, g = lad_subgradient(a, b, ps[0])
        return f, [g]

    def track(k: int, grads: list[torch.Tensor]) -> None:  # fixed steps: the bound along x_k, g_k
        if tracker is not None:
            d_hist.append(tracker.update(x, grads[0]))

    def read_d(k: int) -> None:  # D-Adaptation: d_{k+1}, as the optimizer will use it
        if tracker is None:
            d_hist.append(float(opt.param_groups[0]["d"]))

    f_hist = full_batch_descent([x], oracle, opt, steps, before_step=track, after_step=read_d).tolist()  # f(x_k)
    ratio = [d / dstar for d in d_hist]
    return JobOutput(
        metrics={
            "convex_gap": math.log10(min(f_hist) / f_hist[0]),
            "d_ratio": ratio[-1],
            "d_ratio_max": max(ratio),
        },
        series={"d_ratio": [ratio[i] for i in _log_steps(len(ratio))]},
    )


# ----------------------------------------------------------------------------- stages
def _setup(cfg: dict[str, Any], env: Env) -> TensorData:
    data = load_dataset(cfg["dataset"], env.data_dir, env.device, flatten=True)
    return data.subset(cfg.get("n_train"), cfg.get("n_test")).with_validation(
        float(cfg["val_fraction"]), int(cfg["val_seed"])
    )


def _mlp(cfg: dict[str, Any], arm: Arm, seed: int, data: TensorData, device: str) -> JobOutput:
    """One MLP run; the harness seeded this job, so the initialisation is the seed's."""
    model = MLP(data.input_shape[0], list(cfg["hidden"]), data.num_classes).to(device)
    epochs, batch_size = int(cfg["epochs"]), int(cfg["batch_size"])
    opt = _optimizer(arm, model.parameters(), momentum=float(cfg["sgd_momentum"]))
    total_steps = epochs * math.ceil(data.n_train / batch_size)
    # Algorithm 1 runs as analysed (constant multiplier); every other arm gets the same schedule.
    sched = None if arm.family == "da" else torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    hist = train(model, data, opt, epochs=epochs, batch_size=batch_size, generator=generator(seed), scheduler=sched)
    assert data.x_val is not None and data.y_val is not None
    metrics = {"test_acc": hist.test_acc[-1], "val_acc": evaluate(model, data.x_val, data.y_val)["acc"]}
    base = _base_lr(arm, opt)
    if base is not None:
        metrics["base_lr"] = base
    return JobOutput(metrics=metrics, series={"test_acc": hist.test_acc})


def _job(cfg: dict[str, Any], arm_name: str, seed: int, ctx: JobContext) -> JobOutput:
    arm = arm_table(cfg)[arm_name]
    out = JobOutput(metrics={}, series={})
    if arm.mlp:  # first: the model's initialisation draws from the seeded global generator
        part = _mlp(cfg, arm, seed, ctx.setup, ctx.device)
        out.metrics.update(part.metrics)
        out.series.update(part.series)
    if arm.convex:
        part = _convex(cfg, arm, seed, ctx.device)
        out.metrics.update(part.metrics)
        out.series.update({f"convex_{k}": v for k, v in part.series.items()})
    return out


def pick_best(table: Table, arms: list[str], metric: str, higher: bool) -> str:
    """The arm with the best mean ``metric`` over seeds (ties: the first listed)."""
    means = [statistics.fmean(table.metric(a, metric)) for a in arms]
    best = max(means) if higher else min(means)
    return arms[means.index(best)]


def _grid(cfg: dict[str, Any], fam: str, part: str) -> list[str]:
    prefix = "" if part == "mlp" else "lad_"
    key = f"{fam}_lrs" if part == "mlp" else f"convex_{fam}_lrs"
    return [f"{prefix}{fam}_lr{_slug(float(lr))}" for lr in cfg[key]]


def _derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
    """The tuned baselines: MLP grid point by mean validation accuracy, LAD grid point by mean gap."""
    out = {}
    for fam in ("adam", "sgd"):
        mlp = pick_best(table, _grid(cfg, fam, "mlp"), "val_acc", higher=True)
        lad = pick_best(table, _grid(cfg, fam, "convex"), "convex_gap", higher=False)
        out[f"{fam}_best"] = {
            **{m: table.metric(mlp, m) for m in ("test_acc", "val_acc", "base_lr")},
            **{m: table.metric(lad, m) for m in ("convex_gap", "d_ratio", "d_ratio_max")},
        }
    return out


# ----------------------------------------------------------------------------- curves
def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    n = len(table.seeds)
    epochs = int(cfg["epochs"])
    picks = {fam: pick_best(table, _grid(cfg, fam, "mlp"), "val_acc", higher=True) for fam in ("adam", "sgd")}
    curves = []
    for title, arms, fam in (("Adam-type", _ADAM_PANEL, "adam"), ("SGD-type", _SGD_PANEL, "sgd")):
        series, bands = {}, {}
        for a in (*arms, picks[fam]):
            label = a if a != picks[fam] else f"{fam}_best (lr={table.metric(a, 'base_lr')[0]:g}, by validation)"
            series[label], bands[label] = mean_band(table.series(a, "test_acc"))
        curves.append(Curve(
            title=f"MLP, {title} arms: test accuracy (mean, min-max, {n} seeds)",
            x=[float(e) for e in range(1, epochs + 1)], series=series, bands=bands,
            xlabel="epoch", ylabel="test accuracy (%)",
        ))

    for fam, name, dadapt in (("adam", "Adam", ("dadapt_adam", "dadapt_adam_ref", "dadapt_adam_bc")),
                              ("sgd", "SGD", ("dadapt_sgd", "dadapt_sgd_ref"))):
        grid = _grid(cfg, fam, "mlp")
        lrs = [float(v) for v in cfg[f"{fam}_lrs"]]
        series = {
            f"{name}, validation": [_mean(table.metric(a, "val_acc")) for a in grid],
            f"{name}, test": [_mean(table.metric(a, "test_acc")) for a in grid],
        }
        style = {f"{name}, validation": "o-", f"{name}, test": "s-"}
        for a in dadapt:
            series[f"{a} (lr=1), test"] = [_mean(table.metric(a, "test_acc"))] * len(lrs)
            style[f"{a} (lr=1), test"] = "--"
        curves.append(Curve(
            title=f"{name} lr grid: final accuracy (mean, {n} seeds)",
            x=lrs, series=series, style=style, xlabel="learning rate", ylabel="accuracy (%)", logx=True,
        ))

    idx = _log_steps(int(cfg["convex_steps"]))
    series, bands = {}, {}
    for arm, label in (("dadapt_da", "Algorithm 1 d / D*"), ("dadapt_sgd", "DAdaptSGD d / D*"),
                       ("dadapt_adam", "DAdaptAdam d / D*_inf")):
        series[label], bands[label] = mean_band(table.series(arm, "convex_d_ratio"))
    series["D* (upper bound of Algorithm 1)"] = [1.0] * len(idx)
    series["D* / (1 + sqrt 3)"] = [1.0 / (1.0 + math.sqrt(3.0))] * len(idx)
    curves.append(Curve(
        title="Convex LAD problem: distance estimate vs step",
        x=[float(i + 1) for i in idx], series=series, bands=bands,
        style={"D* (upper bound of Algorithm 1)": "k--", "D* / (1 + sqrt 3)": "k:"},
        xlabel="step", ylabel="d_k / D*", logx=True, logy=True,
    ))
    return curves


EXPERIMENT = Experiment(
    name="d_adaptation",
    arms=lambda cfg: list(arm_table(cfg)),
    setup=_setup,
    job=_job,
    derive=_derive,
    curves=_curves,
)
