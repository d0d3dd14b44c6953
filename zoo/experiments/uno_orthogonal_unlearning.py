"""UNO (Mandal & Gottwald, arXiv 2506.04712) at small scale: make a digits VAE forget digit 1.

Per seed, a small MLP VAE (:class:`zoo.unlearning.uno.VAE`) is trained on the whole 8x8 digits training
split (the *original* model). Each unlearning arm then starts from that same VAE and runs the same
number of Adam steps with the same lr, on the same sequence of retain / forget batches (drawn once per
seed from the retain and forget parts of the training split) and the same fixed latent codes for the
classifier term ``U`` (:mod:`zoo.unlearning.uno`):

* ``uno``: Eq. (UNO), the authors' weights (``w_f = 0``, ``lambda_o = 1e5``, ``lambda_u = 1e4``);
* ``surgery``: gradient surgery, the retain gradient with its forget-gradient component removed;
* ``retain``: ``L_r + lambda_u U`` (UNO without the orthogonality term);
* ``finetune``: the retain ELBO alone (plain retain-only fine-tuning);
* ``original``: no unlearning (the reference the quality is compared with).

``U`` uses an *identifier* classifier trained separately (seed 1, its own MLP) so that the evaluation
classifier, the fixed :class:`~zoo.experiments._diffbench.Scorer` of the digits domain, is never
optimised against. Metrics (prior samples ``x = decode(z)``, ``z ~ N(0, I)``):

* ``forget_share``: % of ``n_test`` test-stream samples the Scorer labels as the forget class;
* ``fd_retain``: Frechet distance (Gaussian fits, Scorer penultimate features) between the samples
  labelled as a retained class and the real retained-class test digits; ``fd_rel`` its relative change
  over the original VAE of the same seed (``fd / fd_original - 1``);
* ``retain_min_share``: the smallest retained class's share, x 9 (1: balanced; guards against a
  collapse onto a few classes);
* ``steps_to_forget``: the first step (checked every ``eval_every`` steps on a separate ``n_check``
  stream) at which the forget share is below ``threshold`` %; a run that never gets there counts as
  ``steps + eval_every`` (censored); ``log10_steps`` its log10.

Every arm stops at that step (``stop_at_forget``; the authors read steps and FID at their "stable
stopping point", the first logged step with the forget fraction under a threshold), so the quality
metrics are those of the model at the moment it has forgotten; arms that never forget run all steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.experiment import Curve
from zoo.experiments._diffbench import Scorer, fit_scorer, load_domain, sample_series
from zoo.experiments.classifier_free_guidance import _moments, frechet_distance
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.training import MLP, TensorData, seed_everything, train
from zoo.unlearning.uno import VAE, UnlearnWeights, unlearn_step, vae_loss

__all__ = ["EXPERIMENT", "ARMS", "batch_schedule", "evaluate", "forget_share", "train_vae", "unlearn"]

ARMS = ("original", "uno", "surgery", "retain", "finetune")
IDENTIFIER_SEED = 1


def arms(cfg: dict[str, Any]) -> list[str]:
    return list(ARMS)


def _setup(cfg: dict[str, Any], env: Env) -> dict[str, Any]:
    domain = load_domain("digits", env.data_dir, env.device)
    scorer = fit_scorer(domain, env.device, epochs=cfg.get("scorer_epochs"))
    d = domain.data
    g = seed_everything(IDENTIFIER_SEED)
    ident = MLP(domain.dim, list(cfg["identifier_hidden"]), domain.num_classes).to(env.device)
    train(ident, TensorData(d.x_train, d.y_train, d.x_test, d.y_test, d.num_classes, d.name),
          torch.optim.Adam(ident.parameters(), lr=1e-3), epochs=int(cfg["identifier_epochs"]), batch_size=128,
          generator=g, eval_every=0)
    ident.eval()
    for p in ident.parameters():
        p.requires_grad_(False)
    return {"domain": domain, "scorer": scorer, "identifier": ident}


def train_vae(cfg: dict[str, Any], domain: Any, seed: int, device: str = "cpu") -> VAE:
    """The original VAE of a seed, trained on the whole training split by :func:`zoo.training.train`."""
    d = domain.data
    g = seed_everything(seed)
    vae = VAE(domain.dim, list(cfg["hidden"]), int(cfg["latent"])).to(device)
    eps_g = torch.Generator().manual_seed(50_000 + seed)
    train(vae, TensorData(d.x_train, d.y_train, d.x_test, d.y_test, d.num_classes, d.name),
          torch.optim.Adam(vae.parameters(), lr=float(cfg["vae_lr"])), epochs=int(cfg["vae_epochs"]),
          batch_size=int(cfg["vae_batch_size"]), generator=g,
          loss=lambda m, x, _y: vae_loss(m, x, float(cfg["kl_weight"]), eps_g), eval_every=0)
    vae.eval()
    return vae


def latents(cfg: dict[str, Any], seed: int, latent: int) -> dict[str, torch.Tensor]:
    """Fixed latent codes of a seed: ``unif`` (inside U), ``check`` (steps to forget), ``test`` (reported)."""
    g = torch.Generator().manual_seed(20_000 + seed)
    return {k: torch.randn(int(cfg[f"n_{k}"]), latent, generator=g) for k in ("unif", "check", "test")}


def batch_schedule(cfg: dict[str, Any], domain: Any, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(retain x, forget x, (steps, 2, batch) indices)``: the same batches for every arm of a seed."""
    x, y = domain.split("train")
    fc = int(cfg["forget_class"])
    x_r, x_f = x[y != fc], x[y == fc]
    g = torch.Generator().manual_seed(30_000 + seed)
    b, n = int(cfg["batch_size"]), int(cfg["steps"])
    idx_r = torch.randint(x_r.shape[0], (n, b), generator=g)
    idx_f = torch.randint(x_f.shape[0], (n, b), generator=g)
    return x_r, x_f, torch.stack([idx_r, idx_f], 1)


