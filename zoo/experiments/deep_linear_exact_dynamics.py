"""Saxe et al. (ICLR 2014): simulated deep linear nets follow the exact mode dynamics.

Per seed (the harness's per-seed stage, shared by that seed's arms) we draw a teacher
``Sigma31 = U diag(s) V^T`` with random orthonormal singular vectors and the configured singular
values, whitened inputs ``X`` (``X^T X / n = I``) with targets ``y = Sigma31 x``, and every arm's
initial weights. One harness job trains one arm's linear network on one seed by full-batch gradient
descent on ``1/2 mean ||y - W x||^2`` (a small step approximates gradient flow with ``tau = 1``,
time = steps x lr) and compares its mode strengths ``u_a^T W v_a`` with the theory of its depth:

* ``two_layer_random``: one hidden layer, small i.i.d. Gaussian initial weights; compared with the
  sigmoid ``u(t)`` using each mode's linearised initial strength ``|(W1 v + W2^T u)/2|^2``;
* ``two_layer_decoupled``: one hidden layer, decoupled balanced initial weights of strength ``u0``
  (the exact assumptions of the closed form);
* ``three_layer_decoupled``: two hidden layers, decoupled balanced weights of strength
  ``u0_deep``; compared with the depth-3 mode ODE ``tau du/dt = 3 u^{4/3} (s - u)``.

Every arm of a seed learns the same teacher from the same data with the same step; it trains until
``horizon`` times the analytic time for its slowest mode to reach ``0.99 s``, and its metrics use
that window only. Metrics per arm and seed: the worst mode's R^2 of the simulated strength
trajectory against the theory, the worst relative error of the time to half-learn a mode, and the
log-log slope of that (simulated) time against ``s`` over the modes (theory: about -1, learning
time ~ 1/s). Series: the trajectory (``curve_points`` samples), simulated and analytic half-times.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
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
from zoo.training import TensorData, train
from zoo.training.seed import generator

__all__ = ["EXPERIMENT", "ARMS"]

ARMS = {
    # arm: (number of weight layers, initialisation)
    "two_layer_random": (2, "random"),
    "two_layer_decoupled": (2, "decoupled"),
    "three_layer_decoupled": (3, "decoupled"),
}
DTYPE = torch.float64  # the dynamics start at strengths ~1e-6; double keeps round-off out of them


def _squared_error_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # 1/2 mean_p ||y - W x||^2 (its gradient is the paper's flow with tau = 1/lr).
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
    g = generator(seed)
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



def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str, Any]:
    """The seed's problem, shared by its arms: every arm learns the same teacher from the same data."""
    return _problem(seed, cfg)


def _initial_strength(arm: str, problem: dict[str, Any], cfg: dict[str, Any]) -> torch.Tensor:
    """Per mode, the strength the theory of ``arm`` starts from."""
    depth, init = ARMS[arm]
    if init == "random":
        w1, w2 = problem[arm]
        return effective_initial_strength(w1, w2, problem["U"], problem["V"])
    return torch.full_like(problem["s"], float(cfg["u0" if depth == 2 else "u0_deep"]))


