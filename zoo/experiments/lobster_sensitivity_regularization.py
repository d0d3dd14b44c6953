"""LOBSTER vs gradual magnitude pruning vs dense on LeNet-300-100 / MNIST-5k (the family harness).

The ``lobster`` method is gradual magnitude pruning on the same cubic schedule plus LOBSTER's
loss-insensitivity shrinkage after every optimizer step (:class:`zoo.pruning.lobster.LOBSTER`), so
at equal sparsity, data, initialisation, epochs and optimizer the two arms differ only by the
regulariser. Every arm trains from scratch (LOBSTER needs no pre-training); accuracy and size are
the exported (hardened, sparse) model's.
"""

from __future__ import annotations

from torch import nn

from zoo.experiments._compress_baselines import GMP
from zoo.experiments._compressbench import METHODS, compressbench, register
from zoo.pruning.lobster import LOBSTER

__all__ = ["LobsterMethod", "EXPERIMENT"]


class LobsterMethod(GMP):
    """GMP's pruning schedule (``target``, ``begin``, ``end``, ``updates``) + LOBSTER shrinkage (``lmbda``, ``rescaled``)."""

    defaults = {**GMP.defaults, "lmbda": 1e-3, "rescaled": True, "shrink_end": 1.0}

    def attach(self, model: nn.Module) -> nn.Module:
        model = super().attach(model)
        self.reg = LOBSTER(model, float(self.opt["lmbda"]), rescaled=bool(self.opt["rescaled"]))
        self._step = 0
        return model

    def before_step(self, model: nn.Module, step: int, total: int) -> None:
        super().before_step(model, step, total)
        self._step, self._total = step, total

    def after_step(self, model: nn.Module) -> None:
        if self._step < float(self.opt["shrink_end"]) * self._total:
            self.reg.step()


if "lobster" not in METHODS:
    register("lobster")(LobsterMethod)

EXPERIMENT = compressbench("lobster_sensitivity_regularization")
