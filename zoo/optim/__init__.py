"""Optimizers, each in its own module named after its paper's method (``torch.optim.Optimizer``s)."""

from zoo.optim.d_adaptation import DAdaptAdaGrad, DAdaptAdam, DAdaptDualAveraging, DAdaptSGD
from zoo.optim.dog import DoG, LDoG, PolynomialDecayAverager
from zoo.optim.gravity import Gravity
from zoo.optim.momo import MoMo, MoMoAdam
from zoo.optim.sam import SAM
from zoo.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD, bn_recalibrate

__all__ = ["DAdaptAdaGrad", "DAdaptAdam", "DAdaptDualAveraging", "DAdaptSGD", "Gravity", "DoG", "LDoG", "PolynomialDecayAverager", "MoMo", "MoMoAdam", "SAM", "ScheduleFreeAdamW", "ScheduleFreeSGD", "bn_recalibrate"]
