"""DoG and L-DoG: parameter-free SGD step sizes from distance over gradients, with iterate averaging.

Maor Ivgi, Oliver Hinder, Yair Carmon. *DoG is SGD's Best Friend: A Parameter-Free Dynamic Step
Size Schedule*. ICML 2023. https://arxiv.org/abs/2302.12022 (authors' code:
https://github.com/formll/dog, package ``dog-optimizer``; version 1.0.3 is the oracle of our tests).

Written from the paper and from reading the authors' package; no code is copied from it.

Notation (code name: paper symbol):

* ``x0`` (per-parameter state): ``x_0``, the weights at the first step;
* ``group["rbar"]``: ``r̄_t = max(r_ε, max_{i<=t} ||x_i - x_0||)``, the largest distance so far;
* ``group["G"]``: ``G_t = eps + sum_{i<=t} ||g_i||^2``, the accumulated squared gradient norms;
* ``group["eta"]``: ``η_t = lr * r̄_t / sqrt(G_t)``, the step size of the last step;
* ``reps_rel``: ``α`` in ``r_ε = α (1 + ||x_0||)`` (the paper's Section 4 recommendation);
* ``lr``: the paper's ``c`` (keep it at 1; a schedule may multiply it).

DoG (the paper's Algorithm 1) treats every parameter group as one long vector::

    r̄_t = max(r̄_{t-1}, ||x_t - x_0||),   r̄_{-1} = r_ε = α (1 + ||x_0||)
    G_t = G_{t-1} + ||g_t||^2,             G_{-1} = eps
    η_t = lr r̄_t / sqrt(G_t)
    x_{t+1} = x_t - η_t g_t

L-DoG (the paper's layer-wise variant, Section 3.3) applies the same three recursions to every
parameter tensor on its own (norms, distances and ``r_ε`` per tensor). With ``weight_decay = λ``
the gradient is ``g_t = ∇f(x_t) + λ x_t`` before everything above, so ``G_t`` includes the decay
term, as in the authors' package.

DoG needs iterate averaging to reach its best results (it has no step-size decay);
:class:`PolynomialDecayAverager` is the averaging the authors recommend.

Departures from the authors' package (none changes a trajectory with positive ``lr`` and every
parameter receiving a gradient):

* ``p.grad`` is never modified (the package adds ``λ x`` to it in place);
* ``lr = 0`` is allowed (the package rejects ``lr <= 0``): that group's parameters do not move,
  while ``r̄`` and ``G`` still accumulate, so a schedule may set the multiplier to zero;
* parameters without a gradient are skipped (the package fails on them); each group starts at
  its own first step with a gradient (the package starts all groups at the first ``step()``);
* ``r̄_t`` and ``G_t`` are kept as float64 numbers on the host (the package keeps tensors of the
  parameters' dtype), which changes float32 results by rounding only;
* the state lives in ``state_dict`` as plain numbers, so resuming is bit-exact on any device;
* when ``G_t = 0`` (only possible with ``eps = 0`` and zero gradients so far) the step is skipped
  (the package raises).

Each step reads the per-tensor norms back to the host once (one device sync per step and device).
On the CPU, norms of large tensors are taken by BLAS dot products, ``||x - x_0||`` chunk by chunk
without a full-size temporary (rounding only: as accurate as ``torch.norm`` or more), and L-DoG
applies its per-tensor steps in one pass each (``x.add_(g, alpha=-η)``, as the package does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from copy import deepcopy
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

__all__ = ["DoG", "LDoG", "PolynomialDecayAverager"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def _host(tensors: list[Tensor]) -> list[float]:
    """The values of 0-dim tensors as Python floats, with one read per device."""
    out: list[float] = [0.0] * len(tensors)
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    for idx in by_device.values():
        same = len({tensors[i].dtype for i in idx}) == 1  # then no conversion: a float holds each value
        values = torch.stack([tensors[i] if same else tensors[i].to(torch.float64) for i in idx]).tolist()
        for i, v in zip(idx, values):
            out[i] = v
    return out


# Norms of large CPU tensors. ``||g||`` and ``||x_0||``: ``sqrt(g · g)`` by a BLAS dot product (one
# read, accurate accumulation, about twice the speed of ``_foreach_norm``). ``||x - x_0||``: chunk by
# chunk through one buffer that stays in cache, so memory traffic is one read of ``x`` and of
# ``x_0`` with no full-size temporary. Small tensors (and other devices) keep ``_foreach_norm``.
_CHUNK = 1 << 17  # elements
_DOT_DTYPES = (torch.float32, torch.float64)


def _large_cpu(t: Tensor) -> bool:
    return t.device.type == "cpu" and t.numel() > _CHUNK and t.is_contiguous() and t.is_floating_point()


def _norms(tensors: list[Tensor]) -> list[Tensor]:
    """``||t||`` per tensor, as 0-dim tensors on the tensors' devices."""
    out: list[Tensor | None] = [None] * len(tensors)
    rest = []
    for i, t in enumerate(tensors):
        if _large_cpu(t) and t.dtype in _DOT_DTYPES:
            flat = t.view(-1)
            out[i] = torch.dot(flat, flat).sqrt()
        else:
            rest.append(i)
    if rest:
        for i, n in zip(rest, torch._foreach_norm([tensors[i] for i in rest])):
            out[i] = n
    return out  # type: ignore[return-value]


