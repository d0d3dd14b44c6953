"""PolyLoss (Leng et al., ICLR 2022) at small scale: Poly-1 vs cross-entropy on MNIST-1D.

The paper's classification claim: on ImageNet, Poly-1 cross-entropy with a positive leading
perturbation (``epsilon = 2``) beats plain cross-entropy (+0.4 to +0.6 top-1 points), and the
sign of the best ``epsilon`` depends on the task (``-1`` on COCO).

One harness job trains one MLP with one loss ("arm", an ``epsilon`` of the config's arm table) on
one seed. The arms are fair: within a seed every arm starts from the same initialisation (the
harness seeds each job by its seed alone, and the model is the first thing drawn), sees the same
batch order (:func:`~zoo.training.seed.generator` of the seed) and trains with the same optimizer,
budget and schedule: SGD with momentum and weight decay, a cosine learning rate over every step of
``epochs`` epochs. They differ in the loss only: :func:`poly1_cross_entropy` at the arm's
``epsilon``; the cross-entropy arm is Poly-1 at ``epsilon = 0``, which is ``F.cross_entropy`` bit
for bit. Each seed thus gives a paired comparison.

Metrics per arm and seed: final test accuracy, test NLL, and the mean probability of the true
class (``P_t``) on the training and the test set. Series: test accuracy per epoch and the epoch's
mean batch ``P_t`` during training (the plot's two panels, mean and min-max band over seeds).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.losses.polyloss import poly1_cross_entropy
from zoo.training import MLP, TensorData, load_dataset, train
from zoo.training.seed import generator

__all__ = ["EXPERIMENT", "arm_epsilons"]


def arm_epsilons(cfg: dict[str, Any]) -> dict[str, float]:
    """The config's arm table: arm name -> Poly-1 ``epsilon`` (0 is cross-entropy)."""
    return {str(k): float(v) for k, v in cfg["arms"].items()}


@torch.no_grad()
def _measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy (%), mean NLL and mean P_t on ``(x, y)``, in one pass (the sets are small)."""
    was_training = model.training
    model.eval()
    logp_t = model(x).log_softmax(-1)
    model.train(was_training)
    correct = logp_t.argmax(-1) == y
    logp_t = logp_t.gather(-1, y.unsqueeze(-1)).squeeze(-1).double()
    return {
        "acc": 100.0 * float(correct.double().mean()),
        "nll": float(-logp_t.mean()),
        "pt": float(logp_t.exp().mean()),
    }


def _setup(cfg: dict[str, Any], env: Env) -> TensorData:
    return load_dataset(cfg["dataset"], env.data_dir, env.device, flatten=True)


def _job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
    """One loss on one seed; the harness has seeded everything by ``seed``, so the init is the seed's."""
    data: TensorData = ctx.setup
    epsilon = arm_epsilons(cfg)[arm]
    epochs, batch_size = int(cfg["epochs"]), int(cfg["batch_size"])
    steps_per_epoch = math.ceil(data.n_train / batch_size)
    # The first random draw of the job: the same initial weights for every arm of this seed.
    model = MLP(data.input_shape[0], list(cfg["hidden"]), data.num_classes).to(ctx.device)
    opt = torch.optim.SGD(
        model.parameters(), lr=float(cfg["lr"]), momentum=float(cfg["momentum"]),
        weight_decay=float(cfg["weight_decay"]),
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    # The batch-mean P_t summed over the epoch, on the device: the training-confidence curve comes
    # free from the forward passes the loop already makes.
    pt_sum = torch.zeros((), device=ctx.device)
    train_pt: list[float] = []

    def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        nonlocal pt_sum
        logits = m(x)
        with torch.no_grad():
            pt_sum = pt_sum + logits.softmax(-1).gather(-1, y.unsqueeze(-1)).mean()
        return poly1_cross_entropy(logits, y, epsilon=epsilon)

    def on_epoch(epoch: int, hist: Any) -> None:
        nonlocal pt_sum
        train_pt.append(float(pt_sum) / steps_per_epoch)
        pt_sum = torch.zeros_like(pt_sum)

    hist = train(model, data, opt, epochs=epochs, batch_size=batch_size, generator=generator(seed), loss=loss,
                 scheduler=sched, eval_every=1, on_epoch=on_epoch)
    test = _measure(model, data.x_test, data.y_test)
    tr = _measure(model, data.x_train, data.y_train)
    return JobOutput(
        metrics={"test_acc": test["acc"], "test_nll": test["nll"], "test_pt": test["pt"], "train_pt": tr["pt"]},
        series={"test_acc": hist.test_acc, "train_pt": train_pt},
    )


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    """Per epoch, mean and min-max band over seeds: test accuracy and training P_t, one line per arm."""
    eps = arm_epsilons(cfg)
    x = [float(e) for e in range(1, int(cfg["epochs"]) + 1)]
    curves = []
    for name, title, ylabel in (
        ("test_acc", "Test accuracy (mean, min-max over seeds)", "test accuracy (%)"),
        ("train_pt", "Training P_t (true-class probability)", "mean P_t over the epoch's batches"),
    ):
        series, bands = {}, {}
        for a in eps:
            label = f"{a} (eps={eps[a]:g})"
            series[label], bands[label] = mean_band(table.series(a, name))
        curves.append(Curve(title=title, x=x, series=series, bands=bands, xlabel="epoch", ylabel=ylabel))
    return curves


EXPERIMENT = Experiment(name="polyloss", arms=lambda cfg: list(arm_epsilons(cfg)), setup=_setup, job=_job,
                        curves=_curves)
