"""TFG vs its special cases (DPS, FreeDoM, MPGD, UGD), each tuned with the same search budget.

Ye et al. 2024 (:mod:`zoo.diffusion.training_free_guidance`). The unconditional model is the
SHARED ``digits`` denoiser of :mod:`zoo.experiments._diffbench` queried with its null token; the
target predictor is a SECOND classifier (an MLP of another width, trained on the real training
split with another seed through :func:`zoo.training.train`), never the fixed evaluation classifier
of :func:`~zoo.experiments._diffbench.fit_scorer`, so no method is scored by the model it climbs.

Each method arm runs its own search: every point of its grid (``grid_size`` points for every
method) samples ``tune_samples_per_class`` per class on the TUNING noise stream
(``sample_noise(seed, 1)``) and is scored against the VALIDATION split by the objective
``class_acc - objective_fd_weight * fd``; the best point then samples ``samples_per_class`` per
class on the evaluation stream (``sample_noise(seed, 0)``), scored against the TEST split. The
grids: one strength ``s`` in ``strengths`` for the one-strength methods (DPS, FreeDoM and LGD
(with its implicit-dynamics scale fixed at ``lgd_gamma``): rho = s; MPGD: mu = s; UGD: rho = mu = s,
as UGD ties them), and for TFG the same number of points over
``tfg_strengths`` x ``tfg_gammas`` (rho = mu = s, implicit-dynamics scale gamma). Structural
settings (N_recur, N_iter) are the special cases' of :data:`SPECIAL_CASES`; the sampler is DDPM
ancestral with ``sample_steps`` steps for all. ``tfg_s<s>`` arms sample TFG at fixed strengths
(``plot_strengths``, gamma ``plot_gamma``) on the evaluation stream, untuned, for the family's
fidelity-diversity plots.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.diffusion.training_free_guidance import SPECIAL_CASES, TFGConfig, tfg_sample
from zoo.experiment import Curve
from zoo.experiments._diffbench import (
    RECIPES,
    Domain,
    fit_scorer,
    load_domain,
    make_scheduler,
    sample_noise,
    sample_series,
    shared_denoiser,
)
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table
from zoo.training import MLP, TensorData, seed_everything, train

__all__ = ["EXPERIMENT", "METHODS", "grid", "guidance_classifier"]

METHODS = ("dps", "lgd", "freedom", "mpgd", "ugd", "tfg")
DOMAIN = "digits"


def _tag(s: float) -> str:
    return f"{s:g}".replace(".", "_")


def fixed_arm(s: float) -> str:
    """The arm of TFG at the fixed strength rho = mu = s (gamma ``plot_gamma``; for the family's plots)."""
    return f"tfg_s{_tag(s)}"


def arms(cfg: dict[str, Any]) -> list[str]:
    return ["unguided", *METHODS, *(fixed_arm(s) for s in cfg["plot_strengths"]), "real"]


def grid(cfg: dict[str, Any], method: str) -> list[TFGConfig]:
    """The method's search grid (the same number of points for every method)."""
    base = SPECIAL_CASES[method]
    if method == "tfg":
        pts = [base.with_(rho=s, mu=s, gamma=g) for s in cfg["tfg_strengths"] for g in cfg["tfg_gammas"]]
    elif method == "lgd":
        pts = [base.with_(rho=s, gamma=float(cfg["lgd_gamma"])) for s in cfg["strengths"]]
    else:
        pts = [base.with_(**{k: s for k in ("rho", "mu") if getattr(base, k) > 0}) for s in cfg["strengths"]]
    pts = [p.with_(mc_samples=int(cfg["mc_samples"])) for p in pts]
    if len(pts) != int(cfg["grid_size"]):
        raise ValueError(f"{method}: {len(pts)} grid points, the budget is {cfg['grid_size']}")
    return pts


def guidance_classifier(domain: Domain, cfg: dict[str, Any], device: str) -> torch.nn.Module:
    """The target predictor: an MLP on CLEAN data, unlike (width, seed) the evaluation classifier."""
    d = domain.data
    g = seed_everything(int(cfg["guide_seed"]))
    clf = MLP(domain.dim, list(cfg["guide_hidden"]), domain.num_classes).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    train(clf, TensorData(d.x_train, d.y_train, d.x_test, d.y_test, d.num_classes, d.name), opt,
          epochs=int(cfg["guide_epochs"]), batch_size=128, generator=g, eval_every=0)
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    return clf




def _shared(cfg: dict[str, Any], env: Env, setup: Any) -> dict[str, Any]:
    dom = load_domain(DOMAIN, env.data_dir, env.device)
    scorer = fit_scorer(dom, env.device, epochs=cfg.get("scorer_epochs"))  # scorer_epochs: --quick only
    return {"scorer": scorer, "guide": guidance_classifier(dom, cfg, env.device)}


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str, Any]:
    return {"model": shared_denoiser(DOMAIN, seed, load_domain(DOMAIN, env.data_dir, env.device), env.device)}