def _distances(params: list[Tensor], x0s: list[Tensor]) -> list[Tensor]:
    """``||x - x_0||`` per tensor, as 0-dim tensors on the tensors' devices."""
    out: list[Tensor | None] = [None] * len(params)
    rest, buffers = [], {}
    for i, (p, x0) in enumerate(zip(params, x0s)):
        if not (_large_cpu(p) and x0.is_contiguous() and x0.dtype == p.dtype):
            rest.append(i)
            continue
        buf = buffers.get(p.dtype)
        if buf is None:
            buf = buffers[p.dtype] = torch.empty(_CHUNK, dtype=p.dtype)
        dot = p.dtype in _DOT_DTYPES  # else (half precision) each chunk's norm is taken in float32
        parts = []
        for a, b in zip(p.view(-1).split(_CHUNK), x0.view(-1).split(_CHUNK)):
            d = buf[: a.numel()]
            torch.sub(a, b, out=d)
            parts.append(torch.dot(d, d) if dot else torch.linalg.vector_norm(d, dtype=torch.float32).square())
        out[i] = torch.stack(parts).sum().sqrt()  # sqrt of the sum of the chunks' sums of squares
    if rest:
        diffs = torch._foreach_sub([params[i] for i in rest], [x0s[i] for i in rest])
        for i, n in zip(rest, torch._foreach_norm(diffs)):
            out[i] = n
    return out  # type: ignore[return-value]


