"""Saddle-free Newton (Dauphin et al., NIPS 2014) at small scale, on the experiment harness.

Two parts, each job one ``(arm, seed)`` (the harness seeds it: initialisation and starting
point are the seed's, the same for every arm):

1. **A deep autoencoder on digits** (the paper trains a deep autoencoder on MNIST):
   ``64 -> 32 -> 16 -> 4 -> 16 -> 32 -> 64``, tanh hidden units, linear output, mean squared
   reconstruction error, full-batch steps on the 1,038 training images of the shared digits
   split (the validation split, carved from training, picks the baselines' learning rates by its
   final reconstruction error). Trained by the shared loop :func:`zoo.workloads.optim.run`,
   every step ``optimizer.step(closure)``, every closure call counted as a gradient evaluation:

   * ``ae_sfn``: :class:`SaddleFreeNewton`, Krylov dimension ``krylov_dim``, line search over
     ``dampings``, ``iterations`` steps; Hessian-vector products by central finite differences
     of the closure's gradients (the shared loop back-propagates without ``create_graph``), so
     one step costs ``1 + 2 k + len(dampings)`` gradient evaluations;
   * ``ae_newton``: the same with ``T`` for ``|T|`` (the paper's damped Newton baseline);
   * ``ae_gd__lr<x>`` / ``ae_gdm__lr<x>``: full-batch gradient descent without / with momentum
     0.9 for the same number of **iterations** (grids ``gd_lrs`` / ``gdm_lrs``);
   * ``ae_gd_evals__lr<x>`` / ``ae_gdm_evals__lr<x>``: the same for as many steps as
     saddle-free Newton's **gradient evaluations** (grids ``gd_evals_lrs`` / ``gdm_evals_lrs``).

2. **A synthetic saddle** (the paper's low-dimensional illustration of a saddle, made flat): ``f(w) = sum_i a_i z_i^2 / 2 + sum_j
   (-b z_j^2 / 2 + c z_j^4 / 4)``, ``z = R^T w`` for a random rotation ``R`` (the seed's),
   ``toy_pos`` positive curvatures ``a`` log-spaced in ``[0.1, 1]`` and ``toy_neg``
   negative-curvature directions ``-b``, started at ``z_pos ~ N(0, 1)``, ``z_neg ~ toy_start *
   N(0, 1)``: gradient descent first converges onto the saddle at 0 along the positive
   directions, then must escape along the flat negative ones. The minima are at ``z_j^2 = b /
   c`` with ``f* = -toy_neg b^2 / (4 c)``; the metric ``depth = f(w_T) / f*`` is 1 at a minimum,
   0 at the saddle's level. Exact Hessian-vector products (the toy's closure back-propagates with
   ``create_graph=True``); each product counts as one gradient evaluation. Arms ``toy_sfn``,
   ``toy_newton`` (``toy_iterations`` steps, ``toy_krylov_dim``), ``toy_gd__lr<x>`` and
   ``toy_gdm__lr<x>`` (momentum 0.9) for as many steps as ``toy_sfn``'s nominal gradient
   evaluations (its actual count is lower when the Krylov space is exhausted early); a
   baseline's learning rate is the grid point with the highest mean depth (a training objective;
   ties to the smaller rate).

Derived arms (``derive``): ``sfn``, ``newton``, ``gd``, ``gdm``, ``gd_evals``, ``gdm_evals`` with
``ae_train_mse`` (final, full training split), ``ae_val_mse``, ``ae_test_mse``, ``ae_grad_evals``,
``ae_lr`` (grid arms), and ``toy_depth``, ``toy_grad_evals``, ``toy_lr`` (``gd``/``gdm``: the
toy's equal-evaluation grids; ``sfn``/``newton``: the toy's runs).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.experiments._optbench import lr_grid_best, slug
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.optim.saddle_free_newton import SaddleFreeNewton
from zoo.training import TensorData
from zoo.workloads.optim import Workload, get_workload, load, run

__all__ = ["EXPERIMENT", "autoencoder", "ae_data", "toy_problem", "sfn_evals_per_step", "job_arms"]

_AE_BASELINES = ("gd", "gdm", "gd_evals", "gdm_evals")
_TOY_BASELINES = ("gd", "gdm")


def autoencoder(sizes: list[int]) -> nn.Sequential:
    """``sizes[0] -> ... -> sizes[-1]``, tanh between layers, linear output."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def ae_data(base: TensorData) -> TensorData:
    """The digits split with every target replaced by its input (reconstruction)."""
    assert base.x_val is not None
    return TensorData(base.x_train, base.x_train, base.x_test, base.x_test, 0, "digits_autoencoder",
                      base.x_val, base.x_val)


def sfn_evals_per_step(krylov_dim: int, n_dampings: int, fd: bool) -> int:
    """Gradient evaluations of one saddle-free Newton step (no early Lanczos stop, one inner step)."""
    return 1 + (2 if fd else 1) * krylov_dim + (n_dampings if n_dampings > 1 else 0)


