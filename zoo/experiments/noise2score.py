"""Noise2Score (Kim & Ye, 2021) at small scale: self-supervised denoising of 8x8 digits.

The paper trains one AR-DAE score network on noisy images only and denoises them with Tweedie's
formula for the noise model (Gaussian, Poisson, Gamma), and compares it with Noise2Noise (trained
on pairs of independent noisy copies) and a supervised denoiser (clean targets), on BSD68, Set12
and Kodak. Here, per seed and noise model:

* clean images ``x = floor + (1 - 2 floor) * digits`` (pixels in [floor, 1 - floor]: the Gamma
  and Poisson models are degenerate at exactly 0; ``floor`` = 0.1), the digits domain's splits
  (:func:`zoo.experiments._diffbench.load_domain`);
* ONE noisy copy ``y1`` of each training image (the only data Noise2Score sees) and, for
  Noise2Noise alone, a second independent copy ``y2``; held-out noisy val/test images, all drawn from
  generators seeded by the seed and the noise model (the same for every arm);
* arms ``<noise>_noisy`` (no denoising: the floor), ``<noise>_n2s`` (:mod:`zoo.diffusion.noise2score`),
  ``<noise>_n2n`` (``y1 -> y2`` L2, Lehtinen et al. 2018) and ``<noise>_supervised`` (``y1 -> x``
  L2: the ceiling). The three trained arms use the same MLP (:class:`~zoo.diffusion.noise2score.ScoreNet`),
  optimiser, epochs, batch size and data order (seeded by the seed); the baselines' network is
  residual (``y + net(y)``), Noise2Score's outputs the score.

Metric: ``psnr`` (dB, peak 1) per image, averaged over the test split; ``val_psnr`` on the
validation split (the AR-DAE's sigma_a range was chosen on it).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.diffusion.noise2score import ScoreNet, annealed_sigma, ardae_loss, noise_model, psnr
from zoo.experiment import Curve
from zoo.experiments._diffbench import load_domain
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.training import TensorData, seed_everything, train

__all__ = ["EXPERIMENT", "arms", "noisy_splits", "parse_arm", "train_arm", "METHODS"]

METHODS = ("noisy", "n2s", "n2n", "supervised")
NOISES = ("gaussian", "poisson", "gamma")


def arms(cfg: dict[str, Any]) -> list[str]:
    return [f"{n}_{m}" for n in cfg["noises"] for m in METHODS]


def parse_arm(arm: str) -> tuple[str, str]:
    noise, method = arm.split("_", 1)
    if noise not in NOISES or method not in METHODS:
        raise ValueError(f"unknown arm {arm!r}")
    return noise, method


def _setup(cfg: dict[str, Any], env: Env) -> Any:
    return load_domain("digits", env.data_dir, env.device)


def clean(cfg: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    f = float(cfg["floor"])
    return f + (1.0 - 2.0 * f) * x


def noisy_splits(cfg: dict[str, Any], domain: Any, noise: str, seed: int) -> dict[str, torch.Tensor]:
    """Clean and noisy copies of every split for ``(noise, seed)``: the same for every arm."""
    model = noise_model(noise, float(cfg[f"{noise}_param"]))
    g = torch.Generator().manual_seed(1_000 * seed + NOISES.index(noise))
    out: dict[str, torch.Tensor] = {}
    for split in ("train", "val", "test"):
        x = clean(cfg, domain.split(split)[0])
        out[f"x_{split}"] = x
        out[f"y_{split}"] = model.corrupt(x, g)
    out["y2_train"] = model.corrupt(out["x_train"], g)  # Noise2Noise's second, independent copy
    return out


def train_arm(cfg: dict[str, Any], noise: str, method: str, seed: int, data: dict[str, torch.Tensor],
              device: str = "cpu") -> tuple[ScoreNet, int]:
    """Train the ``method`` network of one seed; returns it at its best validation epoch, and that epoch.

    Every method gets the same architecture, optimiser, step budget, data order (seeded by the
    seed) and the same tuning: the weights of the checkpoint (every ``select_every`` epochs) with
    the highest validation PSNR are kept.
    """
    model_ = noise_model(noise, float(cfg[f"{noise}_param"]))
    dim = data["x_train"].shape[1]
    smax = float(cfg["sigma_max_rel"]) * model_.std_scale()
    smin = float(cfg["sigma_min_rel"]) * model_.std_scale()
    g = seed_everything(seed)
    net = ScoreNet(dim, int(cfg["hidden"]), int(cfg["depth"]), sigma_scale=smax, residual=method != "n2s").to(device)
    net.final_sigma = smin  # type: ignore[attr-defined]  # where Noise2Score reads its score
    target = {"n2s": data["y_train"], "n2n": data["y2_train"], "supervised": data["x_train"]}[method]
    td = TensorData(data["y_train"], target, data["y_test"], data["x_test"], 10, "digits")
    opt = torch.optim.Adam(net.parameters(), lr=float(cfg["lr"]))
    epochs, bs = int(cfg["epochs"]), int(cfg["batch_size"])
    total = epochs * math.ceil(td.n_train / bs)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    state: dict[str, Any] = {"sigma": smax, "best": -math.inf, "epoch": 0, "weights": None}

    def before_step(step: int, total_: int) -> None:
        state["sigma"] = annealed_sigma(step, total_, smax, smin, float(cfg["anneal_frac"]))

    def on_epoch(epoch: int, _: Any) -> None:
        if epoch % int(cfg["select_every"]) and epoch != epochs:
            return
        net.eval()
        v = float(psnr(denoise(cfg, noise, method, net, data["y_val"]), data["x_val"]).mean())
        net.train()
        if v > state["best"]:
            state.update(best=v, epoch=epoch, weights={k: t.clone() for k, t in net.state_dict().items()})

    if method == "n2s":
        def loss(m: torch.nn.Module, yb: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
            return ardae_loss(m, yb, state["sigma"])
    else:
        def loss(m: torch.nn.Module, yb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
            return (m(yb, 0.0) - tb).pow(2).mean()

    train(net, td, opt, epochs=epochs, batch_size=bs, generator=g, loss=loss, before_step=before_step,
          scheduler=lr_sched, eval_every=0, on_epoch=on_epoch)
    net.load_state_dict(state["weights"])
    net.eval()
    return net, int(state["epoch"])


@torch.no_grad()
def denoise(cfg: dict[str, Any], noise: str, method: str, net: ScoreNet | None, y: torch.Tensor) -> torch.Tensor:
    """The ``method``'s estimate of the clean images from noisy ``y``, clamped to [0, 1]."""
    if method == "noisy":
        out = y
    elif method == "n2s":
        assert net is not None
        score = net(y, float(net.final_sigma))  # type: ignore[attr-defined]
        out = noise_model(noise, float(cfg[f"{noise}_param"])).tweedie(y, score)
    else:
        assert net is not None
        out = net(y, 0.0)
    return torch.nan_to_num(out, nan=0.5).clamp(0.0, 1.0)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    noise, method = parse_arm(arm)
    data = noisy_splits(cfg, ctx.setup, noise, seed)
    net, epoch = (None, 0) if method == "noisy" else train_arm(cfg, noise, method, seed, data, ctx.device)
    metrics = {"epoch": float(epoch)}
    series: dict[str, list[float]] = {}
    for split, key in (("test", "psnr"), ("val", "val_psnr")):
        xh = denoise(cfg, noise, method, net, data[f"y_{split}"])
        metrics[key] = float(psnr(xh, data[f"x_{split}"]).mean())
        if split == "test" and seed == 0:
            series["denoised"] = [round(v, 4) for v in xh[:10].reshape(-1).tolist()]
    return JobOutput(metrics, series)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    """One panel: test PSNR of each method per noise model (mean, min-max band over seeds)."""
    noises = list(cfg["noises"])
    series, bands = {}, {}
    for method in METHODS:
        rows = [table.metric(f"{n}_{method}", "psnr") for n in noises]  # noise -> seeds
        mean, band = mean_band([list(r) for r in zip(*rows)])
        series[method], bands[method] = mean, band
    return [Curve(title="test PSNR per noise model (" + ", ".join(f"{i}: {n}" for i, n in enumerate(noises)) + ")",
                  x=[float(i) for i in range(len(noises))], series=series, bands=bands,
                  xlabel="noise model", ylabel="PSNR (dB)", style={m: "o-" for m in METHODS})]


EXPERIMENT = Experiment(name="noise2score", arms=arms, job=_job, setup=_setup, curves=_curves)