class DoG(Optimizer):
    r"""DoG (Distance over Gradients): SGD whose step size needs no tuning.

    Every parameter group is treated as one vector ``x`` (paper, Algorithm 1):

    $$
    \bar r_t = \max\bigl(r_\epsilon,\ \max_{i\le t}\|x_i - x_0\|\bigr),\qquad
    G_t = \epsilon + \sum_{i\le t}\|g_i\|^2,\qquad
    \eta_t = c\,\frac{\bar r_t}{\sqrt{G_t}},\qquad
    x_{t+1} = x_t - \eta_t\, g_t,
    $$

    with $r_\epsilon = \alpha\,(1 + \|x_0\|)$, $\alpha$ = ``reps_rel``, $c$ = ``lr`` and, with weight
    decay $\lambda$, $g_t = \nabla f(x_t) + \lambda x_t$. Combine it with iterate averaging
    (:class:`PolynomialDecayAverager`): DoG has no step-size decay of its own.

    **Logging the step size.** After each step, every group holds ``group["eta"]`` ($\eta_t$ of
    that step), ``group["rbar"]`` ($\bar r_t$), ``group["G"]`` ($G_t$) and ``group["step"]`` (steps
    taken), as Python floats (:class:`LDoG`: lists aligned with ``group["params"]``);
    :meth:`step_sizes` collects them.

    Args:
        params: parameters, or dicts defining parameter groups (each group is one DoG vector).
        reps_rel: $\alpha$, the relative initial movement: $r_\epsilon = \alpha(1 + \|x_0\|)$. The
            authors suggest 1e-6, or 1e-4 for models with batch normalization.
        lr: the multiplier $c$ of the step size; keep 1.0 (a schedule may multiply it; 0 freezes).
        weight_decay: $\lambda$, added to the gradient as $\lambda x_t$ (L2 penalty).
        eps: $\epsilon$, added once to the sum of squared gradient norms.
        init_eta: when given, the first step size $\eta_0$, in place of $r_\epsilon/\sqrt{G_0}$;
            then $r_\epsilon = 0$ (as in the authors' package).

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = DoG(model.parameters())
        >>> model(torch.ones(2, 3)).pow(2).mean().backward()
        >>> opt.step()
        >>> first_group = opt.step_sizes()[0]
        >>> first_group["eta"] > 0
        True

    References:
        Ivgi, Hinder, Carmon. DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
        Schedule. ICML 2023. https://arxiv.org/abs/2302.12022
    """

    _layerwise = False

    def __init__(
        self,
        params: Params,
        reps_rel: float = 1e-6,
        lr: float = 1.0,
        weight_decay: float = 0.0,
        eps: float = 1e-8,
        init_eta: float | None = None,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"lr must be >= 0 (1.0 is recommended), got {lr}")
        if init_eta is not None:
            if not init_eta > 0.0:
                raise ValueError(f"init_eta must be > 0, got {init_eta}")
            reps_rel = 0.0  # the first step is init_eta; r̄ then starts from the distance moved
        elif not reps_rel > 0.0:
            raise ValueError(f"reps_rel must be > 0 (1e-6, or 1e-4 with batch norm), got {reps_rel}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if not eps >= 0.0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        defaults = dict(reps_rel=reps_rel, lr=lr, weight_decay=weight_decay, eps=eps, init_eta=init_eta)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its DoG state starts at its own first step with a gradient."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault("step", 0)
        n = len(group["params"])
        for key in ("eta", "rbar", "G"):
            group.setdefault(key, [0.0] * n if self._layerwise else 0.0)

    def step_sizes(self) -> list[dict[str, Any]]:
        """Per group: ``eta`` (last step size), ``rbar``, ``G`` and ``step``, ready to log."""
        return [{k: deepcopy(g[k]) for k in ("eta", "rbar", "G", "step")} for g in self.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One DoG step; ``closure`` (optional) re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        # Gather, for every group with a gradient, the tensors whose norms the update needs, and
        # read all those norms back to the host at once.
        work, norms = [], []
        for group in self.param_groups:
            idx = [i for i, p in enumerate(group["params"]) if p.grad is not None]
            if not idx:
                continue
            params = [group["params"][i] for i in idx]
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError("DoG does not support sparse gradients")
            if group["weight_decay"] > 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])  # g + λ x
            first = group["step"] == 0
            if first:
                for p in group["params"]:
                    self.state[p]["x0"] = p.detach().clone()
                dist = _norms(group["params"])  # ||x_0|| per tensor, for r_ε
            else:
                x0s = [self.state[p]["x0"] for p in params]
                dist = _distances(params, x0s)  # ||x_t - x_0|| per tensor
            gnorm = _norms(grads)
            work.append((group, idx, params, grads, first, len(norms), len(dist)))
            norms += dist + gnorm
        if not work:
            return loss
        values = _host(norms)

        for group, idx, params, grads, first, start, n_dist in work:
            dist, gnorm = values[start : start + n_dist], values[start + n_dist : start + n_dist + len(idx)]
            etas = self._update_group(group, idx, dist, gnorm, first)
            group["step"] += 1
            if group["lr"] == 0.0:
                continue
            if isinstance(etas, float):
                if etas != 0.0:
                    torch._foreach_add_(params, grads, alpha=-etas)  # x_{t+1} = x_t - η_t g_t
            else:  # one pass per tensor; a foreach multiply would first write a scaled copy of g
                for p, g, e in zip(params, grads, etas):
                    if e != 0.0:
                        p.add_(g, alpha=-e)  # x_{t+1} = x_t - η_t g_t per tensor
        return loss

    def _update_group(self, group: dict[str, Any], idx: list[int], dist: list[float], gnorm: list[float],
                      first: bool) -> float | list[float]:
        """Update ``rbar``, ``G`` and ``eta`` of a DoG group (one vector); return η_t."""
        if first:
            rbar = group["reps_rel"] * (1.0 + math.sqrt(sum(d * d for d in dist)))  # r_ε = α (1 + ||x_0||)
            g_sum = group["eps"]
        else:
            rbar = max(group["rbar"], math.sqrt(sum(d * d for d in dist)))  # r̄_t = max(r̄_{t-1}, ||x_t - x_0||)
            g_sum = group["G"]
        g_sum += sum(g * g for g in gnorm)  # G_t = G_{t-1} + ||g_t||^2
        eta = group["lr"] * rbar / math.sqrt(g_sum) if g_sum > 0 else 0.0  # η_t = c r̄_t / sqrt(G_t)
        if first and group["init_eta"] is not None:
            eta = float(group["init_eta"])
        group.update(rbar=rbar, G=g_sum, eta=eta)
        return eta


