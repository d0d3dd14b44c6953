"""CFG weight schedulers (Wang et al., 2024): constant vs increasing vs decreasing at matched mean weight.

The paper finds that simple, monotonically increasing guidance-weight schedules (linear, cosine)
improve the fidelity/diversity trade-off of classifier-free guidance over a constant weight (FID vs
CLIP score / IS curves over a sweep of w, Figs. 3-5), while decreasing schedules are worse. We
sample the SHARED denoisers (:func:`zoo.experiments._diffbench.shared_denoiser`, ``digits``: the
30-epoch model with class-consistency headroom; ``gmm``: the 3-Gaussian mixture model) with

* every schedule of ``schedules`` (:mod:`zoo.diffusion.cfg_weight_schedulers`, each of mean 1 over
  the normalised progress, so ``w`` is the mean guidance weight) at every mean weight of
  ``guidance_weights``, plus the unguided conditional model (w = 0, the same for every schedule);
* both a DDPM (ancestral) and a DDIM (eta = 0) sampler of ``steps`` steps (scheduler-agnostic);

and score them with the harness's fixed classifier (``class_acc``, ``diversity``, ``fd`` against
the real test split). Every arm of a seed samples the same model from the same noise
(:func:`~zoo.experiments._diffbench.sample_noise` stream 0) with the same step budget: the schedule
is the only difference. Nothing is tuned (the schedules are parameter-free).

Arms: ``<domain>_<sampler>_unguided``, ``<domain>_<sampler>_<schedule>_w<w>``, ``<domain>_real``,
and the derived ``<domain>_<sampler>_pareto`` whose metric ``fd_gap_<schedule>`` is, per seed, the
schedule's Frechet distance at the class accuracy of each constant-weight point minus the constant
point's (the schedule's curve through its (class_acc, fd) points in order of w, unguided first,
linearly interpolated at the first segment that reaches that accuracy), averaged over the constant
points that curve reaches: negative = the schedule reaches the same class consistency at a lower
Frechet distance, i.e. a better trade-off.
"""

from __future__ import annotations

import math
from typing import Any


from zoo.diffusion.cfg_weight_schedulers import make_schedule
from zoo.diffusion.guidance import CFGGuider
from zoo.experiment import Curve
from zoo.experiments._diffbench import (
    RECIPES,
    draw,
    fit_scorer,
    load_domain,
    sample_noise,
    sample_series,
    shared_denoiser,
)
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table

__all__ = ["EXPERIMENT", "arm_name", "arms", "fd_at_matched_acc", "parse_arm"]

DOMAINS = ("digits", "gmm")
SAMPLERS = ("ddpm", "ddim")


def arm_name(domain: str, sampler: str, schedule: str, w: float) -> str:
    """``digits, ddpm, constant, 0.5`` -> ``digits_ddpm_constant_w0_5``."""
    return f"{domain}_{sampler}_{schedule}_w{w:g}".replace(".", "_")


def _grid(cfg: dict[str, Any]) -> list[tuple[str, str, str | None, float]]:
    out = []
    for d in cfg["domains"]:
        if d not in DOMAINS:
            raise ValueError(f"unknown domain {d!r}; use {list(DOMAINS)}")
        for s in cfg["samplers"]:
            if s not in SAMPLERS:
                raise ValueError(f"unknown sampler {s!r}; use {list(SAMPLERS)}")
            out.append((d, s, None, 0.0))
            for sch in cfg["schedules"]:
                make_schedule(sch)  # validates the name
                for w in cfg["guidance_weights"]:
                    out.append((d, s, sch, float(w)))
    return out


def _name(d: str, s: str, sch: str | None, w: float) -> str:
    return f"{d}_{s}_unguided" if sch is None else arm_name(d, s, sch, w)


def arms(cfg: dict[str, Any]) -> list[str]:
    """Every job's arm (the derived ``_pareto`` arms are not jobs)."""
    return [_name(*g) for g in _grid(cfg)] + [f"{d}_real" for d in cfg["domains"]]


def parse_arm(cfg: dict[str, Any], arm: str) -> tuple[str, str | None, str | None, float]:
    """``arm`` -> ``(domain, sampler, schedule, w)``; sampler None for ``<domain>_real``, schedule None unguided."""
    for d in cfg["domains"]:
        if arm == f"{d}_real":
            return d, None, None, 0.0
    for g in _grid(cfg):
        if arm == _name(*g):
            return g
    raise ValueError(f"unknown arm {arm!r}; the config's arms are {arms(cfg)}")