@torch.no_grad()
def forget_share(vae: VAE, scorer: Scorer, z: torch.Tensor, forget_class: int) -> float:
    """% of the samples ``decode(z)`` that the Scorer classifier labels as ``forget_class``."""
    x = vae.decode(z.to(next(vae.parameters()).device))
    return 100.0 * float((scorer.classifier(x).argmax(1) == forget_class).double().mean())


@torch.no_grad()
def evaluate(vae: VAE, scorer: Scorer, z: torch.Tensor, forget_class: int) -> dict[str, float]:
    """``forget_share`` (%), ``fd_retain`` and ``retain_min_share`` of the samples ``decode(z)``."""
    x = vae.decode(z.to(next(vae.parameters()).device))
    pred = scorer.classifier(x).argmax(1)
    share = 100.0 * float((pred == forget_class).double().mean())
    keep = pred != forget_class
    rx, ry = scorer.domain.split("test")
    f_real = scorer.features(rx[ry != forget_class])
    if int(keep.sum()) >= 2:
        mu_g, cov_g = _moments(scorer.features(x[keep]))
        mu_r, cov_r = _moments(f_real)
        fd = frechet_distance(mu_g, cov_g, mu_r, cov_r)
    else:
        fd = float("nan")
    k = scorer.domain.num_classes
    counts = torch.bincount(pred[keep], minlength=k).double()
    counts = torch.cat([counts[:forget_class], counts[forget_class + 1:]])
    min_share = float(counts.min() / counts.sum().clamp(min=1)) * (k - 1)
    return {"forget_share": share, "fd_retain": fd, "retain_min_share": min_share}


def weights(cfg: dict[str, Any]) -> UnlearnWeights:
    return UnlearnWeights(kl=float(cfg["kl_weight"]), forget=float(cfg["forget_weight"]),
                          orth=float(cfg["orth_weight"]), unif=float(cfg["unif_weight"]))