class LDoG(DoG):
    r"""L-DoG: DoG applied to every parameter tensor (layer) on its own.

    For each tensor $k$ of a group, with its own $x^{(k)}$ and gradient $g^{(k)}$ (paper,
    Section 3.3):

    $$
    \bar r^{(k)}_t = \max\bigl(r^{(k)}_\epsilon,\ \max_{i\le t}\|x^{(k)}_i - x^{(k)}_0\|\bigr),\quad
    G^{(k)}_t = \epsilon + \sum_{i\le t}\|g^{(k)}_i\|^2,\quad
    \eta^{(k)}_t = c\,\frac{\bar r^{(k)}_t}{\sqrt{G^{(k)}_t}},\quad
    x^{(k)}_{t+1} = x^{(k)}_t - \eta^{(k)}_t g^{(k)}_t,
    $$

    with $r^{(k)}_\epsilon = \alpha(1 + \|x^{(k)}_0\|)$. The arguments are those of :class:`DoG`;
    ``group["eta"]``, ``group["rbar"]`` and ``group["G"]`` are lists aligned with
    ``group["params"]`` (a tensor that never had a gradient keeps its initial entries).

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = LDoG(model.parameters())
        >>> model(torch.ones(2, 3)).pow(2).mean().backward()
        >>> opt.step()
        >>> first_group = opt.step_sizes()[0]
        >>> len(first_group["eta"])
        2
    """

    _layerwise = True

    def _update_group(self, group: dict[str, Any], idx: list[int], dist: list[float], gnorm: list[float],
                      first: bool) -> float | list[float]:
        rbar, g_sum, eta = list(group["rbar"]), list(group["G"]), list(group["eta"])
        if first:
            rbar = [group["reps_rel"] * (1.0 + d) for d in dist]  # r_ε per tensor
            g_sum = [float(group["eps"])] * len(dist)
            dist = [0.0] * len(idx)  # x_0 - x_0
        out = []
        for j, i in enumerate(idx):
            rbar[i] = max(rbar[i], dist[j])  # r̄_t per tensor
            g_sum[i] += gnorm[j] * gnorm[j]  # G_t per tensor
            eta[i] = group["lr"] * rbar[i] / math.sqrt(g_sum[i]) if g_sum[i] > 0 else 0.0
            if first and group["init_eta"] is not None:
                eta[i] = float(group["init_eta"])
            out.append(eta[i])
        group.update(rbar=rbar, G=g_sum, eta=eta)
        return out


