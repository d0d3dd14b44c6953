"""D-Adaptation (Defazio & Mishchenko, ICML 2023) at small scale.

Two parts, every arm running both:

1. **Learning-rate-free training.** An MLP on MNIST-1D, from the same initialisation and batch
   order per seed, trained by D-Adapted Adam and SGD at their default ``lr = 1`` (no tuning) and
   by plain Adam and SGD over a learning-rate grid; the baselines report the grid point with the
   best mean final test accuracy over seeds (a selection on the test set, which favours them).
   Everything uses the same cosine schedule, as the paper keeps each problem's usual schedule.
   The paper's Algorithm 1 (dual averaging, no momentum or schedule) runs as one more arm.
   The grid points train together as one module with one parameter group per learning rate:
   the members share no parameters, so each gets exactly its own run's updates.

2. **The distance estimate on a convex Lipschitz problem with a known solution.** Least absolute
   deviations ``f(x) = mean_i |a_i^T x - b_i|`` with ``b = A x*`` (Gaussian ``A`` of full column
   rank, so ``x*`` is the unique minimiser, ``f* = 0``), started at ``x0 = 0``; full-batch
   (sub)gradients, no momentum, constant multiplier. The tracked ratio is ``d_k / D*`` with
   ``D* = ||x0 - x*||_2`` for the SGD-type methods and ``||x0 - x*||_inf`` for the Adam-type
   ones (whose estimate divides by ``||s||_1``, an l-infinity bound). Fixed-step baselines have no
   estimate of their own; for them the same convexity bound the paper inverts,
   ``max_k sum_{i<=k} l_i <g_i, x0 - x_i> / ||sum_{i<=k} l_i g_i||`` (``l_i`` = the step), is
   evaluated along their own iterates. Suboptimality is that of the best iterate.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiment import Curve, RunContext, RunResult, seed_values
from zoo.optim.d_adaptation import DAdaptAdam, DAdaptDualAveraging, DAdaptSGD
from zoo.training import MLP, History, TensorData, load_dataset, seed_everything, train
from zoo.training.seed import generator

__all__ = ["Members", "lad_problem", "run"]

ARMS = ("dadapt_adam", "adam_best", "dadapt_sgd", "sgd_best", "dadapt_da")
_ADAM_TYPE = {"dadapt_adam", "adam_best"}  # estimates measured against the l-infinity distance


class Members(nn.Module):
    """Copies of one model trained side by side; ``forward`` stacks their outputs ``(K, N, ...)``.

    Every member starts from ``model``'s weights. Members share no parameters, so a loss that
    sums the members' losses gives each member exactly its own gradient, and an optimizer with
    one parameter group per member (e.g. its own learning rate) is K independent runs.
    """

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(copy.deepcopy(model) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])


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
    """The convexity lower bound on ``||x0 - x*||`` along an optimizer's own iterates, per group.

    Registered as a step pre-hook: at that point the parameters are ``x_k`` and the gradients
    ``g_k``. With weights ``l_k`` = the group's lr, ``D >= sum l <g, x0 - x> / ||sum l g||_q``
    (``q = 2`` for the l2 distance, ``q = 1`` for the l-infinity one); the running max is kept.
    """

    def __init__(self, opt: torch.optim.Optimizer, norm: float) -> None:
        self.norm = norm
        self.x0 = [[p.detach().clone() for p in g["params"]] for g in opt.param_groups]
        self.s = [[torch.zeros_like(p) for p in g["params"]] for g in opt.param_groups]
        self.num = [torch.zeros((), dtype=torch.float64, device=x[0].device) for x in self.x0]
        self.best = [torch.zeros((), dtype=torch.float64, device=x[0].device) for x in self.x0]
        self.history: list[torch.Tensor] = []
        opt.register_step_pre_hook(self)

    @torch.no_grad()
    def __call__(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for i, g in enumerate(opt.param_groups):
            lr = float(g["lr"])
            for p, x0, s in zip(g["params"], self.x0[i], self.s[i]):
                self.num[i] += lr * torch.dot(p.grad.reshape(-1).double(), (x0 - p).reshape(-1).double())
                s.add_(p.grad, alpha=lr)
            s_norm = sum(torch.linalg.vector_norm(s.double(), self.norm) for s in self.s[i])
            self.best[i] = torch.maximum(self.best[i], self.num[i] / s_norm)
        self.history.append(torch.stack(self.best))


# ----------------------------------------------------------------------------- classification
def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy (%) per member from stacked logits ``(K, N, C)``."""
    return 100.0 * (logits.argmax(-1) == y).double().mean(-1)


