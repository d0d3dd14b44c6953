"""The diffusion family's shared denoisers, trained once per recipe and seed.

``python -m zoo.baselines diffusion --record`` runs this on the harness: one job per
``(recipe, seed)`` trains the recipe of :data:`zoo.experiments._diffbench.RECIPES` named by the arm
and returns its weights (as a series of floats, exact for float32; :func:`artifacts` packs them
into ``denoisers.pt`` and they are left out of ``jobs.json``) together with a headroom check: the
fixed classifier's accuracy on 100 unguided samples per class (DDPM, 100 steps) and on the real test
split, and the per-class Frechet proxy of those samples. The seeds are the entries' evaluation
seeds (0-4), since an entry samples seed k's model for its seed k.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

import torch

from zoo.experiments._diffbench import (
    RECIPES,
    _architecture,
    draw,
    fit_scorer,
    flat_state,
    load_domain,
    sample_noise,
    state_from_flat,
    train_denoiser,
)
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table

__all__ = ["CONFIG", "EXPERIMENT", "OUT_FILE", "QUICK", "STRIP_SERIES", "TUNING_SEEDS", "artifacts", "select"]

TUNING_SEEDS = [0, 1, 2, 3, 4]
CONFIG: dict[str, Any] = {"recipes": sorted(RECIPES), "samples_per_class": 100, "sample_steps": 100}
QUICK: dict[str, Any] = {"recipes": ["gmm"], "samples_per_class": 20, "sample_steps": 10, "epochs": 2}
OUT_FILE = "denoisers.json"
STRIP_SERIES = ("weights",)


def _shared(cfg: dict[str, Any], env: Env, setup: Any) -> dict[str, Any]:
    domains = {RECIPES[r].domain for r in cfg["recipes"]}
    return {d: fit_scorer(load_domain(d, env.data_dir, env.device), env.device) for d in sorted(domains)}


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    recipe = RECIPES[arm]
    if "epochs" in cfg:  # the quick smoke run
        recipe = recipe.replace(epochs=int(cfg["epochs"]))
    domain = load_domain(recipe.domain, ctx.env.data_dir, ctx.device)
    model, losses = train_denoiser(recipe, domain, seed, ctx.device)
    scorer = ctx.shared[recipe.domain]
    x, y = draw(model, recipe, domain, None, int(cfg["samples_per_class"]), sample_noise(seed),
                steps=int(cfg["sample_steps"]))
    m = scorer.score(x, y, reference="test")
    real = scorer.score(*domain.split("test"), reference="test")
    metrics = {"unguided_class_acc": m["class_acc"], "unguided_fd": m["fd"], "unguided_diversity": m["diversity"],
               "real_test_class_acc": real["class_acc"], "headroom": real["class_acc"] - m["class_acc"],
               "final_loss": losses[-1]}
    return JobOutput(metrics=metrics, series={"train_loss": losses, "weights": flat_state(model)})


EXPERIMENT = Experiment(name="_diffusion_models", arms=lambda cfg: list(cfg["recipes"]), shared=_shared, job=_job)


def select(cfg: dict[str, Any], table: Table) -> dict[str, Any]:
    """``{"denoisers": {recipe: {key, recipe, seeds, headroom and loss per seed}}}`` for ``denoisers.json``."""
    out = {}
    for r in cfg["recipes"]:
        rec = RECIPES[r]
        out[r] = {"key": rec.key, "recipe": asdict(rec), "seeds": list(table.seeds),
                  **{k: table.metric(r, k) for k in ("unguided_class_acc", "real_test_class_acc", "headroom",
                                                      "unguided_fd", "final_loss")}}
    return out


def artifacts(cfg: dict[str, Any], records: list[Any], data_dir: Any) -> dict[str, bytes]:
    """``denoisers.pt``: every job's state dict, keyed ``<recipe>/<seed>``."""
    states = {}
    for r in sorted(records, key=lambda r: (r.arm, r.seed)):
        recipe = RECIPES[r.arm]
        model = _architecture(recipe, load_domain(recipe.domain, data_dir, "cpu"))
        states[f"{r.arm}/{r.seed}"] = state_from_flat(model, r.series["weights"])
    buf = io.BytesIO()
    torch.save(states, buf)
    return {"denoisers.pt": buf.getvalue()}
