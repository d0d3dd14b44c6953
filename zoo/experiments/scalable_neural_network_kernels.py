"""Scalable neural network kernels (Sehanobish et al. 2024): bundled random-feature blocks in place of an MLP's FFLs.

The ``snnk`` method replaces the workload's MLP by ``[Phi(s x)] -> hidden Linear/ReLU layers -> classifier``:
the first feed-forward layer ``f(W x + b)`` (``f = exp`` or ``cos``) and the linear map after it are
bundled into the fixed random-feature tower ``Phi`` and one learned matrix
(:class:`zoo.layers.snnk.BundledSNNK`). Its ``metrics`` also report the point-wise kernel
approximation error of the SNNK estimate of ``f(w^T x + b)`` at several feature counts on the
task's (scaled) test inputs: ``kerr_m<m>`` (relative RMSE over a grid of inputs and random
parameter vectors), and ``trainable`` (trainable parameters). The dense arm is the workload's MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.experiments._compressbench import Method, compressbench, register
from zoo.layers.snnk import RandomFeatures, exact, kernel_estimate

__all__ = ["SNNKMethod", "kernel_errors", "EXPERIMENT"]

KERNEL_MS = (16, 64, 256, 1024)


def kernel_errors(x: torch.Tensor, activation: str, ms: tuple[int, ...], generator: torch.Generator,
                  units: int = 64) -> dict[int, float]:
    """Relative RMSE of the SNNK estimate of ``f(x w^T + b)`` for ``units`` random ``(w, b)``, per feature count."""
    d = x.shape[1]
    w = torch.randn(units, d, generator=generator, dtype=x.dtype) / d ** 0.5
    b = 0.1 * torch.randn(units, generator=generator, dtype=x.dtype)
    ex = exact(x, w, b, activation)
    out = {}
    for m in ms:
        g = torch.randn(m, d, generator=generator, dtype=x.dtype)
        est = kernel_estimate(x, w, b, g, activation)
        out[m] = float(((est - ex) ** 2).mean().sqrt() / (ex ** 2).mean().sqrt())
    return out


@register("snnk")
class SNNKMethod(Method):
    defaults = {"features": 128, "activation": "exp", "input_scale": 0.125, "hidden": [100]}

    def attach(self, model: nn.Module) -> nn.Module:
        d = int(torch.tensor(self.task.input_shape).prod())
        rf = RandomFeatures(d, int(self.opt["features"]), str(self.opt["activation"]), float(self.opt["input_scale"]))
        layers: list[nn.Module] = [rf]
        width = rf.out_features
        for h in self.opt["hidden"]:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, self.task.num_classes))
        self.kernel_seed = int(torch.randint(0, 2**31 - 1, ()))
        return nn.Sequential(*layers).to(self.task.x_train.device)

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        g = torch.Generator().manual_seed(self.kernel_seed)
        x = self.task.x_test[:256].flatten(1).cpu().double() * float(self.opt["input_scale"])
        errs = kernel_errors(x, str(self.opt["activation"]), KERNEL_MS, g)
        out = {f"kerr_m{m}": e for m, e in errs.items()}
        out["kerr_ratio"] = errs[KERNEL_MS[-1]] / errs[KERNEL_MS[0]]
        out["trainable"] = float(sum(p.numel() for p in model.parameters() if p.requires_grad))
        return out


EXPERIMENT = compressbench("scalable_neural_network_kernels")
