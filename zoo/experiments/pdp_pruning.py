"""PDP vs gradual magnitude pruning vs dense, scaled down to LeNet-300-100 on MNIST-5k.

Every arm trains the same model from the same initialisation (per seed) with the same optimizer,
data order and epochs; the pruned arms share one schedule: dense warm-up, sparsity raised to the
target over ``ramp_epochs``, then training at the final sparsity. At the end the model is
hardened (real zeros) and evaluated, so the accuracy is that of the exported sparse model.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from zoo.experiment import Curve, RunContext, RunResult, seed_values
from zoo.pruning import PDP, GradualMagnitudePruning, PDPSchedule, harden, harden_magnitude
from zoo.pruning.pdp import prunable
from zoo.training import MLP, evaluate, load_dataset, seed_everything, train

# arm -> (method, structure, target sparsity key in cfg or fixed value)
ARMS: dict[str, tuple[str, str, str | float]] = {
    "dense": ("dense", "unstructured", 0.0),
    "gmp_u90": ("gmp", "unstructured", 0.90),
    "pdp_u90": ("pdp", "unstructured", 0.90),
    "gmp_u97": ("gmp", "unstructured", 0.97),
    "pdp_u97": ("pdp", "unstructured", 0.97),
    "gmp_nm14": ("gmp", "1:4", 0.75),
    "pdp_nm14": ("pdp", "1:4", 0.75),
}


def _overall_sparsity(model: torch.nn.Module) -> float:
    ws = [m.weight for _, m in prunable(model)]
    zeros = sum(float((w == 0).sum()) for w in ws)
    return zeros / sum(w.numel() for w in ws)


def _run_arm(arm: str, cfg: dict[str, Any], data: Any, seed: int, device: str, bar: Any) -> tuple[dict[str, float], list[float]]:
    method, structure, target = ARMS[arm]
    gen = seed_everything(seed)
    model = MLP(data.x_train[0].numel(), cfg["hidden"], data.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps_per_epoch = -(-data.n_train // cfg["batch_size"])
    warmup = cfg["warmup_epochs"] * steps_per_epoch
    ramp = cfg["ramp_epochs"] * steps_per_epoch
    hook: Callable[[int, int], Any] | None = None
    if method == "pdp":
        pruner = PDP(model, float(target), structure=structure, tau=cfg["tau"])
        schedule = PDPSchedule(warmup, ramp)
        hook = lambda step, total: pruner.set_progress(schedule(step))  # noqa: E731
    elif method == "gmp":
        gmp = GradualMagnitudePruning(
            model, float(target), begin_step=warmup, end_step=warmup + ramp,
            frequency=max(1, int(cfg["gmp_frequency_epochs"] * steps_per_epoch)), structure=structure,
        )
        hook = gmp.step
    hist = train(model, data, opt, epochs=cfg["epochs"], batch_size=cfg["batch_size"], generator=gen,
                 before_step=hook, eval_every=cfg["eval_every"], bar=bar)
    if method == "pdp":
        harden(model)
    elif method == "gmp":
        harden_magnitude(model)
    acc = evaluate(model, data.x_test, data.y_test)["acc"]
    return {"test_acc": acc, "sparsity": _overall_sparsity(model)}, hist.test_acc


def run(cfg: dict[str, Any], ctx: RunContext) -> RunResult:
    data = load_dataset(cfg["dataset"], ctx.data_dir, ctx.device, flatten=True)
    data = data.subset(cfg.get("n_train"), cfg.get("n_test"))
    arms = list(cfg["arms"])
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose among {list(ARMS)}")
    per_seed: list[dict[str, dict[str, float]]] = []
    curves: dict[str, list[list[float]]] = {a: [] for a in arms}
    bar = ctx.bar(total=len(ctx.seeds) * len(arms) * cfg["epochs"], desc="pdp_pruning")
    for seed in ctx.seeds:
        one: dict[str, dict[str, float]] = {}
        for arm in arms:
            bar.set_postfix_str(f"seed {seed} {arm}")
            one[arm], acc_curve = _run_arm(arm, cfg, data, seed, ctx.device, bar)
            curves[arm].append(acc_curve)
        per_seed.append(one)
    bar.close()
    epochs = list(range(1, cfg["epochs"] + 1))
    mean = {a: [sum(v) / len(v) for v in zip(*c)] for a, c in curves.items()}
    lo = {a: [min(v) for v in zip(*c)] for a, c in curves.items()}
    hi = {a: [max(v) for v in zip(*c)] for a, c in curves.items()}
    plots = [
        Curve(
            title=f"Test accuracy during training (mean, min-max over {len(ctx.seeds)} seeds)",
            x=epochs, series=mean, bands={a: (lo[a], hi[a]) for a in arms},
            xlabel="epoch", ylabel="test accuracy (%)",
        )
    ]
    finals = seed_values(per_seed)
    levels = [90, 97]
    if all(f"{m}_u{lv}" in finals for m in ("gmp", "pdp") for lv in levels) and "dense" in finals:
        avg = lambda a: sum(finals[a]["test_acc"]) / len(ctx.seeds)  # noqa: E731
        plots.append(
            Curve(
                title="Final (hardened) test accuracy vs unstructured sparsity",
                x=levels,
                series={
                    "dense": [avg("dense")] * len(levels),
                    "gmp": [avg(f"gmp_u{lv}") for lv in levels],
                    "pdp": [avg(f"pdp_u{lv}") for lv in levels],
                },
                xlabel="target sparsity (%)", ylabel="test accuracy (%)",
                style={"dense": "k--", "gmp": "s-", "pdp": "o-"},
            )
        )
    return RunResult(metrics=finals, curves=plots)
