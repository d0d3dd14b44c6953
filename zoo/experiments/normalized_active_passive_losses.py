"""Normalized losses and Active Passive Loss (Ma et al., ICML 2020) at small scale: digits with symmetric noise.

The paper's claim: normalising a loss over all labels makes it robust to label noise, robust
losses alone underfit, and *active + passive* pairs (NCE+RCE, NCE+MAE, NFL+RCE) beat CE and the
earlier robust losses (GCE, SCE) by large margins at 60% and 80% symmetric noise (their
MNIST/CIFAR tables).

Built on :mod:`zoo.experiments._classbench` with the arm table of
:mod:`zoo.experiments._noisy_losses`: every job trains one MLP on scikit-learn digits with one
loss, in one noise setting (symmetric, 40/60/80%), from the seed's initial weights and batch
order, under the same Adam optimizer and cosine schedule; arms differ in the loss only. The
arms' hyper-parameters are the authors' MNIST settings, fixed (no arm is tuned): GCE ``q = 0.7``,
SCE ``alpha = 0.01, beta = 1``, APL ``alpha = 1, beta = 10``, NFL ``gamma = 0.5``, RCE ``A = -4``.

Metrics per arm and setting (``<setting>_<metric>``): the harness's final test accuracy, ECE,
peak accuracy and drop, share of corrupted labels memorised; ``test_acc`` / ``test_ece`` without
prefix are the headline setting's (80% noise).
"""

from __future__ import annotations

from typing import Any

from zoo.experiments._classbench import Method, classbench
from zoo.experiments._noisy_losses import headline_derive, loss_methods

__all__ = ["EXPERIMENT"]


def _methods(cfg: dict[str, Any]) -> dict[str, Method]:
    return loss_methods(cfg)


EXPERIMENT = classbench("normalized_active_passive_losses", _methods, extra_derive=headline_derive)
