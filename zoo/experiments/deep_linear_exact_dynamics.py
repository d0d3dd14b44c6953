"""Saxe et al. (ICLR 2014): simulated deep linear nets follow the exact mode dynamics.

Per seed we draw a teacher ``Sigma31 = U diag(s) V^T`` with random orthonormal singular vectors and
the configured singular values, and whitened inputs ``X`` (``X^T X / n = I``) with targets
``y = Sigma31 x``. Three arms train a linear network by full-batch gradient descent on
``1/2 mean ||y - W x||^2`` (a small step approximates gradient flow with ``tau = 1``, time = steps x lr):

* ``two_layer_random``: one hidden layer, small i.i.d. Gaussian initial weights; compared with the
  sigmoid ``u(t)`` using each mode's linearised initial strength ``|(W1 v + W2^T u)/2|^2``;
* ``two_layer_decoupled``: one hidden layer, decoupled balanced initial weights of strength ``u0``
  (the exact assumptions of the closed form);
* ``three_layer_decoupled``: two hidden layers, decoupled balanced weights of strength
  ``u0_deep``; compared with the depth-3 mode ODE ``tau du/dt = 3 u^{4/3} (s - u)``.

All seeds of an arm train at once, as independent copies of one :class:`DeepLinearNet`.
Metrics per arm and seed: the worst mode's R^2 of the simulated strength trajectory against the
theory, the worst relative error of the time to half-learn a mode, and the log-log slope of that
time against ``s`` over the modes (theory: about -1, learning time ~ 1/s).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.experiment import Curve, RunContext, RunResult, seed_values
from zoo.theory.deep_linear import (
    DeepLinearNet,
    decoupled_init,
    effective_initial_strength,
    first_crossing_time,
    learning_time,
    mode_strength_deep,
    mode_strengths,
    teacher_correlation,
    whitened_inputs,
)
from zoo.training import TensorData, seed_everything, train

ARMS = {
    # arm: (number of weight layers, initialisation)
    "two_layer_random": (2, "random"),
    "two_layer_decoupled": (2, "decoupled"),
    "three_layer_decoupled": (3, "decoupled"),
}
DTYPE = torch.float64  # the dynamics start at strengths ~1e-6; double keeps round-off out of them


def _squared_error_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # 1/2 mean_p ||y - W x||^2 per copy (its gradient is the paper's flow with tau = 1/lr),
    # summed over copies, which share no parameters.
    return 0.5 * (model(x) - y).pow(2).sum(-1).mean(0).sum()


def _r_squared(sim: torch.Tensor, theory: torch.Tensor) -> torch.Tensor:
    """Per column: 1 - SSE / total sum of squares of the simulation, over the time axis 0."""
    sse = (sim - theory).pow(2).sum(0)
    sst = (sim - sim.mean(0)).pow(2).sum(0)
    return 1.0 - sse / sst


def _loglog_slope(s: torch.Tensor, t: torch.Tensor) -> float:
    """Least-squares slope of ln t against ln s."""
    x, y = s.log(), t.log()
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / x.pow(2).sum())


def _problem(seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Teacher, whitened data and every arm's initial weights for one seed (all drawn on the CPU)."""
    g = seed_everything(seed)
    teacher = teacher_correlation(cfg["singular_values"], cfg["n_out"], cfg["n_in"], g, DTYPE)
    x = whitened_inputs(cfg["n_samples"], cfg["n_in"], g, DTYPE)
    h = cfg["hidden"]
    std = cfg["init_std"]
    return {
        "U": teacher.U,
        "V": teacher.V,
        "s": teacher.s,
        "x": x,
        "y": x @ teacher.sigma31.T,
        "two_layer_random": [std * torch.randn(h, cfg["n_in"], generator=g, dtype=DTYPE),
                             std * torch.randn(cfg["n_out"], h, generator=g, dtype=DTYPE)],
        "two_layer_decoupled": decoupled_init(teacher.U, teacher.V, [h], cfg["u0"], g),
        "three_layer_decoupled": decoupled_init(teacher.U, teacher.V, [h, h], cfg["u0_deep"], g),
    }