def _make_dadapt(arm: str, params: Any, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    if arm == "dadapt_adam":
        return DAdaptAdam(params)
    if arm == "dadapt_sgd":
        return DAdaptSGD(params, momentum=float(cfg["sgd_momentum"]))
    return DAdaptDualAveraging(params)


def _classification(cfg: dict[str, Any], ctx: RunContext, bar: Any) -> tuple[dict, dict, dict]:
    """Per seed final accuracies, per-epoch accuracy curves, and the grid results."""
    data = load_dataset(cfg["dataset"], ctx.data_dir, ctx.device, flatten=True)
    data = data.subset(cfg.get("n_train"), cfg.get("n_test"))
    epochs, batch_size = int(cfg["epochs"]), int(cfg["batch_size"])
    total_steps = epochs * math.ceil(data.n_train / batch_size)
    grids = {"adam_best": [float(v) for v in cfg["adam_lrs"]], "sgd_best": [float(v) for v in cfg["sgd_lrs"]]}

    final: dict[str, list[list[float]]] = {}  # arm -> per seed -> per grid point (one for D-Adapt)
    curves: dict[str, list[list[list[float]]]] = {}  # arm -> per seed -> per grid point -> per epoch
    for seed in ctx.seeds:
        seed_everything(seed)
        base = MLP(data.input_shape[0], list(cfg["hidden"]), data.num_classes).to(ctx.device)
        for arm in ("dadapt_adam", "dadapt_sgd", "dadapt_da"):
            model = copy.deepcopy(base)
            opt = _make_dadapt(arm, model.parameters(), cfg)
            # Algorithm 1 is run as analysed (constant multiplier); the others get the schedule.
            sched = None if arm == "dadapt_da" else torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
            hist = train(
                model,
                data,
                opt,
                epochs=epochs,
                batch_size=batch_size,
                generator=generator(seed),
                scheduler=sched,
                bar=bar,
            )
            final.setdefault(arm, []).append([hist.test_acc[-1]])
            curves.setdefault(arm, []).append([hist.test_acc])
        for arm, lrs in grids.items():
            model = Members(base, len(lrs))
            groups = [{"params": m.parameters(), "lr": lr} for m, lr in zip(model.members, lrs)]
            if arm == "adam_best":
                opt = torch.optim.Adam(groups, foreach=True)
            else:
                opt = torch.optim.SGD(groups, momentum=float(cfg["sgd_momentum"]), foreach=True)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
            accs: list[list[float]] = []

            def on_epoch(epoch: int, hist: History, model: nn.Module = model, accs: list = accs) -> None:
                with torch.no_grad():
                    model.eval()
                    accs.append(_accuracy(model(data.x_test), data.y_test).tolist())
                    model.train()

            def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                out = m(x)  # (K, N, C); summed, so each member gets its own mean-loss gradient
                return F.cross_entropy(out.flatten(0, 1), y.repeat(out.shape[0]), reduction="sum") / x.shape[0]

            train(
                model,
                data,
                opt,
                epochs=epochs,
                batch_size=batch_size,
                generator=generator(seed),
                loss=loss,
                scheduler=sched,
                eval_every=0,
                on_epoch=on_epoch,
                bar=bar,
            )
            final.setdefault(arm, []).append(accs[-1])
            curves.setdefault(arm, []).append([list(col) for col in zip(*accs)])
    return final, curves, grids


# ----------------------------------------------------------------------------- convex
def _convex(cfg: dict[str, Any], ctx: RunContext, bar: Any) -> tuple[dict, dict]:
    """Per seed: suboptimality, d/D* (final and max) and the d/D* trajectories, per arm."""
    n, dim, steps = int(cfg["convex_n"]), int(cfg["convex_dim"]), int(cfg["convex_steps"])
    grids = {
        "adam_best": [float(v) for v in cfg["convex_adam_lrs"]],
        "sgd_best": [float(v) for v in cfg["convex_sgd_lrs"]],
    }
    out: dict[str, dict[str, list]] = {a: {"gap": [], "ratio": [], "ratio_max": [], "traj": []} for a in ARMS}
    for seed in ctx.seeds:
        a, b, x_star = lad_problem(seed, n, dim, ctx.device)
        data = TensorData(a, b, a[:1], b[:1], num_classes=0, name="lad")
        dstar = {"l2": float(x_star.norm()), "linf": float(x_star.abs().max())}
        for arm in ARMS:
            k = len(grids.get(arm, [1.0]))
            seed_everything(seed)
            base = nn.Linear(dim, 1, bias=False).to(device=ctx.device, dtype=torch.float64)
            nn.init.zeros_(base.weight)  # x0 = 0, so D* = ||x*||
            model = Members(base, k)
            if arm in grids:
                groups = [{"params": m.parameters(), "lr": lr} for m, lr in zip(model.members, grids[arm])]
                opt = torch.optim.Adam(groups) if arm == "adam_best" else torch.optim.SGD(groups)
                tracker = _BoundTracker(opt, 1.0 if arm in _ADAM_TYPE else 2.0)
                d_hist = tracker.history
            else:
                opt = _make_dadapt(arm, model.parameters(), {"sgd_momentum": 0.0})  # the theory has no momentum
                d_hist = []
                opt.register_step_post_hook(lambda o, *_, h=d_hist: h.append(o.param_groups[0]["d"]))
            f_hist: list[torch.Tensor] = []

            def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor, f_hist: list = f_hist) -> torch.Tensor:
                per_member = (m(x).squeeze(-1) - y).abs().mean(-1)  # f(x_k) of every member
                f_hist.append(per_member.detach())
                return per_member.sum()

            train(model, data, opt, epochs=steps, batch_size=n, generator=generator(seed), loss=loss, eval_every=0)
            bar.update(1)
            f = torch.stack(f_hist)  # (steps, K)
            gap = torch.log10(f.min(0).values / f[0]).tolist()
            dnorm = dstar["linf" if arm in _ADAM_TYPE else "l2"]
            d = (torch.stack(d_hist) if arm in grids else torch.tensor(d_hist).unsqueeze(1)).double().cpu() / dnorm
            out[arm]["gap"].append(gap)
            out[arm]["ratio"].append(d[-1].tolist())
            out[arm]["ratio_max"].append(d.max(0).values.tolist())
            out[arm]["traj"].append(d)
    return out, grids