def job_arms(cfg: dict[str, Any]) -> dict[str, tuple[str, str, float | None]]:
    """Every job arm: ``name -> (part, method, lr)``."""
    out: dict[str, tuple[str, str, float | None]] = {"ae_sfn": ("ae", "sfn", None), "ae_newton": ("ae", "newton", None)}
    for b in _AE_BASELINES:
        for lr in cfg[f"{b}_lrs"]:
            out[f"ae_{b}__lr{slug(float(lr))}"] = ("ae", b, float(lr))
    out["toy_sfn"] = ("toy", "sfn", None)
    out["toy_newton"] = ("toy", "newton", None)
    for b in _TOY_BASELINES:
        for lr in cfg[f"toy_{b}_lrs"]:
            out[f"toy_{b}__lr{slug(float(lr))}"] = ("toy", b, float(lr))
    return out


def _arms(cfg: dict[str, Any]) -> list[str]:
    return list(job_arms(cfg))


def _setup(cfg: dict[str, Any], env: Env) -> TensorData:
    base = load(get_workload("digits_mlp"), env.data_dir, env.device, cfg.get("n_train"), cfg.get("n_test"))
    return ae_data(base)


# ----------------------------------------------------------------------------- autoencoder
def _sfn(params: list[nn.Parameter], cfg: dict[str, Any], absolute: bool, krylov_key: str = "krylov_dim",
         damp_key: str = "dampings") -> SaddleFreeNewton:
    return SaddleFreeNewton(params, lr=1.0, krylov_dim=int(cfg[krylov_key]), dampings=tuple(cfg[damp_key]),
                            absolute=absolute)


def _ae_job(cfg: dict[str, Any], method: str, lr: float | None, data: TensorData, seed: int, device: str) -> JobOutput:
    its = int(cfg["iterations"])
    per = sfn_evals_per_step(int(cfg["krylov_dim"]), len(cfg["dampings"]), fd=True)
    steps = its * per if method.endswith("_evals") else its
    w = Workload("digits_autoencoder", "digits", True, lambda d: autoencoder(list(cfg["ae_sizes"])), steps,
                 data.n_train, "deep autoencoder on digits (full batch)", task="regression")
    model = w.model(data)

    def make(params: list[nn.Parameter], total: int) -> tuple[torch.optim.Optimizer, Any]:
        if method in ("sfn", "newton"):
            return _sfn(params, cfg, absolute=method == "sfn"), None
        momentum = 0.9 if method.startswith("gdm") else 0.0
        return torch.optim.SGD(params, lr=float(lr), momentum=momentum), None  # type: ignore[arg-type]

    metrics, series = run(w, data, make, seed, epochs=steps, device=device, model=model)
    with torch.no_grad():
        train_mse = float(nn.functional.mse_loss(model(data.x_train), data.x_train))
    out = {"ae_train_mse": train_mse if math.isfinite(train_mse) else 1e30,
           "ae_val_mse": metrics["val_loss"], "ae_test_mse": metrics["test_loss"],
           "ae_grad_evals": metrics["grad_evals"], "ae_diverged": metrics["diverged"]}
    if lr is not None:
        out["ae_lr"] = lr
    # per-iteration training loss (the loss at each step's starting point), on SFN's clock for the
    # _evals arms: point i is the loss after (i - 1) * per gradient evaluations, as SFN's point i
    curve = series["train_loss"]
    if method.endswith("_evals"):
        curve = curve[::per]
    return JobOutput(out, {"ae_train_loss": [min(v, 1e3) for v in curve]})


