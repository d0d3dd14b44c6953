"""OASIS: a diagonal Hutchinson preconditioner and a step size from local smoothness, both adaptive.

Majid Jahani, Sergey Rusakov, Zheng Shi, Peter Richtárik, Michael W. Mahoney, Martin Takáč.
*Doubly Adaptive Scaled Algorithm for Machine Learning Using Second-Order Information*. ICLR 2022.
https://arxiv.org/abs/2109.05198 (no PyPI package; no official PyTorch code found). Written from
the paper; no code is copied.

Notation (code name: paper symbol): ``state["D"]``: ``D_k``, the running Hutchinson estimate of
the Hessian diagonal; ``state["w_prev"]``: ``w_{k-1}``; ``group["eta"]``: ``eta_k``;
``group["theta"]``: ``theta_k = eta_k / eta_{k-1}``; ``alpha``: the truncation ``alpha`` of
``|D_k|``; ``beta2``: ``beta_2``; ``eta0``: ``eta_0``, the first step.

**The method** (the paper's Algorithm 1; the stochastic variant evaluates both gradients of the
smoothness estimate on the **same** mini-batch ``I_k``)::

    D_k      = beta2 D_{k-1} + (1 - beta2) z_k * (H_k z_k),      z_k Rademacher,  H_k = ∇² F_{I_k}(w_k)
    Dhat_k   = max(|D_k|, alpha)                                  (elementwise)
    eta_k    = min( sqrt(1 + theta_{k-1}) eta_{k-1},
                    ||w_k - w_{k-1}||_{Dhat_k} / (2 ||∇F_{I_k}(w_k) - ∇F_{I_k}(w_{k-1})||*_{Dhat_k}) )
    w_{k+1}  = w_k - eta_k Dhat_k^{-1} ∇F_{I_k}(w_k)
    theta_k  = eta_k / eta_{k-1}

with ``||x||_D = sqrt(x^T D x)``, ``||x||*_D = sqrt(x^T D^{-1} x)``, ``theta_0 = +inf``, and the
first step ``w_1 = w_0 - eta_0 Dhat_0^{-1} ∇F_{I_0}(w_0)``, ``D_0 = z_0 * (H_0 z_0)`` (one
Hutchinson sample at ``w_0``: the paper leaves ``D_0`` to the user). The step size needs no
learning rate: it grows by at most ``sqrt(1 + theta)`` per step and is capped by the inverse of a
local Lipschitz estimate of the gradient in the ``Dhat`` metric (Malitsky & Mishchenko's adaptive
gradient descent, in a scaled norm).

**Cost and the closure.** One step calls ``closure`` twice (at ``w_k`` and, with the weights
swapped to ``w_{k-1}``, on the same batch) and takes one Hessian-vector product:

* ``hvp="autograd"`` (the default, exact, the paper's): the closure must build the gradient's
  graph, ``loss.backward(create_graph=True)``; the product is ``torch.autograd.grad(g, w, z)``.
  A closure whose gradients carry no graph raises a ``RuntimeError`` that says so.
  :func:`create_graph_loss` turns a ``loss(model, x, y)`` function into one that does this
  inside a closure that calls plain ``backward()`` (the shared training loop's).
* ``hvp="fd"``: a forward difference ``H z ≈ (∇F(w + δ z) - ∇F(w)) / δ``,
  ``δ = fd_eps (1 + ||w||) / ||z||``, from a third closure call: for any closure.

Parameter groups: ``eta_k`` is one scalar for all groups (the paper's norms span the whole
vector); ``alpha``, ``beta2`` and ``lr`` are per group. ``lr`` multiplies the step (1 = the paper;
a group with ``lr = 0`` stays put and a scheduler may scale the method): ``w_{k+1} = w_k - lr
eta_k Dhat_k^{-1} g_k``. The Rademacher vectors come from a generator seeded with ``seed + k``,
so a resumed run draws the same ones (``state_dict`` holds ``k``). Degenerate steps: when both
candidates of ``eta_k`` are infinite (identical gradients at ``w_k`` and ``w_{k-1}`` right after
the first step), ``eta_k = eta_{k-1}``; when ``w_k = w_{k-1}`` (every ``lr`` zero), the
smoothness candidate is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

__all__ = ["OASIS", "create_graph_loss"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def create_graph_loss(loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor]) -> Callable[[nn.Module, Tensor, Tensor], Tensor]:
    """``loss_fn`` for a closure that calls plain ``backward()``, made to leave gradients with a graph.

    The returned function computes ``L = loss_fn(model, x, y)``, back-propagates it with
    ``create_graph=True`` itself (so every ``p.grad`` carries its graph, as :class:`OASIS` with
    ``hvp="autograd"`` needs) and returns ``L`` detached as a fresh leaf: the closure's own
    ``backward()`` on it then touches no parameter. The value is ``L``'s.
    """
    def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        value = loss_fn(model, x, y)
        value.backward(create_graph=True)
        return value.detach().requires_grad_(True)

    return loss


class OASIS(Optimizer):
    r"""OASIS: Hutchinson-diagonal preconditioning with an adaptive, tuning-free step size.

    ``step(closure)`` needs a closure (it is called twice per step, at the current and at the
    previous weights, on the same batch). With ``hvp="autograd"`` the closure must call
    ``loss.backward(create_graph=True)``. With ``\hat D_k = \max(|D_k|, \alpha)``:

    $$
    \eta_k = \min\Big(\sqrt{1+\theta_{k-1}}\,\eta_{k-1},\;
        \frac{\|w_k - w_{k-1}\|_{\hat D_k}}{2\|\nabla F(w_k) - \nabla F(w_{k-1})\|^*_{\hat D_k}}\Big),\qquad
    w_{k+1} = w_k - \eta_k \hat D_k^{-1}\nabla F(w_k).
    $$

    Args:
        params: parameters or parameter groups (``lr``, ``alpha``, ``beta2`` per group).
        lr: a multiplier of the step (1: the paper's method).
        eta0: the first step size ``eta_0``.
        beta2: the decay of the Hutchinson average ``D_k``.
        alpha: the truncation of ``|D_k|`` from below.
        hvp: ``"autograd"`` (exact; the closure builds the graph) or ``"fd"`` (finite differences).
        fd_eps: the relative finite-difference step of ``hvp="fd"``.
        seed: the seed of the Rademacher vectors.

    Example:
        >>> import torch
        >>> from zoo.optim.oasis import OASIS
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -1.0]))
        >>> opt = OASIS([w], eta0=0.5)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (torch.tensor([1.0, 4.0]) * w ** 2).sum() / 2
        ...     loss.backward(create_graph=True)
        ...     return loss
        >>> for _ in range(20):
        ...     _ = opt.step(closure)
        >>> bool(w.abs().max() < 1e-3)  # the diagonal is exact here: a damped Newton method
        True

    References:
        Jahani, Rusakov, Shi, Richtárik, Mahoney, Takáč. Doubly Adaptive Scaled Algorithm for
        Machine Learning Using Second-Order Information. ICLR 2022. https://arxiv.org/abs/2109.05198
    """

    def __init__(self, params: Params, lr: float = 1.0, eta0: float = 1e-3, beta2: float = 0.99,
                 alpha: float = 1e-5, hvp: str = "autograd", fd_eps: float = 1e-3, seed: int = 0) -> None:
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate {lr}: must be >= 0")
        if not eta0 > 0.0:
            raise ValueError(f"invalid eta0 {eta0}: must be > 0")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"invalid beta2 {beta2}: must be in [0, 1)")
        if not alpha > 0.0:
            raise ValueError(f"invalid alpha {alpha}: must be > 0")
        if hvp not in ("autograd", "fd"):
            raise ValueError(f"invalid hvp {hvp!r}: 'autograd' or 'fd'")
        self.hvp, self.fd_eps, self.seed = hvp, float(fd_eps), int(seed)
        defaults = {"lr": lr, "beta2": beta2, "alpha": alpha, "k": 0, "eta": float(eta0), "theta": math.inf}
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ helpers
    def _active(self) -> list[tuple[dict[str, Any], list[Tensor]]]:
        return [(g, [p for p in g["params"] if p.grad is not None]) for g in self.param_groups]

    def _rademacher(self, params: list[Tensor], k: int) -> list[Tensor]:
        gen = torch.Generator().manual_seed(self.seed + k)
        return [(torch.randint(0, 2, p.shape, generator=gen, dtype=torch.int8) * 2 - 1).to(p) for p in params]

    def _hz(self, closure: Callable[[], Any], params: list[Tensor], grads: list[Tensor], z: list[Tensor]) -> list[Tensor]:
        """``H z`` at the current weights (the closure already ran there; ``grads`` are its gradients)."""
        if self.hvp == "autograd":
            needs = [i for i, g in enumerate(grads) if g.requires_grad]
            if not needs:
                raise RuntimeError("OASIS(hvp='autograd') needs the gradient's graph: call "
                                   "loss.backward(create_graph=True) in the closure (or wrap the loss with "
                                   "zoo.optim.oasis.create_graph_loss), or use hvp='fd'")
            with torch.enable_grad():
                hv = torch.autograd.grad([grads[i] for i in needs], [params[i] for i in needs],
                                         grad_outputs=[z[i] for i in needs], allow_unused=True)
            out = [torch.zeros_like(p) for p in params]
            for i, h in zip(needs, hv):
                if h is not None:
                    out[i] = h.detach()
            return out
        # forward difference along z
        w_norm = math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in params))
        z_norm = math.sqrt(sum(float(v.numel()) for v in z))
        delta = self.fd_eps * (1.0 + w_norm) / max(z_norm, 1.0)
        g0 = [g.detach().clone() for g in grads]
        torch._foreach_add_(params, z, alpha=delta)
        with torch.enable_grad():
            closure()
        g1 = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        torch._foreach_add_(params, z, alpha=-delta)
        return [(a - b) / delta for a, b in zip(g1, g0)]

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One OASIS step; ``closure`` is required. Returns the loss at the current weights."""
        if closure is None:
            raise ValueError("OASIS needs a closure: it re-evaluates the gradient at the previous weights")
        with torch.enable_grad():
            loss = closure()
        groups = self._active()
        params = [p for _, ps in groups for p in ps]
        if not params:
            return loss
        grads_raw = [p.grad for p in params]
        k = int(self.param_groups[0]["k"])
        z = self._rademacher(params, k)
        hz = self._hz(closure, params, grads_raw, z)
        grads = [g.detach().clone() for g in grads_raw]  # ∇F_{I_k}(w_k), without its graph

        # D_k and Dhat_k, per group
        dhat: list[Tensor] = []
        i = 0
        for group, ps in groups:
            beta2, alpha = group["beta2"], group["alpha"]
            for p in ps:
                state = self.state[p]
                sample = z[i] * hz[i]  # z * (H z)
                if "D" not in state:
                    state["D"] = sample.clone()  # D_0: one Hutchinson sample at w_0
                else:
                    state["D"].mul_(beta2).add_(sample, alpha=1.0 - beta2)
                dhat.append(torch.clamp(state["D"].abs(), min=alpha))
                i += 1

        eta_prev, theta_prev = float(self.param_groups[0]["eta"]), float(self.param_groups[0]["theta"])
        if k == 0:
            eta = eta_prev  # eta_0
        else:
            # ∇F_{I_k}(w_{k-1}): the same batch at the previous weights
            prev = [self.state[p].get("w_prev", p.detach()) for p in params]
            current = [p.detach().clone() for p in params]
            for p, w in zip(params, prev):
                p.copy_(w)
            with torch.enable_grad():
                closure()
            g_prev = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
            for p, w in zip(params, current):
                p.copy_(w)
            dw = [c - w for c, w in zip(current, prev)]
            dg = [a - b for a, b in zip(grads, g_prev)]
            num = torch.stack([(d * d * h).sum().double() for d, h in zip(dw, dhat)]).sum()  # ||dw||^2_Dhat
            den = torch.stack([(d * d / h).sum().double() for d, h in zip(dg, dhat)]).sum()  # (||dg||*_Dhat)^2
            num_, den_ = torch.stack([num, den]).tolist()
            cap = math.sqrt(1.0 + theta_prev) * eta_prev
            smooth = math.inf if (num_ == 0.0 or den_ == 0.0) else 0.5 * math.sqrt(num_ / den_)
            eta = min(cap, smooth)
            if not math.isfinite(eta):
                eta = eta_prev
        theta = eta / eta_prev if k > 0 else math.inf

        i = 0
        for group, ps in groups:
            for p in ps:
                self.state[p]["w_prev"] = p.detach().clone()  # w_k becomes w_{k-1}
                if group["lr"] != 0.0:
                    p.addcdiv_(grads[i], dhat[i], value=-group["lr"] * eta)  # w_k - lr eta Dhat^-1 g
                p.grad = grads[i]  # the gradient at w_k, without a graph
                i += 1
        for group in self.param_groups:
            group.update(k=k + 1, eta=eta, theta=theta)
        return loss


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(
        name="oasis", cls=OASIS, paper="doubly_adaptive_scaled_optimizer", reference=None, needs_closure=True,
        test_kwargs={"hvp": "fd"},  # the contract's closure calls plain backward(); the autograd mode is tested in test_oasis
        description=(OASIS.__doc__ or "").strip().splitlines()[0]))


_register()
