"""PS-KD: progressive self-knowledge distillation, a soft-target cross-entropy.

Kyungyul Kim, ByeongMoon Ji, Doyoung Yoon, Sangheum Hwang. *Self-Knowledge Distillation with
Progressive Refinement of Targets*. ICCV 2021. https://arxiv.org/abs/2006.12000
(authors' code: https://github.com/lgcnsai/PS-KD-Pytorch).

The model is its own teacher. At epoch ``t`` of ``T`` (1-based) the target of example ``x`` is the
label mixed with the model's own prediction of ``x`` from the previous epoch (the paper's Eq. 4-5)::

    alpha_t     = alpha_T * t / T                                   (linear ramp, alpha_T = 0.8)
    q_t(x)      = (1 - alpha_t) * y + alpha_t * P_{t-1}(x)          (y one-hot)
    L_PS-KD(x)  = H(q_t(x), P_t(x)) = - sum_c q_{t,c}(x) log P_{t,c}(x)

``P_{t-1}(x)`` is a constant (no gradient flows into the teacher). In the first epoch there is no
past prediction and the target is the label (the authors' code stores the one-hot label as
``P_0``). The authors' code records ``P_{t-1}(x)`` when ``x`` is visited: the softmax of the
training-mode forward pass of that mini-batch, before the step; :func:`pskd_alpha` gives
``alpha_t``. The per-example memory belongs to the training loop (see
:mod:`zoo.experiments.progressive_self_knowledge_distillation`); this module is the loss.

Conventions (those of :func:`torch.nn.functional.cross_entropy`, class-index targets): input
``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``, ``teacher`` of the input's shape (probabilities),
``weight`` (per class, applied by the *label's* class as for index targets: ``w[y] * L`` -- not
torch's per-class weighting inside the sum of probability targets), ``ignore_index``,
``label_smoothing`` (smooths the label part, ``y -> (1 - s) y + s / C``, before mixing) and
``reduction``. ``-inf`` logits are safe wherever the target puts no mass on them (a masked class of
the model has ``P_{t-1} = 0`` there too).

Our departures: none in the loss. ``alpha = 0`` (or ``teacher = None``) is cross-entropy.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.losses._base import WeightedLoss, flatten_classes, reduce_loss, safe_xlogy, smooth_targets
from zoo.losses.registry import LossCase

__all__ = ["pskd_alpha", "pskd_targets", "ps_kd_cross_entropy", "PSKDLoss"]


def pskd_alpha(epoch: int, epochs: int, alpha_T: float = 0.8) -> float:
    """``alpha_t = alpha_T * t / T`` for the 1-based epoch ``t`` of ``T`` (the authors' linear ramp)."""
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must be in 1..{epochs}, got {epoch}")
    return float(alpha_T) * epoch / epochs


def pskd_targets(target: Tensor, teacher: Tensor | None, alpha: float | Tensor, num_classes: int,
                 label_smoothing: float = 0.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(1 - alpha) * y + alpha * teacher`` for flat class indices ``target`` (``(M,)``) and ``teacher`` (``(M, C)``)."""
    y = smooth_targets(target, num_classes, label_smoothing, dtype)
    if teacher is None:
        return y
    alpha = torch.as_tensor(alpha, dtype=dtype, device=y.device)
    if alpha.dim() == 1:
        alpha = alpha[:, None]  # one alpha per element
    return (1.0 - alpha) * y + alpha * teacher.detach().to(dtype)


def ps_kd_cross_entropy(input: Tensor, target: Tensor, teacher: Tensor | None = None, alpha: float | Tensor = 0.0,
                        weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
                        label_smoothing: float = 0.0) -> Tensor:
    """PS-KD cross-entropy ``-sum_c [(1 - alpha) y_c + alpha teacher_c] log softmax(input)_c`` (Eq. 5).

    ``teacher`` holds the previous epoch's predicted probabilities (same shape as ``input``; it is
    detached); ``alpha`` is ``alpha_t`` (:func:`pskd_alpha`), a float or one value per element.
    """
    shape = target.shape
    x, t = flatten_classes(input, target)
    c = x.shape[1]
    tp = None
    if teacher is not None:
        tp, _ = flatten_classes(teacher, target)
    valid = t != ignore_index
    safe_t = torch.where(valid, t, torch.zeros_like(t))
    q = pskd_targets(safe_t, tp, alpha, c, label_smoothing, x.dtype)
    per = -safe_xlogy(q, torch.log_softmax(x, dim=1)).sum(1)
    return reduce_loss(per, t, weight, ignore_index, reduction, shape)


class PSKDLoss(WeightedLoss):
    """Module form of :func:`ps_kd_cross_entropy`: ``PSKDLoss()(logits, y, teacher, alpha)``.

    With ``teacher=None`` (or ``alpha=0``) it is cross-entropy; ``alpha`` given at call time
    overrides the constructor's (the ramp changes every epoch).
    """

    def __init__(self, alpha: float = 0.0, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.alpha, self.label_smoothing = float(alpha), float(label_smoothing)

    def forward(self, input: Tensor, target: Tensor, teacher: Tensor | None = None,
                alpha: float | Tensor | None = None) -> Tensor:
        a = self.alpha if alpha is None else alpha
        return ps_kd_cross_entropy(input, target, teacher, a, self.weight, self.ignore_index, self.reduction,
                                   self.label_smoothing)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, label_smoothing={self.label_smoothing}, " + super().extra_repr()


class _WithFixedTeacher(PSKDLoss):
    """For the shared registry tests only: a fixed ``teacher`` of the input's shape.

    Each element's teacher depends on its label only (``1 + (c + 2 y) mod C``, normalised), so
    it does not move under batching or reshaping; it is zero where the logit is ``-inf`` (the
    model's own earlier prediction of a masked class is 0) and renormalised over the rest.
    """

    def forward(self, input: Tensor, target: Tensor, teacher: Tensor | None = None,
                alpha: float | Tensor | None = None) -> Tensor:
        cdim = 0 if input.dim() == 1 else 1
        c = input.shape[cdim]
        shape = [1] * input.dim()
        shape[cdim] = c
        classes = torch.arange(c, device=input.device).reshape(shape)
        raw = (1.0 + (classes + 2 * target.clamp_min(0).unsqueeze(cdim)) % c).to(input.dtype)
        raw = torch.where(torch.isneginf(input.detach()), torch.zeros_like(raw), raw)
        return super().forward(input, target, raw / raw.sum(cdim, keepdim=True), alpha)


def _ps_kd_fixed(input: Tensor, target: Tensor, **kw: object) -> Tensor:
    return _WithFixedTeacher(**kw)(input, target)  # type: ignore[arg-type]


LOSS_CASES = [
    LossCase("ps_kd", _WithFixedTeacher, {"alpha": 0.6}, function=_ps_kd_fixed, label_smoothing=True),
    LossCase("ps_kd_no_teacher", PSKDLoss, {"alpha": 0.6}, label_smoothing=True),
]
