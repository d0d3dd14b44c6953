"""PolyLoss (Leng et al., ICLR 2022) at small scale: Poly-1 vs cross-entropy on MNIST-1D.

The paper's classification claim: on ImageNet, Poly-1 cross-entropy with a positive leading
perturbation (``epsilon = 2``) beats plain cross-entropy (+0.4 to +0.6 top-1 points), and the
sign of the best ``epsilon`` depends on the task (``-1`` on COCO). Here one MLP per loss ("arm")
is trained on MNIST-1D from the *same* initialisation and the *same* batch order within a seed,
so each seed gives a paired comparison.

The arms train together, vectorised: a batched MLP holds every arm's weights stacked (one
``baddbmm`` per layer), and one :func:`poly1_cross_entropy` call with a per-arm ``epsilon``
tensor gives every arm's loss; the summed loss hands each arm exactly its own gradient since the
parameters are disjoint. The cross-entropy arm is Poly-1 at ``epsilon = 0``, which adds an exact
zero to cross-entropy's value and gradient.

Metrics per arm and seed: final test accuracy, test NLL, and the mean probability of the true
class (``P_t``) on the training and the test set.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from zoo.experiment import Curve, RunContext, RunResult, seed_values
from zoo.losses.polyloss import poly1_cross_entropy
from zoo.training import MLP, History, load_dataset, seed_everything, train

__all__ = ["run"]


class _StackedMLP(nn.Module):
    """``n`` copies of an :class:`~zoo.training.MLP`, evaluated at once; logits ``(n, N, C)``."""

    def __init__(self, base: MLP, n: int) -> None:
        super().__init__()
        linears = [m for m in base if isinstance(m, nn.Linear)]
        # Every copy starts from the base MLP's weights: arms differ only in their loss.
        self.weights = nn.ParameterList(
            nn.Parameter(lin.weight.detach().t().expand(n, -1, -1).clone()) for lin in linears
        )
        self.biases = nn.ParameterList(
            nn.Parameter(lin.bias.detach().expand(n, 1, -1).clone()) for lin in linears
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1).expand(self.weights[0].shape[0], -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = h.relu()
        return h


def _arm_losses(logits: torch.Tensor, y: torch.Tensor, epsilons: torch.Tensor) -> torch.Tensor:
    """Per-arm mean Poly-1 loss, shape ``(arms,)``, from logits ``(arms, N, C)``."""
    # Arms as a trailing "spatial" axis: input (N, C, arms), target (N, arms), epsilon (arms,).
    per = poly1_cross_entropy(
        logits.permute(1, 2, 0), y.unsqueeze(1).expand(-1, logits.shape[0]), epsilon=epsilons, reduction="none"
    )
    return per.mean(0)


@torch.no_grad()
def _measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per arm: accuracy (%), mean NLL and mean P_t on ``(x, y)``."""
    was_training = model.training
    model.eval()
    logits = model(x)  # (A, N, C): the datasets are small enough for one pass
    model.train(was_training)
    logp_t = logits.log_softmax(-1).gather(-1, y.expand(logits.shape[0], -1).unsqueeze(-1)).squeeze(-1)
    return {
        "acc": 100.0 * (logits.argmax(-1) == y).double().mean(-1),
        "nll": -logp_t.double().mean(-1),
        "pt": logp_t.exp().double().mean(-1),
    }


def _summary(per_seed: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Mean, min and max over seeds, per x."""
    cols = list(zip(*per_seed))
    return [sum(c) / len(c) for c in cols], [min(c) for c in cols], [max(c) for c in cols]


def run(cfg: dict[str, Any], ctx: RunContext) -> RunResult:
    arms: dict[str, float] = {str(k): float(v) for k, v in cfg["arms"].items()}
    names = list(arms)
    eps = torch.tensor(list(arms.values()), device=ctx.device)
    data = load_dataset(cfg["dataset"], ctx.data_dir, ctx.device, flatten=True)
    epochs, batch_size = int(cfg["epochs"]), int(cfg["batch_size"])
    steps_per_epoch = math.ceil(data.n_train / batch_size)

    per_seed: list[dict[str, dict[str, float]]] = []
    acc_curves: dict[str, list[list[float]]] = {a: [] for a in names}
    pt_curves: dict[str, list[list[float]]] = {a: [] for a in names}
    bar = ctx.bar(total=epochs * len(ctx.seeds), desc="polyloss")
    for seed in ctx.seeds:
        gen = seed_everything(seed)
        base = MLP(data.input_shape[0], list(cfg["hidden"]), data.num_classes)
        model = _StackedMLP(base, len(names)).to(ctx.device)
        opt = torch.optim.SGD(
            model.parameters(),
            lr=float(cfg["lr"]),
            momentum=float(cfg["momentum"]),
            weight_decay=float(cfg["weight_decay"]),
            foreach=True,
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        # Each arm's batch-mean P_t summed over the epoch, on the device: the training-confidence
        # curve comes free from the forward passes the loop already makes.
        pt_sum = torch.zeros(len(names), device=ctx.device)

        def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            nonlocal pt_sum
            logits = m(x)
            with torch.no_grad():
                p_t = logits.softmax(-1).gather(-1, y.expand(len(names), -1).unsqueeze(-1)).squeeze(-1)
                pt_sum = pt_sum + p_t.mean(-1)
            # Summed over arms, not averaged: each arm's parameters get its own loss's gradient.
            return _arm_losses(logits, y, eps).sum()

        accs: list[list[float]] = []
        pts: list[list[float]] = []

        def on_epoch(epoch: int, hist: History) -> None:
            nonlocal pt_sum
            accs.append(_measure(model, data.x_test, data.y_test)["acc"].tolist())
            pts.append((pt_sum / steps_per_epoch).tolist())
            pt_sum = torch.zeros_like(pt_sum)

        # eval_every=0: the loop's own evaluation expects one logit matrix; on_epoch measures each arm.
        train(
            model, data, opt, epochs=epochs, batch_size=batch_size, generator=gen, loss=loss,
            scheduler=sched, eval_every=0, on_epoch=on_epoch, bar=bar,
        )
        test = _measure(model, data.x_test, data.y_test)
        tr = _measure(model, data.x_train, data.y_train)
        per_seed.append(
            {
                a: {
                    "test_acc": float(test["acc"][i]),
                    "test_nll": float(test["nll"][i]),
                    "test_pt": float(test["pt"][i]),
                    "train_pt": float(tr["pt"][i]),
                }
                for i, a in enumerate(names)
            }
        )
        for i, a in enumerate(names):
            acc_curves[a].append([row[i] for row in accs])
            pt_curves[a].append([row[i] for row in pts])
    bar.close()

    x = [float(e) for e in range(1, epochs + 1)]
    curves = []
    for title, ylabel, per_arm in (
        ("Test accuracy (mean, min-max over seeds)", "test accuracy (%)", acc_curves),
        ("Training P_t (true-class probability)", "mean P_t over the epoch's batches", pt_curves),
    ):
        series, bands = {}, {}
        for a in names:
            label = f"{a} (eps={arms[a]:g})"
            mean, lo, hi = _summary(per_arm[a])
            series[label], bands[label] = mean, (lo, hi)
        curves.append(Curve(title=title, x=x, series=series, bands=bands, xlabel="epoch", ylabel=ylabel))
    return RunResult(metrics=seed_values(per_seed), curves=curves)
