"""Optimizers, each in its own module named after its paper's method (``torch.optim.Optimizer``s).

Every module registers its classes with :mod:`zoo.optim.registry` at import; the contract test
and ``python -m zoo.bench optim`` iterate over that registry.
"""

from zoo.optim.d_adaptation import DAdaptAdaGrad, DAdaptAdam, DAdaptDualAveraging, DAdaptSGD
from zoo.optim.dog import DoG, LDoG, PolynomialDecayAverager
from zoo.optim.gravity import Gravity
from zoo.optim.momo import MoMo, MoMoAdam
from zoo.optim.sam import SAM
from zoo.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD, bn_recalibrate

__all__ = [
    "DAdaptAdaGrad",
    "DAdaptAdam",
    "DAdaptDualAveraging",
    "DAdaptSGD",
    "DoG",
    "Gravity",
    "LDoG",
    "MoMo",
    "MoMoAdam",
    "PolynomialDecayAverager",
    "SAM",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "bn_recalibrate",
]
