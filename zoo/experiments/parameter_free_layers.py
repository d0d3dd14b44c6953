"""Parameter-free layers (Han et al. 2022): depthwise 3x3 convs of a small inverted-residual CNN replaced by max/avg-pool.

Every arm is the family's :func:`~zoo.experiments._compressbench.compressbench` job with the
``pf_net`` method, which builds :class:`zoo.layers.parameter_free.PfNet` for the task with the
arm's ``spatial`` operator (the workload's own model is discarded; every arm draws its init from
the same generator state). Size and MACs are the exported model's (:func:`zoo.compress.measure`):
pools have no parameters and count no MACs.
"""

from __future__ import annotations

from torch import nn

from zoo.experiments._compressbench import Method, compressbench, register
from zoo.layers.parameter_free import PfNet

__all__ = ["PfNetMethod", "EXPERIMENT"]


@register("pf_net")
class PfNetMethod(Method):
    defaults = {"spatial": "dwconv", "width": 16, "blocks": 2, "expansion": 4}

    def attach(self, model: nn.Module) -> nn.Module:
        c = self.task.input_shape[0]
        return PfNet(c, self.task.num_classes, int(self.opt["width"]), int(self.opt["blocks"]),
                     int(self.opt["expansion"]), str(self.opt["spatial"])).to(self.task.x_train.device)


EXPERIMENT = compressbench("parameter_free_layers")