def _run_arm(
    arm: str, problems: list[dict[str, Any]], seeds: list[int], cfg: dict[str, Any], ctx: RunContext
) -> dict[str, torch.Tensor]:
    """Train all seeds' copies of one arm at once.

    Returns times ``t`` (T,), simulated and analytic strengths ``sim``, ``theory`` (T, seeds, modes),
    per seed and mode the singular values ``s`` and analytic initial strengths ``u0``, and per seed
    the end ``t_end`` of its evaluation window (all on the CPU).
    """
    depth, init = ARMS[arm]
    dev = ctx.device

    def stack(key: str) -> torch.Tensor:
        return torch.stack([p[key] for p in problems]).to(dev)

    U, V, s = stack("U"), stack("V"), stack("s")  # (C, n_out, m), (C, n_in, m), (C, m)
    init_w = [torch.stack([p[arm][l] for p in problems]).to(dev) for l in range(depth)]
    if init == "random":
        u0 = effective_initial_strength(init_w[0], init_w[1], U, V)
    else:
        u0 = torch.full_like(s, cfg["u0" if depth == 2 else "u0_deep"])

    # Each seed's window: `horizon` times the analytic time for its slowest mode to reach 0.99 s.
    # Its metrics use only its own window, so they do not depend on which other seeds run with it.
    lr = float(cfg["lr"])
    t_end = learning_time(s, u0, 0.99 * s, depth=depth).amax(-1).cpu() * float(cfg["horizon"])
    steps = math.ceil(float(t_end.max()) / lr)

    sizes = [cfg["n_in"]] + [cfg["hidden"]] * (depth - 1) + [cfg["n_out"]]
    model = DeepLinearNet(sizes, copies=len(problems), dtype=DTYPE, device=dev)
    model.load_weights(init_w)
    # Dataset layout (sample, copy, feature): a full batch indexes all samples of every copy.
    x, y = stack("x").transpose(0, 1).contiguous(), stack("y").transpose(0, 1).contiguous()
    data = TensorData(x, y, x, y, num_classes=0, name="whitened_teacher")

    traj = torch.empty(steps + 1, *s.shape, dtype=DTYPE, device=dev)
    with torch.no_grad():
        traj[0] = mode_strengths(model.end_to_end(), U, V)

    def record(epoch: int, _hist: Any) -> None:
        with torch.no_grad():
            traj[epoch] = mode_strengths(model.end_to_end(), U, V)

    bar = ctx.bar(total=steps, desc=arm)
    train(
        model, data, torch.optim.SGD(model.parameters(), lr=lr),
        epochs=steps, batch_size=data.n_train, generator=seed_everything(seeds[0]),
        loss=_squared_error_loss, eval_every=0, on_epoch=record, bar=bar,
    )
    bar.close()

    t = torch.arange(steps + 1, dtype=DTYPE, device=dev) * lr
    theory = torch.stack([mode_strength_deep(t, s[c], u0[c], depth) for c in range(len(problems))], 1)
    return {"t": t.cpu(), "sim": traj.cpu(), "theory": theory.cpu(), "s": s.cpu(), "u0": u0.cpu(), "t_end": t_end}


def _metrics(res: dict[str, torch.Tensor], depth: int) -> list[dict[str, float]]:
    """Per seed: worst-mode R^2, worst relative half-time error, log-log slope of half-time vs s."""
    t, sim, theory, s, u0 = (res[k] for k in ("t", "sim", "theory", "s", "u0"))
    t_half_sim = first_crossing_time(t, sim, 0.5 * s)  # (C, m)
    t_half_th = learning_time(s, u0, 0.5 * s, depth=depth)
    out = []
    for c in range(s.shape[0]):
        window = t <= res["t_end"][c]
        out.append({
            "r2_min": float(_r_squared(sim[window, c], theory[window, c]).min()),
            "half_time_err": float(((t_half_sim[c] - t_half_th[c]).abs() / t_half_th[c]).max()),
            "time_slope": _loglog_slope(s[c], t_half_sim[c]),
        })
    return out


def _trajectory_curve(arm: str, res: dict[str, torch.Tensor], points: int, seed: int) -> Curve:
    """First seed: simulated (solid) and analytic (dashed) strength of every mode over time."""
    idx = torch.linspace(0, len(res["t"]) - 1, min(points, len(res["t"]))).round().long().unique()
    series, style = {}, {}
    for i, sv in enumerate(res["s"][0].tolist()):
        colour = f"C{i % 10}"
        series[f"sim s={sv:.2f}"] = res["sim"][idx, 0, i].tolist()
        series[f"theory s={sv:.2f}"] = res["theory"][idx, 0, i].tolist()
        style[f"sim s={sv:.2f}"], style[f"theory s={sv:.2f}"] = f"{colour}-", f"{colour}--"
    return Curve(
        title=f"{arm}, seed {seed}: u(t) sim vs theory",
        x=res["t"][idx].tolist(), series=series, xlabel="t / tau", ylabel="u = u_a^T W v_a", style=style,
    )


def run(cfg: dict[str, Any], ctx: RunContext) -> RunResult:
    problems = [_problem(seed, cfg) for seed in ctx.seeds]
    per_seed: list[dict[str, dict[str, float]]] = [{} for _ in ctx.seeds]
    curves: list[Curve] = []
    half_x: list[float] = []
    half_series: dict[str, list[float]] = {}
    half_style: dict[str, str] = {}
    for k, (arm, (depth, _)) in enumerate(ARMS.items()):
        res = _run_arm(arm, problems, ctx.seeds, cfg, ctx)
        for c, m in enumerate(_metrics(res, depth)):
            per_seed[c][arm] = m
        curves.append(_trajectory_curve(arm, res, int(cfg["curve_points"]), ctx.seeds[0]))
        # Half-learning time against s, mean over seeds: simulated (markers) and analytic (line).
        half_x = res["s"][0].tolist()
        sim_half = first_crossing_time(res["t"], res["sim"], 0.5 * res["s"]).mean(0)
        th_half = learning_time(res["s"], res["u0"], 0.5 * res["s"], depth=depth).mean(0)
        half_series[f"{arm} sim"], half_style[f"{arm} sim"] = sim_half.tolist(), f"C{k}o"
        half_series[f"{arm} theory"], half_style[f"{arm} theory"] = th_half.tolist(), f"C{k}-"
    curves.append(Curve(
        title="time to half-learn vs s (seed mean)",
        x=half_x, series=half_series, xlabel="singular value s", ylabel="t_1/2 / tau",
        logx=True, logy=True, style=half_style,
    ))
    return RunResult(metrics=seed_values(per_seed), curves=curves)
