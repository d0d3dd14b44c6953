"""Independent condition guidance (ICG) and time-step guidance (TSG) vs classifier-free guidance.

Sadat et al. 2024 (:mod:`zoo.diffusion.independent_condition_guidance`). Per seed, the SHARED
denoisers of :mod:`zoo.experiments._diffbench`: ``<d>`` (trained with label dropout 0.1: it has a
null token, so CFG applies) and ``<d>_cond`` (the same recipe with label dropout 0: no null token;
ICG and TSG are the only guidance it admits), for ``d`` in ``gmm`` and ``digits``.

Arms (``<d>_`` prefixed; ``w`` is CFG's weight, ``eps_c + w (eps_c - eps_u)``):

* ``cfg_w0``: ``<d>`` unguided; ``cfg_w<w>``: CFG with the null token.
* ``cond_w0``: ``<d>_cond`` unguided; ``icg_w<w>``: ICG on ``<d>_cond`` (a fresh uniformly random
  class per sample and step in place of the null token); ``icg_once_w<w>``: one random class per
  sample for the whole trajectory (ablation, digits).
* ``tsg_w<w>``: TSG on ``<d>_cond`` (time embedding perturbed by ``tsg_noise_scale`` N(0, I)).
* ``ddim_*``: the same under deterministic DDIM (eta 0) instead of DDPM ancestral sampling.
* ``real``: the real test split (the ceiling the headroom preconditions measure against).

Every arm of a seed starts from the same initial and per-step noise (``sample_noise(seed, 0)``);
the random classes of ICG and the time-embedding noise of TSG come from a second generator, so
guiders differ only in their method. Metrics: the fixed scorer's ``class_acc``, ``diversity`` and
``fd`` against the real TEST split. TSG's noise scale was chosen on the tuning stream
(``sample_noise(seed, 1)``) against the validation split, seeds 0-2 (s in {0.5, 1, 2, 4}).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from zoo.diffusion.guidance import CFGGuider
from zoo.diffusion.independent_condition_guidance import (
    independent_condition_model_fn,
    time_step_guidance_model_fn,
)
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

__all__ = ["EXPERIMENT", "arm_name", "arms", "parse_arm"]

_ARM = re.compile(r"^(gmm|digits)_(?:(ddim)_)?(cfg|cond|icg|icg_once|tsg)_w([0-9_]+)$")


def _w_tag(w: float) -> str:
    return f"{w:g}".replace(".", "_")


def arm_name(domain: str, method: str, w: float, sampler: str = "ddpm") -> str:
    mid = "ddim_" if sampler == "ddim" else ""
    return f"{domain}_{mid}{method}_w{_w_tag(w)}"


def parse_arm(arm: str) -> tuple[str, str, str, float]:
    """``(domain, sampler, method, w)`` of a sampling arm."""
    m = _ARM.match(arm)
    if m is None:
        raise ValueError(f"unknown arm {arm!r}")
    d, ddim, method, w = m.groups()
    return d, "ddim" if ddim else "ddpm", method, float(w.replace("_", "."))


def arms(cfg: dict[str, Any]) -> list[str]:
    out = []
    for d in cfg["domains"]:
        out += [arm_name(d, "cfg", 0.0), arm_name(d, "cond", 0.0)]
        for w in cfg["weights"]:
            out += [arm_name(d, "cfg", w), arm_name(d, "icg", w)]
        out += [arm_name(d, "tsg", w) for w in cfg["tsg_weights"]]
        if d == "digits":
            out += [arm_name(d, "icg_once", w) for w in cfg["once_weights"]]
            out += [arm_name(d, "cfg", 0.0, "ddim"), arm_name(d, "cond", 0.0, "ddim")]
            out += [arm_name(d, m, w, "ddim") for w in cfg["ddim_weights"] for m in ("cfg", "icg", "tsg")]
        out.append(f"{d}_real")
    return out




def _shared(cfg: dict[str, Any], env: Env, setup: Any) -> dict[str, Any]:
    """The fixed scorer per domain (the quick budget's ``scorer_epochs`` trains a stand-in, smoke runs only)."""
    out = {}
    for d in cfg["domains"]:
        dom = load_domain(d, env.data_dir, env.device)
        out[d] = fit_scorer(dom, env.device, epochs=cfg.get("scorer_epochs"))
    return out


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str, Any]:
    out = {}
    for d in cfg["domains"]:
        dom = load_domain(d, env.data_dir, env.device)
        out[d] = shared_denoiser(d, seed, dom, env.device)
        out[f"{d}_cond"] = shared_denoiser(f"{d}_cond", seed, dom, env.device)
    return out


