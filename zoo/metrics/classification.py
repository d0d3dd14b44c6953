"""Classification metrics: accuracy, NLL, calibration, F-scores, memorisation and selective risk.

All take logits or probabilities as tensors on any device and return Python floats (or small
lists), computed in float64. Definitions:

* **ECE** (expected calibration error, Guo et al. 2017): predictions binned by confidence
  ``max_c p_c`` into ``bins`` equal-width bins on [0, 1];
  ``ECE = sum_b (n_b / n) |acc_b - conf_b|``, reported in percent points.
* **Macro-F1**: the unweighted mean over classes of ``2 TP / (2 TP + FP + FN)``; a class that
  never occurs and is never predicted is left out of the mean.
* **Memorised-noise share** (Liu et al. 2020's "memorised" fraction): among the training examples
  whose label was corrupted, the share the model predicts as their *noisy* label.
* **Risk-coverage** (Geifman & El-Yaniv 2017): accept the examples whose confidence is highest;
  at coverage ``k/n`` the selective risk is the error rate among the ``k`` accepted. ``AURC``
  is the mean risk over ``k = 1..n``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "accuracy", "nll", "ece", "reliability", "macro_f1", "f_beta_binary", "memorised_share", "risk_coverage",
    "aurc", "coverage_at_risk", "classification_report",
]


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * float((logits.argmax(-1) == y).double().mean())


def nll(logits: Tensor, y: Tensor) -> float:
    """Mean negative log-likelihood (nats) of the labels under ``softmax(logits)``."""
    return float(F.cross_entropy(logits.double(), y))


def _bins(conf: Tensor, bins: int) -> Tensor:
    # bin b holds confidences in (b/B, (b+1)/B]; confidence 0 falls in the first bin
    return (conf * bins).ceil().clamp(1, bins).long() - 1


def reliability(probs: Tensor, y: Tensor, bins: int = 15) -> dict[str, list[float]]:
    """Per-bin mean confidence, accuracy (fractions) and example count: a reliability diagram.

    Empty bins get NaN confidence and accuracy (and count 0).
    """
    probs = probs.double()
    conf, pred = probs.max(-1)
    b = _bins(conf, bins)
    count = torch.bincount(b, minlength=bins).double()
    conf_sum = torch.zeros(bins, dtype=torch.float64, device=probs.device).index_add_(0, b, conf)
    acc_sum = torch.zeros(bins, dtype=torch.float64, device=probs.device).index_add_(0, b, (pred == y).double())
    nan = torch.full_like(count, float("nan"))
    return {
        "confidence": torch.where(count > 0, conf_sum / count.clamp_min(1), nan).tolist(),
        "accuracy": torch.where(count > 0, acc_sum / count.clamp_min(1), nan).tolist(),
        "count": count.tolist(),
    }


def ece(probs: Tensor, y: Tensor, bins: int = 15) -> float:
    """Expected calibration error in percent points, ``bins`` equal-width confidence bins."""
    probs = probs.double()
    conf, pred = probs.max(-1)
    b = _bins(conf, bins)
    gap = torch.zeros(bins, dtype=torch.float64, device=probs.device)
    gap.index_add_(0, b, conf - (pred == y).double())
    return 100.0 * float(gap.abs().sum() / probs.shape[0])


def macro_f1(pred: Tensor, y: Tensor, num_classes: int) -> float:
    """Macro-averaged F1 in percent over the classes that occur or are predicted."""
    idx = y * num_classes + pred
    cm = torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).double()
    tp = cm.diag()
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    denom = 2 * tp + fp + fn
    present = denom > 0
    return 100.0 * float((2 * tp[present] / denom[present]).mean())


def f_beta_binary(pred: Tensor, y: Tensor, beta: float = 1.0, positive: int = 1) -> float:
    """F-beta of the ``positive`` class in percent: ``(1+b^2) TP / ((1+b^2) TP + b^2 FN + FP)``."""
    p, t = pred == positive, y == positive
    tp = float((p & t).sum())
    fp = float((p & ~t).sum())
    fn = float((~p & t).sum())
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return 100.0 * (1 + b2) * tp / denom if denom > 0 else 0.0


def memorised_share(pred: Tensor, y_noisy: Tensor, noisy: Tensor) -> float:
    """Percent of the corrupted training examples (``noisy`` mask) predicted as their noisy label."""
    n = int(noisy.sum())
    if n == 0:
        return float("nan")
    return 100.0 * float((pred[noisy] == y_noisy[noisy]).double().mean())


def risk_coverage(confidence: Tensor, correct: Tensor) -> tuple[list[float], list[float]]:
    """Coverage ``k/n`` and selective risk (error rate among the ``k`` most confident), ``k = 1..n``.

    Ties in confidence are broken by index (a stable sort), so the curve is deterministic.
    """
    order = torch.sort(confidence.double(), descending=True, stable=True).indices
    err = (~correct.bool())[order].double()
    k = torch.arange(1, err.numel() + 1, dtype=torch.float64, device=err.device)
    return (k / err.numel()).tolist(), (err.cumsum(0) / k).tolist()


def aurc(confidence: Tensor, correct: Tensor) -> float:
    """Area under the risk-coverage curve (mean selective risk), in percent."""
    _, risk = risk_coverage(confidence, correct)
    return 100.0 * sum(risk) / len(risk)


def coverage_at_risk(confidence: Tensor, correct: Tensor, risk: float) -> float:
    """The largest coverage (percent) whose selective risk is at most ``risk`` (a fraction)."""
    cov, r = risk_coverage(confidence, correct)
    ok = [c for c, rr in zip(cov, r) if rr <= risk + 1e-12]
    return 100.0 * max(ok) if ok else 0.0


@torch.no_grad()
def classification_report(logits: Tensor, y: Tensor, bins: int = 15) -> dict[str, float]:
    """``acc``, ``nll``, ``ece``, ``f1`` (macro), ``pt`` (mean true-class probability), ``aurc``."""
    logits = logits.double()
    probs = logits.softmax(-1)
    pred = probs.argmax(-1)
    return {
        "acc": accuracy(logits, y),
        "nll": nll(logits, y),
        "ece": ece(probs, y, bins),
        "f1": macro_f1(pred, y, logits.shape[-1]),
        "pt": float(probs.gather(-1, y.unsqueeze(-1)).mean()),
        "aurc": aurc(probs.max(-1).values, pred == y),
    }
