"""The shared train/eval loop.

``train`` runs epochs of on-device mini-batches, calls ``before_step(step, total_steps)`` before
each optimizer step (pruning schedules hook in there), and records the mean training loss and,
every ``eval_every`` epochs, test accuracy. Every step is ``optimizer.step(closure)``, the closure
zeroing the gradients, computing the batch loss and back-propagating it: torch's optimizers call
it once (the same arithmetic as calling it before ``step()``), methods that need the loss value
(MoMo) or re-evaluate the gradient (SAM) get what they need, and :attr:`History.grad_evals`
counts the gradient evaluations. ``loss`` defaults to cross-entropy on
``model(x)``; generative models pass their own ``loss(model, x, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.training.data import TensorData

__all__ = ["History", "train", "evaluate", "cross_entropy_loss"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


@dataclass
class History:
    """Per-epoch records of one training run."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    grad_evals: int = 0  # closure calls: forward-backward passes over a mini-batch


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
    """Accuracy (percent) and mean cross-entropy of a classifier on ``(x, y)``."""
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size])
        yb = y[start : start + batch_size]
        correct += int((logits.argmax(1) == yb).sum())
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
    model.train(was_training)
    n = x.shape[0]
    return {"acc": 100.0 * correct / n, "loss": loss_sum / n}


def train(
    model: nn.Module,
    data: TensorData,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    loss: LossFn = cross_entropy_loss,
    before_step: Callable[[int, int], Any] | None = None,
    scheduler: Any | None = None,
    eval_every: int = 1,
    on_epoch: Callable[[int, History], Any] | None = None,
    bar: Any | None = None,
) -> History:
    """Train ``model`` on ``data`` in place and return its :class:`History`.

    ``bar`` (tqdm-like) advances once per epoch. ``scheduler`` steps once per optimizer step.
    The loss is accumulated on the device and read once per epoch, to avoid a host sync per step.
    """
    steps_per_epoch = -(-data.n_train // batch_size)
    total = epochs * steps_per_epoch
    hist = History()
    step = 0
    model.train()
    for epoch in range(1, epochs + 1):
        loss_sum = torch.zeros((), device=data.x_train.device)
        for xb, yb in data.batches(batch_size, generator):
            if before_step is not None:
                before_step(step, total)

            def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                optimizer.zero_grad(set_to_none=True)
                value = loss(model, xb, yb)
                value.backward()
                hist.grad_evals += 1
                return value

            batch_loss = optimizer.step(closure)
            if batch_loss is None:  # an optimizer that ignores the closure never ran it
                raise TypeError(f"{type(optimizer).__name__}.step(closure) must call the closure and return its loss")
            if scheduler is not None:
                scheduler.step()
            loss_sum += batch_loss.detach()
            step += 1
        hist.epoch.append(epoch)
        hist.train_loss.append(float(loss_sum) / steps_per_epoch)
        if eval_every and (epoch % eval_every == 0 or epoch == epochs):
            hist.test_acc.append(evaluate(model, data.x_test, data.y_test)["acc"])
        else:
            hist.test_acc.append(float("nan"))
        if on_epoch is not None:
            on_epoch(epoch, hist)
        if bar is not None:
            bar.update(1)
    return hist
