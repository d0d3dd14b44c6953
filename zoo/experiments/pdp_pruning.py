"""PDP vs gradual magnitude pruning vs dense, scaled down to LeNet-300-100 on MNIST-5k.

Every arm trains the same model from the same initialisation (per seed) with the same optimizer,
data order and epochs; the pruned arms share one schedule: dense warm-up, sparsity raised to the
target over ``ramp_epochs``, then training at the final sparsity. At the end the model is
hardened (real zeros) and evaluated, so the accuracy is that of the exported sparse model.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.pruning import PDP, GradualMagnitudePruning, PDPSchedule, harden, harden_magnitude
from zoo.pruning.pdp import prunable
from zoo.training import MLP, TensorData, evaluate, load_dataset, train
from zoo.training.seed import generator

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


def _setup(cfg: dict[str, Any], env: Env) -> TensorData:
    unknown = [a for a in cfg["arms"] if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose among {list(ARMS)}")
    data = load_dataset(cfg["dataset"], env.data_dir, env.device, flatten=True)
    return data.subset(cfg.get("n_train"), cfg.get("n_test"))


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    """One arm on one seed: the harness has seeded everything, so the initialisation is the seed's."""
    data: TensorData = ctx.setup
    method, structure, target = ARMS[arm]
    model = MLP(data.x_train[0].numel(), cfg["hidden"], data.num_classes).to(ctx.device)
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
    hist = train(model, data, opt, epochs=cfg["epochs"], batch_size=cfg["batch_size"], generator=generator(seed),
                 before_step=hook, eval_every=cfg["eval_every"])
    if method == "pdp":
        harden(model)
    elif method == "gmp":
        harden_magnitude(model)
    acc = evaluate(model, data.x_test, data.y_test)["acc"]
    return JobOutput(metrics={"test_acc": acc, "sparsity": _overall_sparsity(model)}, series={"test_acc": hist.test_acc})


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    arms = list(cfg["arms"])
    n = len(table.seeds)
    series, bands = {}, {}
    for a in arms:
        series[a], bands[a] = mean_band(table.series(a, "test_acc"))
    plots = [
        Curve(
            title=f"Test accuracy during training (mean, min-max over {n} seeds)",
            x=list(range(1, cfg["epochs"] + 1)), series=series, bands=bands,
            xlabel="epoch", ylabel="test accuracy (%)",
        )
    ]
    levels = [90, 97]
    if all(f"{m}_u{lv}" in table for m in ("gmp", "pdp") for lv in levels) and "dense" in table:
        avg = lambda a: sum(table.metric(a, "test_acc")) / n  # noqa: E731
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
    return plots


EXPERIMENT = Experiment(name="pdp_pruning", arms=lambda cfg: list(cfg["arms"]), setup=_setup, job=_job, curves=_curves)