def guide_generator(seed: int, stream: int) -> torch.Generator:
    """The MC draws and recurrence noise of a run (apart from the sampler's noise)."""
    return torch.Generator().manual_seed(30_000 + 1_000 * stream + seed)


def sample_method(cfg: dict[str, Any], point: TFGConfig, seed: int, ctx: JobContext, stream: int,
                  per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples (classifier space) of the unconditional model guided to labels 0..9 by ``point``."""
    dom = load_domain(DOMAIN, ctx.env.data_dir, ctx.device)
    model, guide = ctx.seed_state["model"], ctx.shared["guide"]
    labels = torch.arange(dom.num_classes, device=ctx.device).repeat_interleave(per_class)
    null = torch.full_like(labels, model.null_class)

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        return model(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), null)

    def log_prob(x0: torch.Tensor) -> torch.Tensor:  # x0 in diffusion space; the classifier reads pixels
        logits = guide((x0 - dom.shift) / dom.scale)
        return torch.log_softmax(logits, 1).gather(1, labels[:, None])[:, 0]

    sched = make_scheduler(RECIPES[DOMAIN], dom.clip, int(cfg["sample_steps"]), "ddpm")
    gen = sample_noise(seed, stream)
    x = torch.randn(labels.shape[0], dom.dim, generator=gen, device=gen.device).to(ctx.device)
    out = tfg_sample(sched, eps_fn, log_prob, x, point, gen, guide_generator(seed, stream))
    return dom.from_diffusion(out), labels


def _score(cfg: dict[str, Any], scorer: Any, x: torch.Tensor, labels: torch.Tensor, reference: str) -> dict[str, float]:
    m = scorer.score(x, labels, reference=reference)
    m["objective"] = m["class_acc"] - float(cfg["objective_fd_weight"]) * m["fd"]
    return m


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    scorer = ctx.shared["scorer"]
    if arm == "real":
        x, y = load_domain(DOMAIN, ctx.env.data_dir, ctx.device).split("test")
        return JobOutput(_score(cfg, scorer, x, y, "test") | {"selected": -1.0})
    series: dict[str, list[float]] = {}
    if arm == "unguided":
        best, k = TFGConfig(), -1
    elif arm not in METHODS:  # a fixed-strength TFG arm
        s = next(v for v in cfg["plot_strengths"] if fixed_arm(v) == arm)
        best = SPECIAL_CASES["tfg"].with_(rho=s, mu=s, gamma=float(cfg["plot_gamma"]), mc_samples=int(cfg["mc_samples"]))
        k = -1
    else:
        points = grid(cfg, arm)
        tuning = [_score(cfg, scorer, *sample_method(cfg, p, seed, ctx, 1, int(cfg["tune_samples_per_class"])),
                         "val")["objective"] for p in points]
        k = max(range(len(points)), key=lambda i: tuning[i])  # first best on ties
        best = points[k]
        series["tuning_objective"] = tuning
    x, labels = sample_method(cfg, best, seed, ctx, 0, int(cfg["samples_per_class"]))
    if seed == 0:
        series.update(sample_series(x, labels, 10))
    return JobOutput(_score(cfg, scorer, x, labels, "test") | {"selected": float(k)}, series)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    out = []
    for metric in ("objective", "class_acc", "fd", "diversity"):
        means = [sum(v) / len(v) for v in (table.metric(a, metric) for a in METHODS)]
        out.append(Curve(f"{metric} of each method at its tuned setting ({len(table.seeds)} seeds)",
                         [float(i) for i in range(len(METHODS))], {metric: means},
                         xlabel="method: " + ", ".join(METHODS), ylabel=metric, style={metric: "C0o"}))
    plot = [float(v) for v in cfg["plot_strengths"]]
    for metric in ("class_acc", "diversity", "fd"):
        vals = [table.metric(fixed_arm(v), metric) for v in plot]
        out.append(Curve(f"TFG at fixed strength: {metric}", plot, {"tfg": [sum(v) / len(v) for v in vals]},
                         xlabel="rho = mu", ylabel=metric, logx=True,
                         bands={"tfg": ([min(v) for v in vals], [max(v) for v in vals])}, style={"tfg": "C1o-"}))
    for a in METHODS:
        rows = table.series(a, "tuning_objective")
        mean = [sum(r[i] for r in rows) / len(rows) for i in range(len(rows[0]))]
        out.append(Curve(f"{a}: validation objective over its grid", [float(i) for i in range(len(mean))],
                         {"objective (val, stream 1)": mean}, xlabel="grid point", ylabel="class_acc - w fd"))
    return out


EXPERIMENT = Experiment(name="training_free_guidance_tfg", arms=arms, shared=_shared, per_seed=_per_seed, job=_job,
                        curves=_curves)
