"""Classifier(-free) guidance from a classifier-centric perspective (Zhao & Schwing 2025), on the 2-D mixture.

The paper finds, on low-dimensional mixtures, that classifier guidance (CG) and classifier-free
guidance (CFG) both achieve conditional generation by pushing the denoising trajectories away from
the decision boundary, more so for larger guidance, and proposes a flow-matching post-processing
step that shrinks the gap between a pretrained model's distribution and the data, mostly near the
boundaries. We test both on the harness's ``gmm`` domain (three isotropic unit Gaussians, equal
priors, means on a circle of radius 1.25), whose exact class densities and Bayes decision boundary
(the Voronoi diagram of the means) are known in closed form
(:class:`~zoo.diffusion.analytic.GaussianMixture`):

* ``cfg_w<w>``: the SHARED ``gmm`` denoiser sampled with CFG weight w (Ho & Salimans; w = 0 is the
  conditional model);
* ``cg_s<s>``: the same denoiser's unconditional (null-token) prediction guided by a noise-conditional
  classifier trained per seed (:class:`~zoo.diffusion.classifier_guidance.NoisyClassifier`, through
  :func:`zoo.training.train`) with scale s (s = 1: Bayes' rule, the classifier-implied conditional);
* ``post_cfg_w0`` / ``post_cg_s1``: those arms' samples pushed through the flow-matching post-step,
  a class-conditional flow trained per seed from the model's own unguided samples (tuning noise
  stream 1, never the evaluation noise) to the real training split;
* ``real``: the real test split.

Every sampled arm of a seed uses the same model, noise (stream 0) and DDPM step budget.

Metrics (against the analytic mixture): ``boundary_dist``, the mean signed distance of each sample to
the Bayes decision boundary of its conditioning class (positive inside the class's region; for a
point inside the convex Voronoi cell it is the distance to the cell's nearest facet); ``log_prob``,
the mean exact log p(x | c); ``near_log_prob``, the mean exact log p(x | c) over the samples whose
unprocessed sample lies within ``near`` of the boundary (signed distance < near; the closest one
if none is; for a post arm the
indices of its unprocessed arm, so it is paired sample by sample); ``near_frac``, that fraction;
``bayes_acc``, the fraction (%) the exact posterior assigns to the conditioning class; and the
harness scorer's ``class_acc``, ``diversity``, ``fd``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.diffusion.analytic import GaussianMixture
from zoo.diffusion.classifier_guidance import (
    FlowVelocity,
    NoisyClassifier,
    classifier_guidance_model_fn,
    flow_matching_loss,
    noisy_classifier_loss,
    pair_by_class,
    postprocess,
)
from zoo.diffusion.guidance import CFGGuider
from zoo.experiment import Curve
from zoo.experiments._diffbench import (
    GMM,
    RECIPES,
    Scorer,
    draw,
    fit_scorer,
    load_domain,
    make_scheduler,
    sample_noise,
    sample_series,
    shared_denoiser,
)
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table
from zoo.training import TensorData, seed_everything, train

__all__ = ["EXPERIMENT", "arms", "bayes_boundary_distance", "exact_mixture", "parse_arm"]


def _tag(v: float) -> str:
    return f"{v:g}".replace(".", "_")


def arms(cfg: dict[str, Any]) -> list[str]:
    out = [f"cfg_w{_tag(w)}" for w in cfg["cfg_weights"]] + [f"cg_s{_tag(s)}" for s in cfg["cg_scales"]]
    return out + [f"post_{a}" for a in cfg["post_arms"]] + ["real"]


def parse_arm(cfg: dict[str, Any], arm: str) -> tuple[str, float, bool]:
    """``arm`` -> ``(kind, value, post)``: kind ``cfg`` (value w), ``cg`` (value s) or ``real``."""
    if arm == "real":
        return "real", 0.0, False
    post = arm.startswith("post_")
    base = arm[5:] if post else arm
    if post and base not in cfg["post_arms"]:
        raise ValueError(f"unknown arm {arm!r}; post arms are {cfg['post_arms']}")
    for w in cfg["cfg_weights"]:
        if base == f"cfg_w{_tag(w)}":
            return "cfg", float(w), post
    for s in cfg["cg_scales"]:
        if base == f"cg_s{_tag(s)}":
            return "cg", float(s), post
    raise ValueError(f"unknown arm {arm!r}; the config's arms are {arms(cfg)}")


def exact_mixture() -> GaussianMixture:
    """The ``gmm`` domain's generating mixture: class k ~ N(r (cos 2pi k/K, sin 2pi k/K), std^2 I), equal priors."""
    k = int(GMM["num_classes"])
    ang = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    means = float(GMM["radius"]) * torch.stack([ang.cos(), ang.sin()], 1)
    return GaussianMixture(means, stds=float(GMM["std"]), labels=torch.arange(k))