# ----------------------------------------------------------------------------- assembly
def _best(per_seed: list[list[float]], higher: bool) -> int:
    """Index of the grid point with the best mean over seeds."""
    means = [sum(col) / len(col) for col in zip(*per_seed)]
    return max(range(len(means)), key=lambda i: means[i] if higher else -means[i])


def _band(rows: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    cols = list(zip(*rows))
    return [sum(c) / len(c) for c in cols], [min(c) for c in cols], [max(c) for c in cols]


def run(cfg: dict[str, Any], ctx: RunContext) -> RunResult:
    """Both parts for every seed; see the module docstring."""
    epochs = int(cfg["epochs"])
    n_seeds = len(ctx.seeds)
    bar = ctx.bar(total=n_seeds * (5 * epochs + len(ARMS)), desc="d_adaptation")
    final, acc_curves, grids = _classification(cfg, ctx, bar)
    convex, cgrids = _convex(cfg, ctx, bar)
    bar.close()

    pick = {arm: _best(final[arm], higher=True) for arm in grids}
    cpick = {arm: _best(convex[arm]["gap"], higher=False) for arm in cgrids}
    per_seed = []
    for i in range(n_seeds):
        row = {}
        for arm in ARMS:
            j, cj = pick.get(arm, 0), cpick.get(arm, 0)
            row[arm] = {
                "test_acc": final[arm][i][j],
                "convex_gap": convex[arm]["gap"][i][cj],
                "d_ratio": convex[arm]["ratio"][i][cj],
                "d_ratio_max": convex[arm]["ratio_max"][i][cj],
            }
        per_seed.append(row)

    curves = []
    series, bands = {}, {}
    for arm in ARMS:
        label = arm if arm not in pick else f"{arm} (lr={grids[arm][pick[arm]]:g})"
        mean, lo, hi = _band([c[pick.get(arm, 0)] for c in acc_curves[arm]])
        series[label], bands[label] = mean, (lo, hi)
    curves.append(
        Curve(
            title="MNIST-1D MLP: test accuracy (mean, min-max over seeds)",
            x=[float(e) for e in range(1, epochs + 1)],
            series=series,
            bands=bands,
            xlabel="epoch",
            ylabel="test accuracy (%)",
        )
    )

    steps = int(cfg["convex_steps"])
    idx = sorted({min(steps - 1, round(v)) for v in torch.logspace(0, math.log10(steps), 120).tolist()})
    series, bands, style = {}, {}, {}
    for arm, label in (
        ("dadapt_da", "Algorithm 1 d / D*"),
        ("dadapt_sgd", "DAdaptSGD d / D*"),
        ("dadapt_adam", "DAdaptAdam d / D*_inf"),
    ):
        rows = [traj[idx, 0].tolist() for traj in convex[arm]["traj"]]
        series[label], lo, hi = _band(rows)
        bands[label] = (lo, hi)
    series["D* (upper bound of Algorithm 1)"] = [1.0] * len(idx)
    series["D* / (1 + sqrt 3)"] = [1.0 / (1.0 + math.sqrt(3.0))] * len(idx)
    style.update({"D* (upper bound of Algorithm 1)": "k--", "D* / (1 + sqrt 3)": "k:"})
    curves.append(
        Curve(
            title="Convex LAD problem: distance estimate vs step",
            x=[float(i + 1) for i in idx],
            series=series,
            bands=bands,
            style=style,
            xlabel="step",
            ylabel="d_k / D*",
            logx=True,
            logy=True,
        )
    )

    for arm, name in (("adam_best", "Adam"), ("sgd_best", "SGD")):
        dadapt = "dadapt_adam" if arm == "adam_best" else "dadapt_sgd"
        grid_mean = [sum(c) / len(c) for c in zip(*final[arm])]
        d_mean = sum(r[0] for r in final[dadapt]) / n_seeds
        curves.append(
            Curve(
                title=f"{name}: final test accuracy over the lr grid (mean over seeds)",
                x=grids[arm],
                series={
                    f"{name}, fixed lr": grid_mean,
                    f"D-Adapted {name}, lr=1 (no tuning)": [d_mean] * len(grids[arm]),
                },
                style={f"D-Adapted {name}, lr=1 (no tuning)": "--"},
                xlabel="learning rate",
                ylabel="test accuracy (%)",
                logx=True,
            )
        )
    return RunResult(metrics=seed_values(per_seed), curves=curves)
