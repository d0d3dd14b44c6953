"""Neural Parameter Allocation Search (Plummer et al., ICLR 2022): Shapeshifter sharing vs naive sharing at a low budget.

Every arm is the family's :func:`~zoo.experiments._compressbench.compressbench` job. The ``dense``
arm is the workload's LeNet-300-100 unshared. The ``shared`` method replaces it by a
:class:`zoo.layers.parameter_sharing.SharedMLP` of the same widths whose Linear weights are all
generated from one bank of ``budget x N`` trainable scalars (``N`` the dense net's weight count;
biases stay per layer), by the arm's ``mapping``: ``wavg`` (Shapeshifter's learned template
combination), ``repeat`` (the bank tiled layer after layer) or ``hash`` (HashedNets' signed random
index). The dense model the job builds first is discarded, so its init draw is spent the same way
in every arm and every shared arm draws its bank from the same generator state.

What is stored (and measured: ``params``, ``bytes``) is the shared model's state dict: the bank,
the biases and, for ``wavg``, the K coefficients per layer; the hash index and sign are regenerated
from the layer seed and the window offsets are integers of the architecture, so neither is stored.
The network run at inference (``SharedMLP.materialize``) is as large as the dense one: NPAS buys
storage, not MACs.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from zoo.experiments._compressbench import Method, compressbench, register
from zoo.layers.parameter_sharing import SharedMLP

__all__ = ["SharedMethod", "EXPERIMENT"]


@register("shared")
class SharedMethod(Method):
    """The workload's MLP with every weight drawn from one shared bank of ``budget`` x its weight count."""

    defaults = {"mapping": "wavg", "budget": 0.1, "templates": 4}

    def attach(self, model: nn.Module) -> nn.Module:
        hidden = [int(h) for h in (self.cfg.get("model") or {}).get("hidden", [128])]
        features = int(np.prod(self.task.input_shape))
        widths = [features, *hidden, self.task.num_classes]
        weights = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        bank = max(1, int(round(float(self.opt["budget"]) * weights)))
        return SharedMLP(features, hidden, self.task.num_classes, budget=bank, mapping=str(self.opt["mapping"]),
                         templates=int(self.opt["templates"])).to(self.task.x_train.device)

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {"bank": float(model.bank.theta.numel())}


EXPERIMENT = compressbench("neural_parameter_allocation_search")