def bayes_boundary_distance(x: torch.Tensor, c: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Signed distance of each x to the Bayes boundary of class c (equal priors, equal isotropic covariances).

    The Bayes regions are the Voronoi cells of the means; the signed distance to the facet between
    cells c and k is ``(x - (mu_c + mu_k)/2) . (mu_c - mu_k) / |mu_c - mu_k|``, and the signed distance
    to cell c's boundary is the minimum over k != c (exact inside the convex cell, a lower bound on
    minus the distance outside it).
    """
    x = x.double()
    mc = means[c]  # (N, d)
    out = torch.full((x.shape[0],), math.inf, dtype=torch.float64)
    for k in range(means.shape[0]):
        mk = means[k].expand_as(mc)
        diff = mc - mk
        norm = diff.norm(dim=1)
        d = ((x - (mc + mk) / 2) * diff).sum(1) / norm.clamp(min=1e-12)
        d = torch.where(c == k, torch.full_like(d, math.inf), d)
        out = torch.minimum(out, d)
    return out




def _setup(cfg: dict[str, Any], env: Env) -> dict[str, Any]:
    return {"domain": load_domain("gmm", env.data_dir, env.device), "mixture": exact_mixture()}


def _shared(cfg: dict[str, Any], env: Env, setup: dict[str, Any]) -> Scorer:
    return fit_scorer(setup["domain"], env.device, epochs=cfg.get("scorer_epochs") or None)


def _freeze(m: torch.nn.Module) -> torch.nn.Module:
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _sample(cfg: dict[str, Any], kind: str, value: float, model: Any, classifier: Any, dom: Any, spc: int,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    recipe = RECIPES["gmm"]
    steps = int(cfg["steps"])
    if kind == "cfg":
        return draw(model, recipe, dom, CFGGuider(value), spc, generator, steps=steps, sampler="ddpm")
    labels = torch.arange(dom.num_classes).repeat_interleave(spc)
    null = torch.full_like(labels, model.null_class)

    def eps_u(x: torch.Tensor, t: int) -> torch.Tensor:
        return model(x, torch.full((x.shape[0],), t, dtype=torch.long), null)

    abar = make_scheduler(recipe, dom.clip, steps, "ddpm").alphas_cumprod
    fn = classifier_guidance_model_fn(eps_u, classifier, labels, abar)
    # CFGGuider(w) on (eps_u - sqrt(1-abar) grad log p, eps_u) is classifier guidance of scale 1 + w
    return draw(model, recipe, dom, CFGGuider(value - 1.0), spc, generator, steps=steps, sampler="ddpm", model_fn=fn)


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: dict[str, Any], shared: Any) -> dict[str, Any]:
    dom = setup["domain"]
    model = shared_denoiser("gmm", seed, dom, env.device)
    recipe = RECIPES["gmm"]
    sched = make_scheduler(recipe, dom.clip)
    # the noise-conditional classifier of classifier guidance, on the real training split
    g = seed_everything(seed)
    clf = NoisyClassifier(dom.dim, dom.num_classes, recipe.train_timesteps, hidden=int(cfg["clf_hidden"]),
                          depth=int(cfg["clf_depth"])).to(env.device)
    opt = torch.optim.Adam(clf.parameters(), lr=float(cfg["lr"]))
    train(clf, dom.data, opt, epochs=int(cfg["clf_epochs"]), batch_size=int(cfg["batch_size"]), generator=g,
          loss=lambda m, x, y: noisy_classifier_loss(m, sched, x, y), eval_every=0)
    clf = _freeze(clf)
    # the post-step's flow, one per post arm: from that arm's own samples (tuning stream 1) to real data
    flows = {}
    for a in cfg["post_arms"]:
        kind, value, _ = parse_arm(cfg, a)
        xg, yg = _sample(cfg, kind, value, model, clf, dom, int(cfg["flow_samples_per_class"]), sample_noise(seed, 1))
        g = seed_everything(seed)
        x0, x1, y = pair_by_class(xg, yg, dom.data.x_train, dom.data.y_train, g)
        flow = FlowVelocity(dom.dim, dom.num_classes, hidden=int(cfg["flow_hidden"]), depth=int(cfg["flow_depth"]))
        opt = torch.optim.Adam(flow.parameters(), lr=float(cfg["lr"]))
        data = TensorData(torch.cat([x0, x1], 1), y, torch.cat([x0, x1], 1)[:1], y[:1], dom.num_classes, "pairs")
        train(flow, data, opt, epochs=int(cfg["flow_epochs"]), batch_size=int(cfg["batch_size"]), generator=g,
              loss=lambda m, xb, yb: flow_matching_loss(m, xb[:, :dom.dim], xb[:, dom.dim:], yb), eval_every=0)
        flows[a] = _freeze(flow)
    return {"model": model, "classifier": clf, "flows": flows}


def _near_mask(x: torch.Tensor, c: torch.Tensor, means: torch.Tensor, near: float) -> torch.Tensor:
    """Samples within ``near`` of their class's Bayes boundary; the closest one alone if none is (never empty)."""
    d = bayes_boundary_distance(x, c, means)
    mask = d < near
    if not mask.any():
        mask[d.argmin()] = True
    return mask