def _theory(t: torch.Tensor, s: torch.Tensor, u0: torch.Tensor, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The analytic trajectory ``(T, modes)`` of a depth-``depth`` net and its half-learning times ``(modes,)``."""
    return mode_strength_deep(t, s, u0, depth), learning_time(s, u0, 0.5 * s, depth=depth)


def _simulate(arm: str, problem: dict[str, Any], cfg: dict[str, Any], seed: int, t_end: float,
              device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Train ``arm``'s net on the seed's problem up to time ``t_end``: times ``(T,)`` and strengths ``(T, modes)``."""
    depth, _ = ARMS[arm]
    lr = float(cfg["lr"])
    steps = math.ceil(t_end / lr)
    U, V = problem["U"].to(device), problem["V"].to(device)
    sizes = [cfg["n_in"]] + [cfg["hidden"]] * (depth - 1) + [cfg["n_out"]]
    model = DeepLinearNet(sizes, copies=1, dtype=DTYPE, device=device)
    model.load_weights([w.unsqueeze(0).to(device) for w in problem[arm]])
    # Dataset layout (sample, copy, feature) with one copy; a full batch is every sample.
    x, y = problem["x"].unsqueeze(1).to(device), problem["y"].unsqueeze(1).to(device)
    data = TensorData(x, y, x, y, num_classes=0, name="whitened_teacher")

    traj = torch.empty(steps + 1, U.shape[-1], dtype=DTYPE, device=device)
    with torch.no_grad():
        traj[0] = mode_strengths(model.end_to_end()[0], U, V)

    def record(epoch: int, _hist: Any) -> None:
        with torch.no_grad():
            traj[epoch] = mode_strengths(model.end_to_end()[0], U, V)

    train(model, data, torch.optim.SGD(model.parameters(), lr=lr), epochs=steps, batch_size=data.n_train,
          generator=generator(seed), loss=_squared_error_loss, eval_every=0, on_epoch=record)
    t = torch.arange(steps + 1, dtype=DTYPE, device=device) * lr
    return t.cpu(), traj.cpu()


def _metrics(t: torch.Tensor, sim: torch.Tensor, theory: torch.Tensor, t_half_theory: torch.Tensor,
             s: torch.Tensor, t_end: float) -> tuple[dict[str, float], torch.Tensor]:
    """Worst-mode R^2 over the window ``t <= t_end``, worst relative half-time error, and the log-log
    slope of the *simulated* half-time against ``s``; also returns the simulated half-times."""
    t_half_sim = first_crossing_time(t, sim, 0.5 * s)  # (modes,)
    window = t <= t_end
    return {
        "r2_min": float(_r_squared(sim[window], theory[window]).min()),
        "half_time_err": float(((t_half_sim - t_half_theory).abs() / t_half_theory).max()),
        "time_slope": _loglog_slope(s, t_half_sim),
    }, t_half_sim


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    """One arm on one seed: its net trained on the seed's problem, against the theory of its depth."""
    depth, _ = ARMS[arm]
    problem = ctx.seed_state
    s = problem["s"]
    u0 = _initial_strength(arm, problem, cfg)
    # The window: `horizon` times the analytic time for the slowest mode to reach 0.99 s.
    t_end = float(learning_time(s, u0, 0.99 * s, depth=depth).max()) * float(cfg["horizon"])
    t, sim = _simulate(arm, problem, cfg, seed, t_end, ctx.device)
    theory, t_half_theory = _theory(t, s, u0, depth)
    metrics, t_half_sim = _metrics(t, sim, theory, t_half_theory, s, t_end)
    # The trajectory at `curve_points` evenly spaced steps, for the plot.
    idx = torch.linspace(0, len(t) - 1, min(int(cfg["curve_points"]), len(t)), dtype=DTYPE).round().long().unique()
    series = {"t": t[idx].tolist(), "s": s.tolist(), "u0": u0.tolist(),
              "half_time_sim": t_half_sim.tolist(), "half_time_theory": t_half_theory.tolist()}
    for i in range(len(s)):
        series[f"sim_{i}"] = sim[idx, i].tolist()
        series[f"theory_{i}"] = theory[idx, i].tolist()
    return JobOutput(metrics=metrics, series=series)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    """Per arm, the first seed's trajectories (sim solid, theory dashed); then half-time vs s, seed means."""
    arms = list(ARMS)
    seed = table.seeds[0]
    curves: list[Curve] = []
    for arm in arms:
        first = {name: table.series(arm, name)[0] for name in ("t", "s")}
        series, style = {}, {}
        for i, sv in enumerate(first["s"]):
            colour = f"C{i % 10}"
            series[f"sim s={sv:.2f}"] = table.series(arm, f"sim_{i}")[0]
            series[f"theory s={sv:.2f}"] = table.series(arm, f"theory_{i}")[0]
            style[f"sim s={sv:.2f}"], style[f"theory s={sv:.2f}"] = f"{colour}-", f"{colour}--"
        curves.append(Curve(
            title=f"{arm}, seed {seed}: u(t) sim vs theory",
            x=first["t"], series=series, xlabel="t / tau", ylabel="u = u_a^T W v_a", style=style,
        ))
    # Half-learning time against s, mean over seeds per mode: simulated (markers) and analytic (line).
    half_series: dict[str, list[float]] = {}
    half_style: dict[str, str] = {}
    for k, arm in enumerate(arms):
        half_series[f"{arm} sim"], _ = mean_band(table.series(arm, "half_time_sim"))
        half_series[f"{arm} theory"], _ = mean_band(table.series(arm, "half_time_theory"))
        half_style[f"{arm} sim"], half_style[f"{arm} theory"] = f"C{k}o", f"C{k}-"
    curves.append(Curve(
        title="time to half-learn vs s (seed mean)",
        x=table.series(arms[0], "s")[0], series=half_series, xlabel="singular value s", ylabel="t_1/2 / tau",
        logx=True, logy=True, style=half_style,
    ))
    return curves


EXPERIMENT = Experiment(name="deep_linear_exact_dynamics", arms=lambda cfg: list(ARMS),
                        per_seed=_per_seed, job=_job, curves=_curves)