# ----------------------------------------------------------------------------- synthetic saddle
def toy_problem(cfg: dict[str, Any], seed: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, float]:
    """``(f, w0, f*)`` of the synthetic saddle for ``seed`` (float64)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    n_pos, n_neg = int(cfg["toy_pos"]), int(cfg["toy_neg"])
    d = n_pos + n_neg
    rot, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    a = torch.logspace(0, -1, n_pos, dtype=torch.float64)
    b, c = float(cfg["toy_b"]), float(cfg["toy_c"])
    z0 = torch.cat([torch.randn(n_pos, generator=g, dtype=torch.float64),
                    float(cfg["toy_start"]) * torch.randn(n_neg, generator=g, dtype=torch.float64)])

    def f(w: torch.Tensor) -> torch.Tensor:
        z = rot.T @ w
        zp, zn = z[:n_pos], z[n_pos:]
        return 0.5 * (a * zp**2).sum() + (-0.5 * b * zn**2 + 0.25 * c * zn**4).sum()

    return f, rot @ z0, -n_neg * b * b / (4.0 * c)


def _toy_job(cfg: dict[str, Any], method: str, lr: float | None, seed: int) -> JobOutput:
    f, w0, f_star = toy_problem(cfg, seed)
    w = nn.Parameter(w0.clone())
    its = int(cfg["toy_iterations"])
    per = sfn_evals_per_step(int(cfg["toy_krylov_dim"]), len(cfg["toy_dampings"]), fd=False)
    if method in ("sfn", "newton"):
        opt: torch.optim.Optimizer = _sfn([w], cfg, absolute=method == "sfn", krylov_key="toy_krylov_dim",
                                          damp_key="toy_dampings")
        steps = its
    else:
        opt = torch.optim.SGD([w], lr=float(lr), momentum=0.9 if method == "gdm" else 0.0)  # type: ignore[arg-type]
        steps = its * per
    evals = 0
    depth: list[float] = []

    def closure() -> torch.Tensor:
        nonlocal evals
        opt.zero_grad(set_to_none=True)
        loss = f(w)
        loss.backward(create_graph=isinstance(opt, SaddleFreeNewton))
        evals += 1
        return loss

    for _ in range(steps):  # the synthetic problem has no data: the whole loop is step(closure)
        opt.step(closure)
        if isinstance(opt, SaddleFreeNewton):
            evals += opt.last_hvps  # the exact Hessian-vector products (double backward)
            w.grad = None
        with torch.no_grad():
            depth.append(float(f(w)) / f_star)
    final = depth[-1] if depth and math.isfinite(depth[-1]) else -1e30
    out = {"toy_depth": final, "toy_grad_evals": float(evals)}
    if lr is not None:
        out["toy_lr"] = lr
    curve = depth if method in ("sfn", "newton") else depth[per - 1 :: per]
    return JobOutput(out, {"toy_depth": [max(min(v, 1.0), -1.0) if math.isfinite(v) else -1.0 for v in curve]})


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    part, method, lr = job_arms(cfg)[arm]
    if part == "ae":
        return _ae_job(cfg, method, lr, ctx.setup, seed, ctx.device)
    return _toy_job(cfg, method, lr, seed)


# ----------------------------------------------------------------------------- derived arms
def _pick(table: Table, arms: list[tuple[str, float]], metric: str, higher: bool) -> str:
    return lr_grid_best(table, arms, metric, higher)[0]


def _derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
    jobs = job_arms(cfg)
    out: dict[str, dict[str, list[float]]] = {}
    for m in ("sfn", "newton"):
        out[m] = {**table.metrics_of(f"ae_{m}"), **table.metrics_of(f"toy_{m}")}
    for b in _AE_BASELINES:
        grid = [(a, float(lr)) for a, (part, mm, lr) in jobs.items() if part == "ae" and mm == b]  # type: ignore[misc]
        out[b] = dict(table.metrics_of(_pick(table, grid, "ae_val_mse", higher=False)))
    for b in _TOY_BASELINES:
        grid = [(a, float(lr)) for a, (part, mm, lr) in jobs.items() if part == "toy" and mm == b]  # type: ignore[misc]
        out[b].update(table.metrics_of(_pick(table, grid, "toy_depth", higher=True)))
    return out


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    derived = _derive(cfg, table)
    n = len(table.seeds)
    out: list[Curve] = []

    def arm_of(m: str, part: str) -> str:
        if m in ("sfn", "newton"):
            return f"{part}_{m}"
        lr = derived[m][f"{part}_lr"][0]
        return f"{part}_{m}__lr{slug(lr)}"

    for title, methods in (("equal iterations", ("sfn", "newton", "gd", "gdm")),
                           ("equal gradient evaluations", ("sfn", "gd_evals", "gdm_evals"))):
        series, bands = {}, {}
        for m in methods:
            label = m if m in ("sfn", "newton") else f"{m} (lr {derived[m]['ae_lr'][0]:g}, by validation)"
            series[label], bands[label] = mean_band(table.series(arm_of(m, "ae"), "ae_train_loss"))
        k = len(next(iter(series.values())))
        out.append(Curve(title=f"autoencoder, {title} ({n} seeds)",
                         x=[float(i) for i in range(1, k + 1)], series=series, bands=bands, logy=True,
                         xlabel="SFN iteration (baselines: same gradient evaluations)"
                         if "evaluations" in title else "iteration", ylabel="training MSE (mean, min-max)"))
    series, bands = {}, {}
    for m in ("sfn", "newton", "gd", "gdm"):
        label = m if m in ("sfn", "newton") else f"{m} (lr {derived[m]['toy_lr'][0]:g})"
        series[label], bands[label] = mean_band(table.series(arm_of(m, "toy"), "toy_depth"))
    k = len(next(iter(series.values())))
    out.append(Curve(title=f"synthetic saddle ({n} seeds)",
                     x=[float(i) for i in range(1, k + 1)], series=series, bands=bands,
                     xlabel="SFN iteration (baselines: same gradient evaluations)",
                     ylabel="depth f(w)/f* (1: minimum, 0: saddle)"))
    return out


EXPERIMENT = Experiment(name="saddle_free_newton", arms=_arms, job=_job, setup=_setup, derive=_derive, curves=_curves)
