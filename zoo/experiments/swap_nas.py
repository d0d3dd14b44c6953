"""SWAP-NAS (Peng et al., ICLR 2024) at small scale: does SWAP-Score rank architectures better than NWOT?

The paper's evidence is Spearman's rank correlation between a training-free score at
initialisation and the trained accuracy of many architectures of a NAS benchmark. Here the
benchmark is a toy one built per seed (:mod:`zoo.nas.space`): ``n_archs`` distinct ReLU MLPs
(depth 1-4, widths 2-128) on digits, each scored at its initialisation on one mini-batch of
``score_batch`` training images and then trained with Adam for ``epochs`` epochs (the same
recipe for all). The per-seed stage builds the pool (so every arm sees the same architectures,
initialisations and accuracies); the job of arm ``p`` reports the Spearman correlation of proxy
``p`` with the test accuracy (``rho``) and with the validation accuracy (``rho_val``).
"""

from __future__ import annotations

from typing import Any

from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table
from zoo.nas.space import evaluate_pool, sample_architectures, spearman
from zoo.training import load_dataset

__all__ = ["EXPERIMENT", "PROXIES"]

PROXIES = ("swap", "nwot", "params", "grad_norm", "snip", "synflow")


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    return load_dataset(str(cfg["dataset"]), env.data_dir, env.device)


def _per_seed(cfg: dict[str, Any], seed: int, env: Env, base: Any, shared: Any) -> dict[str, list[float]]:
    data = base.with_validation(float(cfg["val_fraction"]), seed=int(seed))
    archs = sample_architectures(int(cfg["n_archs"]), seed, tuple(cfg["depths"]), tuple(cfg["widths"]))
    return evaluate_pool(archs, data, data.x_val, data.y_val, proxies=PROXIES, score_batch=int(cfg["score_batch"]),
                         epochs=int(cfg["epochs"]), lr=float(cfg["lr"]), batch_size=int(cfg["batch_size"]), seed=seed)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    pool = ctx.seed_state
    return JobOutput({"rho": spearman(pool[arm], pool["test_acc"]), "rho_val": spearman(pool[arm], pool["val_acc"]),
                      "pool_mean_acc": sum(pool["test_acc"]) / len(pool["test_acc"]),
                      "pool_max_acc": max(pool["test_acc"])})


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    arms = [a for a in PROXIES if a in table]
    xs = [float(i) for i in range(len(arms))]
    import statistics

    return [Curve("Spearman rho with trained test accuracy (mean over seeds)", xs,
                  {"rho": [statistics.fmean(table.metric(a, "rho")) for a in arms]},
                  xlabel="proxy: " + ", ".join(f"{i}={a}" for i, a in enumerate(arms)), ylabel="rho", style={"rho": "o-"})]


EXPERIMENT = Experiment(name="swap_nas", arms=lambda cfg: list(PROXIES), job=_job, setup=_setup,
                        per_seed=_per_seed, curves=_curves)