def method_generator(seed: int) -> torch.Generator:
    """The random source of ICG's classes and TSG's embedding noise (apart from the sampling noise)."""
    return torch.Generator().manual_seed(20_000 + seed)


def sample_arm(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext, stream: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples (classifier space) and labels of a sampling arm on noise stream ``stream``."""
    d, sampler, method, w = parse_arm(arm)
    dom = load_domain(d, ctx.env.data_dir, ctx.device)
    name = d if method == "cfg" else f"{d}_cond"
    model = ctx.seed_state[name]
    recipe = RECIPES[name]
    n = int(cfg[f"{d}_samples_per_class"])
    labels = torch.arange(dom.num_classes, device=ctx.device).repeat_interleave(n)
    kw = {"steps": int(cfg["sample_steps"]), "sampler": sampler, "eta": 0.0}
    guider, model_fn = None, None
    if method != "cond" and w != 0.0:
        guider = CFGGuider(w)
        g = method_generator(seed)
        if method in ("icg", "icg_once"):
            model_fn = independent_condition_model_fn(model, labels, g, "once" if method == "icg_once" else "step")
        elif method == "tsg":
            model_fn = time_step_guidance_model_fn(model, labels, float(cfg["tsg_noise_scale"]), g)
    return draw(model, recipe, dom, guider, n, sample_noise(seed, stream), model_fn=model_fn, **kw)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    d = arm.split("_", 1)[0]
    scorer = ctx.shared[d]
    if arm.endswith("_real"):
        x, labels = load_domain(d, ctx.env.data_dir, ctx.device).split("test")
        return JobOutput(scorer.score(x, labels, reference="test"))
    x, labels = sample_arm(cfg, arm, seed, ctx)
    series = {}
    if seed == 0:
        series.update(sample_series(x, labels, 10 if d == "digits" else 100))
    return JobOutput(scorer.score(x, labels, reference="test"), series)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    weights = [0.0] + [float(w) for w in cfg["weights"]]
    out = []
    for d in cfg["domains"]:
        for metric, label in (("class_acc", "fixed-classifier accuracy (%)"), ("diversity", "per-class spread / real"),
                              ("fd", "per-class FD / class variance")):
            series, bands, style = {}, {}, {}
            for j, (method, base) in enumerate((("cfg", "cfg"), ("icg", "cond"))):
                rows = [table.metric(arm_name(d, base if w == 0 else method, w), metric) for w in weights]
                key = {"cfg": "CFG (null token)", "icg": "ICG (no null token)"}[method]
                series[key] = [sum(v) / len(v) for v in rows]
                bands[key] = ([min(v) for v in rows], [max(v) for v in rows])
                style[key] = f"C{j}o-"
            real = table.metric(f"{d}_real", metric)[0]
            series["real test data"] = [real] * len(weights)
            style["real test data"] = "k--"
            out.append(Curve(f"{d}: {metric} vs guidance weight ({len(table.seeds)} seeds)", weights, series,
                             xlabel="guidance weight w", ylabel=label, bands=bands, style=style))
    return out


EXPERIMENT = Experiment(name="independent_condition_guidance", arms=arms, shared=_shared, per_seed=_per_seed,
                        job=_job, curves=_curves)