def _setup(cfg: dict[str, Any], env: Env) -> dict[str, Any]:
    _grid(cfg)
    return {d: load_domain(d, env.data_dir, env.device) for d in cfg["domains"]}




def _shared(cfg: dict[str, Any], env: Env, setup: dict[str, Any]) -> dict[str, Any]:
    """The harness's fixed scorer per domain (a briefly trained stand-in when ``scorer_epochs`` is set: --quick)."""
    return {d: fit_scorer(dom, env.device, epochs=cfg.get("scorer_epochs") or None) for d, dom in setup.items()}


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: dict[str, Any], shared: Any) -> dict[str, Any]:
    return {d: shared_denoiser(d, seed, dom, env.device) for d, dom in setup.items()}


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    d, sampler, sch, w = parse_arm(cfg, arm)
    dom, scorer = ctx.setup[d], ctx.shared[d]
    if sampler is None:
        x, labels = dom.split("test")
        return JobOutput(metrics=scorer.score(x, labels, "test"))
    guider = None if sch is None else CFGGuider(w, make_schedule(sch))
    x, labels = draw(ctx.seed_state[d], RECIPES[d], dom, guider, int(cfg[f"{d}_samples_per_class"]), sample_noise(seed, 0),
                     steps=int(cfg["steps"]), sampler=sampler, eta=0.0)
    series = sample_series(x, labels, 10 if d == "digits" else 100) if seed == 0 else {}
    return JobOutput(metrics=scorer.score(x, labels, "test"), series=series)


def fd_at_matched_acc(curve: list[tuple[float, float]], target_acc: float) -> float:
    """The Frechet distance of a (class_acc, fd) curve (in order of w) where it first reaches ``target_acc``.

    Linear interpolation on the first segment whose accuracies bracket the target; NaN if none does.
    """
    for (a0, f0), (a1, f1) in zip(curve, curve[1:]):
        lo, hi = min(a0, a1), max(a0, a1)
        if lo <= target_acc <= hi:
            if a1 == a0:
                return min(f0, f1)
            return f0 + (f1 - f0) * (target_acc - a0) / (a1 - a0)
    return math.nan


def _derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
    weights = [float(w) for w in cfg["guidance_weights"]]
    out: dict[str, dict[str, list[float]]] = {}
    if "constant" not in cfg["schedules"]:
        return out
    for d in cfg["domains"]:
        for s in cfg["samplers"]:
            base = f"{d}_{s}_unguided"

            def curve(sch: str, i: int) -> list[tuple[float, float]]:
                pts = [(table.metric(base, "class_acc")[i], table.metric(base, "fd")[i])]
                return pts + [(table.metric(arm_name(d, s, sch, w), "class_acc")[i],
                               table.metric(arm_name(d, s, sch, w), "fd")[i]) for w in weights]

            ms: dict[str, list[float]] = {}
            for sch in cfg["schedules"]:
                if sch == "constant":
                    continue
                gaps = []
                for i in range(len(table.seeds)):
                    const, other = curve("constant", i), curve(sch, i)
                    g = [fd_at_matched_acc(other, a) - f for a, f in const[1:]]
                    g = [v for v in g if not math.isnan(v)]
                    gaps.append(sum(g) / len(g) if g else math.nan)
                ms[f"fd_gap_{sch}"] = gaps
            out[f"{d}_{s}_pareto"] = ms
    return out


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    weights = [0.0] + [float(w) for w in cfg["guidance_weights"]]
    n = len(table.seeds)
    curves = []
    for d in cfg["domains"]:
        for s in cfg["samplers"]:
            for metric, ylabel in (("fd", "FD / real class variance"),):
                series, style = {}, {}
                for j, sch in enumerate(cfg["schedules"]):
                    vals = [table.metric(f"{d}_{s}_unguided", metric)] + [
                        table.metric(arm_name(d, s, sch, w), metric) for w in weights[1:]]
                    series[sch] = [sum(v) / len(v) for v in vals]
                    style[sch] = f"C{j}o-"
                curves.append(Curve(f"{d}, {s}: {metric} vs mean guidance weight ({n} seeds)", weights, series,
                                    xlabel="mean guidance weight w", ylabel=ylabel, style=style))
    return curves


EXPERIMENT = Experiment(
    name="cfg_weight_schedulers", arms=arms, setup=_setup, shared=_shared, per_seed=_per_seed, job=_job,
    derive=_derive, curves=_curves,
)
