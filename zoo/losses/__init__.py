"""Classification and auxiliary losses, each in its own module named after its paper's method.

Every loss comes as a functional form (``torch.nn.functional``-style) and an ``nn.Module``.
"""

from zoo.losses.polyloss import (
    Poly1CrossEntropyLoss,
    Poly1FocalLoss,
    Poly1SigmoidFocalLoss,
    PolyNCrossEntropyLoss,
    poly1_cross_entropy,
    poly1_focal_loss,
    poly1_sigmoid_focal_loss,
    poly_n_cross_entropy,
    polynomial_loss,
)

__all__ = [
    "Poly1CrossEntropyLoss",
    "Poly1FocalLoss",
    "Poly1SigmoidFocalLoss",
    "PolyNCrossEntropyLoss",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "poly1_sigmoid_focal_loss",
    "poly_n_cross_entropy",
    "polynomial_loss",
]