def _exact_metrics(cfg: dict[str, Any], mix: GaussianMixture, x: torch.Tensor, c: torch.Tensor,
                   near_mask: torch.Tensor) -> dict[str, float]:
    lp = mix.log_prob(x.double(), c)
    dist = bayes_boundary_distance(x, c, mix.means)
    post = torch.stack([mix.log_prob(x.double(), torch.full_like(c, k)) for k in range(mix.means.shape[0])], 1)
    return {
        "boundary_dist": float(dist.mean()),
        "log_prob": float(lp.mean()),
        "near_log_prob": float(lp[near_mask].mean()),
        "near_frac": float(near_mask.double().mean()),
        "bayes_acc": 100.0 * float((post.argmax(1) == c).double().mean()),
    }


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    kind, value, post = parse_arm(cfg, arm)
    dom, mix, scorer = ctx.setup["domain"], ctx.setup["mixture"], ctx.shared
    if kind == "real":
        x, c = dom.split("test")
        near = _near_mask(x, c, mix.means, float(cfg["near"]))
        return JobOutput(metrics={**scorer.score(x, c, "test"), **_exact_metrics(cfg, mix, x, c, near)})
    st = ctx.seed_state
    x, c = _sample(cfg, kind, value, st["model"], st["classifier"], dom, int(cfg["samples_per_class"]), sample_noise(seed, 0))
    near = _near_mask(x, c, mix.means, float(cfg["near"]))
    if post:
        x = postprocess(st["flows"][arm[5:]], x, c, int(cfg["flow_steps"]))
    metrics = {**scorer.score(x, c, "test"), **_exact_metrics(cfg, mix, x, c, near)}
    return JobOutput(metrics=metrics, series=sample_series(x, c, 100) if seed == 0 else {})


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    n = len(table.seeds)
    ws = [float(w) for w in cfg["cfg_weights"]]
    ss = [float(s) for s in cfg["cg_scales"]]
    out = []
    for metric, ylabel in (("boundary_dist", "mean signed distance to the Bayes boundary"),
                           ("log_prob", "mean exact log p(x | c)")):
        cf = [sum(v) / n for v in (table.metric(f"cfg_w{_tag(w)}", metric) for w in ws)]
        cg = [sum(v) / n for v in (table.metric(f"cg_s{_tag(s)}", metric) for s in ss)]
        real = sum(table.metric("real", metric)) / n
        # CFG weight w and classifier-guidance scale s = 1 + w act on the same axis
        xs = sorted(set([1.0 + w for w in ws] + ss))
        series = {"CFG (s = 1 + w)": [cf[ws.index(x - 1.0)] if (x - 1.0) in ws else math.nan for x in xs],
                  "classifier guidance": [cg[ss.index(x)] if x in ss else math.nan for x in xs],
                  "real data": [real] * len(xs)}
        out.append(Curve(f"gmm: {metric} vs guidance ({n} seeds)", xs, series, xlabel="guidance scale s = 1 + w",
                         ylabel=ylabel, style={"CFG (s = 1 + w)": "C0o-", "classifier guidance": "C1s-",
                                               "real data": "k--"}))
    return out


EXPERIMENT = Experiment(
    name="classifier_centric_guidance_study", arms=arms, setup=_setup, shared=_shared, per_seed=_per_seed,
    job=_job, curves=_curves,
)