class PolynomialDecayAverager:
    r"""Polynomial-decay averaging of a model's weights (Shamir & Zhang, 2013), as DoG's authors use.

    At its $t$-th call of :meth:`step` (from $t = 1$), with the model's weights $x_t$:

    $$
    \bar x_t = \Bigl(1 - \frac{1+\gamma}{t+\gamma}\Bigr)\bar x_{t-1} + \frac{1+\gamma}{t+\gamma}\,x_t,
    $$

    so $\bar x_1 = x_1$ and the weight of old iterates decays polynomially ($\gamma = 8$, the
    authors' default). Every floating-point entry of the model's ``state_dict`` is averaged
    (batch-norm statistics included); integer buffers (``num_batches_tracked``) are copied.

    Args:
        model: the model being trained; a deep copy holds the average.
        gamma: $\gamma \ge 0$; larger values forget old iterates faster.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> avg = PolynomialDecayAverager(model)
        >>> avg.step()                     # call after every optimizer step
        >>> evaluation_model = avg.averaged_model

    References:
        Shamir, Zhang. Stochastic Gradient Descent for Non-smooth Optimization: Convergence
        Results and Optimal Averaging Schemes. ICML 2013. https://arxiv.org/abs/1212.1824
    """

    def __init__(self, model: nn.Module, gamma: float = 8.0) -> None:
        if not gamma >= 0.0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.model = model
        self.av_model = deepcopy(model)
        self.gamma = float(gamma)
        self.t = 1

    def weight(self, t: int | None = None) -> float:
        """The weight $(1+\\gamma)/(t+\\gamma)$ of the newest iterate at call ``t`` (default: the next)."""
        t = self.t if t is None else t
        return (1.0 + self.gamma) / (t + self.gamma)

    @torch.no_grad()
    def step(self) -> None:
        """Fold the model's current weights into the average."""
        src, dst = self.model.state_dict(), self.av_model.state_dict()
        moved = next((x.device for k, x in src.items() if dst[k].device != x.device), None)
        if moved is not None:  # the model moved (e.g. .cuda() after the averager was built)
            self.av_model.to(moved)
            dst = self.av_model.state_dict()
        w = self.weight()
        avg, new = [], []
        for k, x in src.items():
            a = dst[k]
            if a.is_floating_point() or a.is_complex():
                avg.append(a)
                new.append(x.detach())
            else:
                a.copy_(x)
        if avg:
            torch._foreach_lerp_(avg, new, w)  # x̄ += w (x - x̄)
        self.t += 1

    def reset(self) -> None:
        """Restart the average: the next :meth:`step` sets it to the model's weights."""
        self.t = 1

    @property
    def averaged_model(self) -> nn.Module:
        """The model holding the averaged weights (evaluate this one)."""
        return self.av_model

    @property
    def base_model(self) -> nn.Module:
        """The model being trained."""
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """``t`` and the averaged model's weights, for checkpoints."""
        return {"t": self.t, "av_model": self.av_model.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.t = int(state_dict["t"])
        self.av_model.load_state_dict(state_dict["av_model"])


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    for name, cls in (("dog", DoG), ("ldog", LDoG)):
        register_optimizer(OptimizerInfo(name=name, cls=cls, paper="dog_distance_over_gradients", test_kwargs={},
                                         reference=f"dog:{cls.__name__}",
                                         description=(cls.__doc__ or "").strip().splitlines()[0]))


_register()