def unlearn(cfg: dict[str, Any], method: str, vae: VAE, seed: int, setup: dict[str, Any],
            device: str = "cpu") -> tuple[VAE, list[float], int]:
    """Run ``method`` from (a copy of) ``vae``; returns the model, the check-stream forget share per check
    (step 0 first) and the steps to forget (censored at ``steps + eval_every``).

    With ``stop_at_forget`` (default) the run stops at the first check below ``threshold``, as the
    authors' ``find_stable_stopping_point`` does (their steps and FID are read at that point), so the
    returned model is the one at the stopping point; an arm that never gets there runs all ``steps``."""
    domain, scorer, ident = setup["domain"], setup["scorer"], setup["identifier"]
    fc = int(cfg["forget_class"])
    model = VAE(domain.dim, list(cfg["hidden"]), int(cfg["latent"])).to(device)
    model.load_state_dict(vae.state_dict())
    model.train()
    z = latents(cfg, seed, int(cfg["latent"]))
    x_r, x_f, idx = batch_schedule(cfg, domain, seed)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    w = weights(cfg)
    eps_g = torch.Generator().manual_seed(40_000 + seed)
    every, steps = int(cfg["eval_every"]), int(cfg["steps"])
    thr = float(cfg["threshold"])
    stop = bool(cfg.get("stop_at_forget", True))
    curve = [forget_share(model, scorer, z["check"], fc)]
    hit = 0 if curve[0] < thr else steps + every
    for s in range(1, steps + 1):
        if stop and hit <= steps:
            break
        unlearn_step(method, model, opt, x_r[idx[s - 1, 0]], x_f[idx[s - 1, 1]], z["unif"].to(device), ident, fc, w,
                     eps_g, only_conflict=bool(cfg.get("only_conflict", False)))
        if s % every == 0:
            curve.append(forget_share(model, scorer, z["check"], fc))
            if curve[-1] < thr and hit > steps:
                hit = s
    model.eval()
    return model, curve, hit


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str, Any]:
    vae = train_vae(cfg, setup["domain"], seed, env.device)
    z = latents(cfg, seed, int(cfg["latent"]))
    base = evaluate(vae, setup["scorer"], z["test"], int(cfg["forget_class"]))
    return {"vae": vae, "original": base}


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    setup, state = ctx.setup, ctx.seed_state
    fc = int(cfg["forget_class"])
    z = latents(cfg, seed, int(cfg["latent"]))
    if arm == "original":
        model, curve, hit = state["vae"], [], 0
    else:
        model, curve, hit = unlearn(cfg, arm, state["vae"], seed, setup, ctx.device)
    m = evaluate(model, setup["scorer"], z["test"], fc)
    m["fd_rel"] = m["fd_retain"] / state["original"]["fd_retain"] - 1.0
    m["steps_to_forget"] = float(hit)
    m["log10_steps"] = math.log10(max(hit, 1))
    if curve:  # a stopped run keeps its last value (the model stays as it was at the stopping point)
        curve = curve + [curve[-1]] * (int(cfg["steps"]) // int(cfg["eval_every"]) + 1 - len(curve))
    series: dict[str, list[float]] = {"check_share": [round(v, 3) for v in curve]}
    if seed == 0:
        with torch.no_grad():
            x = model.decode(z["test"][:40].to(ctx.device)).cpu()
        series.update(sample_series(x, torch.zeros(40, dtype=torch.long), 40))
    return JobOutput(m, series)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    every, steps = int(cfg["eval_every"]), int(cfg["steps"])
    xs = [float(s) for s in range(0, steps + 1, every)]
    series, bands = {}, {}
    for arm in ARMS[1:]:
        mean, band = mean_band([list(r) for r in table.series(arm, "check_share")])
        series[arm], bands[arm] = mean, band
    return [Curve(title=f"share of digit {cfg['forget_class']} among samples (check stream; held after the stop)", x=xs, series=series,
                  bands=bands, xlabel="unlearning step", ylabel="forget share (%)")]


EXPERIMENT = Experiment(name="uno_orthogonal_unlearning", arms=arms, job=_job, setup=_setup, per_seed=_per_seed,
                        curves=_curves)
