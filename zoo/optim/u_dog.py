"""U-DoG: accelerated parameter-free SGD, UniXGrad's extra-gradient scheme with DoG step sizes.

Itai Kreisler, Maor Ivgi, Oliver Hinder, Yair Carmon. *Accelerated Parameter-Free Stochastic
Optimization*. COLT 2024. https://arxiv.org/abs/2404.00666 (no code released by the authors; no
package exists). Built on Ali Kavis, Kfir Levy, Francis Bach, Volkan Cevher. *UniXGrad: A Universal,
Adaptive Algorithm with Optimal Guarantees for Constrained Optimization*. NeurIPS 2019, and on DoG
(:mod:`zoo.optim.dog`).

**Provenance (read this before relying on the exact constants).** This session could read the
paper's abstract and a third-party summary of the update (the ``zij`` optimizer canon, which lists
the quantities below: ``r̄_t`` as the running maximum distance of *both* sequences from ``x_0``,
``α_t = Σ_{k≤t} r̄_k / r̄_t``, ``ω_t = α_t r̄_t``, two step sizes ``η_{x,t} = r̄_t / sqrt(G_{x,t})``
and ``η_{y,t} = r̄_t / sqrt(G_{y,t})`` from ordered, α-weighted sums of squared gradient norms,
and the ω-weighted average as the output), but not the paper's algorithm box. The ordering of the
two sums below (the x step's sum includes ``||m_t||^2``, the y step's adds ``||g_t||^2``, as DoG
includes the current gradient) is our reading; the paper's high-probability analysis adds
stabilisation terms built from loose bounds on ``d_0`` and on the noise that this practical
version, like the DoG package for DoG, leaves out (``r_ε`` is the only problem bound used).

Notation (code name: paper symbol); every parameter group is one vector:

* state ``x0``: ``x_0``; state ``y``: ``y_t``, the leading (mirror) sequence; the parameters
  themselves hold ``x̄_t``, the ω-weighted average of the ``x`` sequence (the output, so the model
  is always at its evaluation point and needs no train/eval swap);
* ``group["rbar"]``: ``r̄_t = max(r_ε, max_{i≤t} max(||x_i - x_0||, ||y_i - x_0||))``;
* ``group["R"]``: ``Σ_{k≤t} r̄_k``; ``group["alpha"]``: ``α_t = R_t / r̄_t``; the averaging
  weight is ``ω_t = α_t r̄_t = R_t`` and ``group["W"]``: ``W_t = Σ_{k≤t} ω_k``;
* ``group["G"]``: ``G_t = eps + Σ_{i≤t} α_i^2 (||m_i||^2 + ||g_i||^2)``;
* ``lr``: a multiplier ``c`` of both step sizes (keep 1); ``reps_rel``: ``r_ε = reps_rel (1 + ||x_0||)``.

One step (two gradient evaluations, both on the closure's mini-batch)::

    R_t = R_{t-1} + r̄_{t-1},   α_t = R_t / r̄_{t-1},   ω_t = α_t r̄_{t-1},   W_t = W_{t-1} + ω_t
    x̃_t = (W_{t-1} x̄_{t-1} + ω_t y_{t-1}) / W_t                 m_t = ∇f(x̃_t)      (closure 1)
    η_{x,t} = c r̄_{t-1} / sqrt(G_{t-1} + α_t^2 ||m_t||^2)
    x_t = y_{t-1} - α_t η_{x,t} m_t
    x̄_t = (W_{t-1} x̄_{t-1} + ω_t x_t) / W_t                     g_t = ∇f(x̄_t)      (closure 2)
    G_t = G_{t-1} + α_t^2 (||m_t||^2 + ||g_t||^2),   η_{y,t} = c r̄_{t-1} / sqrt(G_t)
    y_t = y_{t-1} - α_t η_{y,t} g_t
    r̄_t = max(r̄_{t-1}, ||x_t - x_0||, ||y_t - x_0||)

with ``y_0 = x̄_0 = x_0``, ``R_0 = W_0 = 0``, ``r̄_0 = r_ε`` and ``G_0 = eps``. With ``r̄``
constant the weights are UniXGrad's ``α_t = t`` and the output its ``α``-weighted average; while
``r̄`` grows geometrically (DoG's warm-up from ``r_ε``) ``α_t`` stays O(1) and the method moves
like DoG, and each step is at most ``c r̄`` long (each sum includes the gradient it scales).

Departures and choices (none tested against an oracle: there is none):

* unconstrained (``K = R^d``): UniXGrad's projections are the identity;
* ``step`` returns the closure's loss at ``x̃_t`` (the first evaluation);
* a group with ``lr = 0`` is frozen entirely (its parameters and state do not change), so a
  schedule can stop it;
* parameters without a gradient after the first evaluation are left where they are; one that
  gets a gradient later starts then from its current value (``x_0 = y = x̄``);
* scalars are float64 host numbers (one host read per evaluation), in ``state_dict``: resuming
  is bit-exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["UDoG"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]
_SCALARS = ("step", "rbar", "R", "W", "G", "alpha", "eta_x", "eta_y")


def _sq_norms(tensors: list[Tensor]) -> list[Tensor]:
    return [n * n for n in torch._foreach_norm(tensors)] if tensors else []


class UDoG(Optimizer):
    r"""U-DoG: UniXGrad's accelerated extra-gradient steps with DoG's parameter-free step sizes.

    Per parameter group (one vector), with $m_t$ and $g_t$ the closure's gradients at $\tilde x_t$
    and $\bar x_t$:

    $$
    \begin{aligned}
    \alpha_t &= \tfrac{1}{\bar r_{t-1}}\textstyle\sum_{k<t}\bar r_k,\quad \omega_t=\alpha_t\bar r_{t-1},\quad
    \tilde x_t = \tfrac{W_{t-1}\bar x_{t-1} + \omega_t y_{t-1}}{W_{t-1}+\omega_t},\\
    x_t &= y_{t-1} - \alpha_t\,\frac{c\,\bar r_{t-1}}{\sqrt{G_{t-1}+\alpha_t^2\|m_t\|^2}}\,m_t,\qquad
    \bar x_t = \tfrac{W_{t-1}\bar x_{t-1} + \omega_t x_t}{W_{t-1}+\omega_t},\\
    y_t &= y_{t-1} - \alpha_t\,\frac{c\,\bar r_{t-1}}{\sqrt{G_t}}\,g_t,\qquad
    G_t = G_{t-1} + \alpha_t^2(\|m_t\|^2+\|g_t\|^2),\\
    \bar r_t &= \max(\bar r_{t-1}, \|x_t-x_0\|, \|y_t-x_0\|),\qquad \bar r_0 = r_\epsilon = \alpha_\epsilon(1+\|x_0\|).
    \end{aligned}
    $$

    The parameters hold $\bar x_t$ (the output) between steps. See the module docstring for the
    provenance of these equations.

    **Use with a closure.** :meth:`step` requires one that zeroes the gradients, recomputes the
    loss at the current parameters, back-propagates and returns it; it is called twice per step.

    Args:
        params: parameters, or dicts defining parameter groups (each group is one vector).
        reps_rel: $\alpha_\epsilon$, the relative initial movement, $r_\epsilon = \alpha_\epsilon(1+\|x_0\|)$.
        lr: the multiplier $c$ of both step sizes; keep 1.0 (a schedule may multiply it; 0 freezes).
        eps: added once to the sum of squared gradient norms.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = UDoG(model.parameters())
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = model(torch.ones(2, 3)).pow(2).mean()
        ...     loss.backward()
        ...     return loss
        >>> loss = opt.step(closure)
        >>> opt.param_groups[0].get("step")
        1

    References:
        Kreisler, Ivgi, Hinder, Carmon. Accelerated Parameter-Free Stochastic Optimization. COLT
        2024. https://arxiv.org/abs/2404.00666
    """

    def __init__(self, params: Params, reps_rel: float = 1e-6, lr: float = 1.0, eps: float = 1e-8) -> None:
        if not lr >= 0.0:
            raise ValueError(f"lr must be >= 0 (1.0 is recommended), got {lr}")
        if not reps_rel > 0.0:
            raise ValueError(f"reps_rel must be > 0 (1e-6 is the DoG default), got {reps_rel}")
        if not eps >= 0.0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        super().__init__(params, dict(reps_rel=reps_rel, lr=lr, eps=eps))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for key in _SCALARS:
            group.setdefault(key, 0 if key == "step" else 0.0)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One U-DoG step: two evaluations of ``closure`` (required); returns the first loss."""
        if closure is None:
            raise RuntimeError("UDoG needs a closure: it evaluates the gradient at two points per step")

        # 1. Move every started parameter of an active group to the extrapolation point x̃_t.
        active = [g for g in self.param_groups if g["lr"] != 0.0]
        plans = {}
        for group in active:
            started = [p for p in group["params"] if "y" in self.state[p]]
            R = group["R"] + (group["rbar"] if group["step"] > 0 else 0.0)
            plans[id(group)] = R
            if started and group["step"] > 0:
                omega = R  # ω_t = α_t r̄_{t-1} = R_t
                xbars = [self.state[p]["xbar"] for p in started]
                ys = [self.state[p]["y"] for p in started]
                torch._foreach_copy_(started, torch._foreach_lerp(xbars, ys, omega / (group["W"] + omega)))  # x̃_t
        with torch.enable_grad():
            loss = closure()

        # 2. The x step from the gradients m_t at x̃_t; move to the new average x̄_t.
        work = []
        for group in active:
            idx = [i for i, p in enumerate(group["params"]) if p.grad is not None]
            params = [group["params"][i] for i in idx]
            for p in group["params"]:
                st = self.state[p]
                if p.grad is None and "y" in st:
                    p.copy_(st["xbar"])  # no gradient this step: back to x̄_{t-1}, untouched
            if not params:
                continue
            if group["step"] == 0:  # the group's first step: x_0 = y_0 = x̄_0
                x0_norm = math.sqrt(sum(float(n) for n in _sq_norms(params)))
                group["rbar"] = group["reps_rel"] * (1.0 + x0_norm)  # r_ε
                group["G"] = float(group["eps"])
                group["R"], group["W"] = 0.0, 0.0
                plans[id(group)] = group["rbar"]
            for p in params:
                st = self.state[p]
                if "y" not in st:  # a parameter's first gradient: it starts at its current value
                    st["x0"], st["y"], st["xbar"] = p.detach().clone(), p.detach().clone(), p.detach().clone()
            work.append((group, params, [p.grad.detach().clone() for p in params]))
        sq_m = _host([_sum(_sq_norms(ms)) for _, _, ms in work])

        xs_all = []
        for (group, params, ms), mm in zip(work, sq_m):
            R = plans[id(group)]
            rbar = group["rbar"]
            alpha = R / rbar  # α_t
            omega = R  # ω_t = α_t r̄_{t-1}
            w_new = group["W"] + omega
            g_x = group["G"] + alpha * alpha * mm
            eta_x = group["lr"] * rbar / math.sqrt(g_x) if g_x > 0 else 0.0
            ys = [self.state[p]["y"] for p in params]
            xs = torch._foreach_add(ys, ms, alpha=-alpha * eta_x)  # x_t = y_{t-1} - α_t η_x m_t
            xbars = [self.state[p]["xbar"] for p in params]
            torch._foreach_copy_(params, torch._foreach_lerp(xbars, xs, omega / w_new))  # x̄_t
            group.update(alpha=alpha, eta_x=eta_x)
            xs_all.append((xs, g_x, w_new, R))

        with torch.enable_grad():
            closure()

        # 3. The y step from the gradients g_t at x̄_t; update r̄.
        norms = []
        for (group, params, _), (xs, _, _, _) in zip(work, xs_all):
            gs = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            x0s = [self.state[p]["x0"] for p in params]
            norms.append((_sum(_sq_norms(gs)), gs, x0s))
        sq_g = _host([n for n, _, _ in norms])
        dists = []
        for (group, params, _), (xs, g_x, w_new, R), gg, (_, gs, x0s) in zip(work, xs_all, sq_g, norms):
            alpha, rbar = group["alpha"], group["rbar"]
            g_y = g_x + alpha * alpha * gg  # G_t
            eta_y = group["lr"] * rbar / math.sqrt(g_y) if g_y > 0 else 0.0
            ys = [self.state[p]["y"] for p in params]
            torch._foreach_add_(ys, gs, alpha=-alpha * eta_y)  # y_t = y_{t-1} - α_t η_y g_t
            for p in params:
                self.state[p]["xbar"].copy_(p)
            dists.append((_sum(_sq_norms(torch._foreach_sub(xs, x0s))), _sum(_sq_norms(torch._foreach_sub(ys, x0s)))))
            group.update(G=g_y, eta_y=eta_y, W=w_new, R=R)
            group["step"] += 1
        values = _host([d for pair in dists for d in pair])
        for j, (group, _, _) in enumerate(work):
            dx, dy = math.sqrt(values[2 * j]), math.sqrt(values[2 * j + 1])
            group["rbar"] = max(group["rbar"], dx, dy)  # r̄_t
        return loss

    def step_sizes(self) -> list[dict[str, Any]]:
        """Per group: the last ``eta_x``, ``eta_y``, ``alpha``, and ``rbar``, ``G``, ``step``."""
        return [{k: g[k] for k in ("eta_x", "eta_y", "alpha", "rbar", "G", "step")} for g in self.param_groups]


def _sum(ts: list[Tensor]) -> Tensor:
    return torch.stack(ts).sum() if ts else torch.zeros(())


def _host(ts: list[Tensor]) -> list[float]:
    """Float64 host values of 0-dim tensors (one read per device)."""
    if not ts:
        return []
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(ts):
        by_device.setdefault(t.device, []).append(i)
    out = [0.0] * len(ts)
    for idx in by_device.values():
        vals = torch.stack([ts[i].to(torch.float64) for i in idx]).tolist()
        for i, v in zip(idx, vals):
            out[i] = v
    return out


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(name="u_dog", cls=UDoG, paper="u_dog_parameter_free", test_kwargs={},
                                     needs_closure=True, reference=None,
                                     description=(UDoG.__doc__ or "").strip().splitlines()[0]))


_register()
