"""MoMo and MoMo-Adam: momentum methods whose step size comes from a model of the loss.

Fabian Schaipp, Ruben Ohana, Michael Eickenberg, Aaron Defazio, Robert M. Gower. *MoMo: Momentum
Models for Adaptive Learning Rates*. ICML 2024. https://arxiv.org/abs/2305.07583 (authors' code:
https://github.com/fabian-sp/MoMo, MIT licence; package ``momo-opt``, the oracle of our tests).
Written from the paper and the package's ``0.1.0`` source; no code is copied.

Notation (code name: paper symbol): ``grad_avg``: ``d_k``; ``grad_dot_w``: ``gamma_k``;
``loss_avg``: ``fbar_k``; ``lr``: ``alpha_k``; ``lb`` / ``f_star``: ``f_*``; ``weight_decay``:
``lambda``; ``rho``: ``rho_k = 1 - beta^k`` (bias correction).

**The momentum model.** Every past step ``j`` gives a linearisation ``f(x_j) + <g_j, x - x_j>`` of
the loss; MoMo averages them with the momentum weights and keeps the model above a known lower
bound ``f_*`` (``0`` for most losses)::

    fbar_k  = beta fbar_{k-1}  + (1 - beta) f(x_k)             (average of losses)
    d_k     = beta d_{k-1}     + (1 - beta) g_k                (average of gradients: momentum)
    gamma_k = beta gamma_{k-1} + (1 - beta) <g_k, x_k>         (average of <g, x>)
    m_k(x)  = max(f_*, fbar_k + <d_k, x> - gamma_k)            (the model)

Its proximal step with step size ``alpha_k`` has a closed form: a truncated Polyak step::

    h_k     = fbar_k + <d_k, x_k> - gamma_k                    (the model's value at x_k)
    tau_k   = min(alpha_k, (h_k - f_*)_+ / ||d_k||^2)
    x_{k+1} = x_k - tau_k d_k

With weight decay ``lambda`` the regulariser ``lambda/2 ||x||^2`` is kept exact in the proximal
step (the package's only form for MoMo)::

    tau_k   = min(alpha_k, ((1 + alpha_k lambda)(fbar_k - f_*) + <d_k, x_k>
                            - (1 + alpha_k lambda) gamma_k)_+ / ||d_k||^2)
    x_{k+1} = (x_k - tau_k d_k) / (1 + alpha_k lambda)

**Bias correction** (``bias_correction=True``; always on in MoMo-Adam): the averages start at
zero and ``rho_k = 1 - beta^k`` is the sum of their weights, which gives
``tau_k = min(alpha_k / rho_k, ((1 + alpha_k lambda)(fbar_k - rho_k f_*) + <d_k, x_k>
- (1 + alpha_k lambda) gamma_k)_+ / ||d_k||^2)``, the step of the model of the normalised averages
``fbar/rho, d/rho, gamma/rho``. Without it (MoMo's default) the averages start at the first
values ``fbar_1 = f(x_1), d_1 = g_1, gamma_1 = <g_1, x_1>`` and ``rho_k = 1``.

**MoMo-Adam** measures the model in Adam's metric ``D_k = diag(sqrt(v_k / (1 - beta2^k)) + eps)``,
``v_k = beta2 v_{k-1} + (1 - beta2) g_k^2``, with ``beta = beta1``::

    tau_k   = min(alpha_k / rho_k, (...same numerator...)_+ / ||d_k||^2_{D_k^-1})
    x_{k+1} = (x_k - tau_k D_k^-1 d_k) / (1 + alpha_k lambda)          (divide=True)
    x_{k+1} = (1 - alpha_k lambda) x_k - tau_k D_k^-1 d_k               (divide=False, AdamW-like)

**Online lower bound** (``use_fstar=True``, the paper's MoMo*): ``f_*`` starts at ``lb`` and is
re-estimated each step, never below ``lb``. Before the step, if the model's unconstrained value
``cap = (1 + alpha lambda) fbar + <d, x> - (1 + alpha lambda) gamma`` is below
``(1 + alpha lambda) rho f_*``, reset ``f_* <- max(lb, cap / (2 (1 + alpha lambda) rho))``; after
it, ``f_* <- max(lb, (h_k - tau_k ||d_k||^2 / 2) / rho_k)`` (the model value after the step). The
current estimate is ``param_groups[i]["f_star"]``.

Implementation notes. One step is a few ``torch._foreach_*`` kernels per group and **one** host
read of the stacked reductions (the loss, ``<d, x>``, ``sum gamma`` and ``||d||^2``); the scalar
algebra then runs in Python floats (float64). The global scalars ``k``, ``loss_avg`` and
``f_star`` live in every param group (``state_dict`` round-trips them bit-exactly); the package
keeps them as attributes, so its optimizers cannot resume. Departures from the package, all
invisible with one group whose parameters all have gradients: parameters without a gradient are
skipped (the package's ``Momo`` raises on them); ``step`` raises ``ValueError`` instead of
``assert``; a step with ``d_k = 0`` takes ``tau_k = 0`` instead of dividing by zero; MoMo-Adam
divides by ``D_k`` computed once per step from each parameter's own step count (the package
recomputes it for the update from the global count). Kept from the package on purpose: the
reductions ``<d, x>``, ``gamma`` and ``||d||^2`` span **all** groups (one model of the whole
loss), while each group takes its own ``tau`` from its ``lr`` and ``weight_decay``; with
``use_fstar`` the estimate is updated once per group, in group order; MoMo-Adam averages the
loss with the last group's ``beta1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["MoMo", "MoMoAdam"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


# ----------------------------------------------------------------------------- helpers
def _dots(xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
    """``<xs[i], ys[i]>`` for each i, as 0-d tensors in the tensors' own dtype."""
    return [torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in zip(xs, ys)]


def _total(values: list[Tensor], like: Tensor) -> Tensor:
    """``sum(values)`` as a 0-d float64 tensor on ``like``'s device (0 for an empty list)."""
    if not values:
        return torch.zeros((), dtype=torch.float64, device=like.device)
    return torch.stack([v.reshape(()).to(torch.float64) for v in values]).sum()


def _check(lr: float, weight_decay: float, lb: float) -> None:
    if not lr >= 0.0:
        raise ValueError(f"invalid learning rate {lr}: must be >= 0")
    if not weight_decay >= 0.0:
        raise ValueError(f"invalid weight_decay {weight_decay}: must be >= 0")
    if lb != lb:
        raise ValueError("invalid lower bound lb: nan")


class _MoMoBase(Optimizer):
    """Shared plumbing: the loss (closure or explicit), the truncated step, the f_* estimate."""

    lb: float
    use_fstar: bool

    @staticmethod
    def _loss(closure: Callable[[], Any] | None, loss: Any) -> Any:
        if (closure is None) == (loss is None):
            raise ValueError("MoMo needs the loss value: pass exactly one of `closure` or `loss=`")
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        return loss

    def _taus(self, f_bar: float, dot: float, gamma: float, norm: float, rhos: list[float]) -> tuple[list[float], float]:
        """Each group's step ``tau`` (given its ``rho_k``) and the final ``f_*``, in group order."""
        f_star = float(self.param_groups[0]["f_star"])
        taus = []
        for group, rho in zip(self.param_groups, rhos):
            lr, c = group["lr"], 1.0 + group["lr"] * group["weight_decay"]  # c = 1 + alpha lambda
            if self.use_fstar:
                cap = c * f_bar + dot - c * gamma
                if cap < c * rho * f_star:  # the model dips below f_*: reset it half-way
                    f_star = max(cap / (2.0 * c * rho), self.lb)
            nom = c * (f_bar - rho * f_star) + dot - c * gamma  # (1 + alpha lambda)(h_k - rho f_*) for lambda = 0
            t1 = max(nom, 0.0) / norm if norm > 0.0 else 0.0  # (.)_+ / ||d_k||^2
            tau = min(lr / rho, t1)  # truncated at the learning rate
            if self.use_fstar:
                h = f_bar + dot - gamma
                f_star = max((h - 0.5 * tau * norm) / rho, self.lb)
            taus.append(tau)
        return taus, f_star


# ----------------------------------------------------------------------------- MoMo
class MoMo(_MoMoBase):
    r"""MoMo: SGD with momentum and a truncated Polyak step from a momentum model of the loss.

    ``step`` needs the loss value: call ``opt.step(closure)`` (the closure zeroes the gradients,
    computes the loss, calls ``backward`` and returns the loss) or, after your own ``backward``,
    ``opt.step(loss=loss)``. Each step, with the momentum averages of the module docstring:

    $$
    \tau_k = \min\Big(\frac{\alpha_k}{\rho_k},
        \frac{\big((1+\alpha_k\lambda)(\bar f_k - \rho_k f_*) + \langle d_k, x_k\rangle
        - (1+\alpha_k\lambda)\gamma_k\big)_+}{\|d_k\|^2}\Big),\qquad
    x_{k+1} = \frac{x_k - \tau_k d_k}{1 + \alpha_k\lambda}.
    $$

    Args:
        params: parameters or parameter groups (``lr`` and ``weight_decay`` may differ per group).
        lr: the step-size cap ``alpha`` (1.0 is the paper's default; schedule it as usual).
        weight_decay: ``lambda`` of ``lambda/2 ||x||^2``, applied exactly in the proximal step.
        beta: momentum ``beta`` of all three averages, in ``[0, 1)``.
        lb: the lower bound ``f_*`` of the loss (0 for non-negative losses).
        bias_correction: start the averages at zero and correct with ``rho_k = 1 - beta^k``.
        use_fstar: estimate ``f_*`` online, never below ``lb`` (the paper's MoMo*).

    Example:
        >>> import torch
        >>> from zoo.optim import MoMo
        >>> w = torch.nn.Parameter(torch.tensor([3.0]))
        >>> opt = MoMo([w], lr=10.0)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (w ** 2).sum() / 2
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)  # Polyak step f / ||g||^2 = 4.5 / 9 = 0.5 < lr: w -> 1.5
        >>> round(w.item(), 6)
        1.5

    References:
        Schaipp, Ohana, Eickenberg, Defazio, Gower. MoMo: Momentum Models for Adaptive Learning
        Rates. ICML 2024. https://arxiv.org/abs/2305.07583
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        weight_decay: float = 0.0,
        beta: float = 0.9,
        lb: float = 0.0,
        bias_correction: bool = False,
        use_fstar: bool = False,
    ) -> None:
        _check(lr, weight_decay, lb)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"invalid beta {beta}: must be in [0, 1)")
        self.beta, self.lb = float(beta), float(lb)
        self.bias_correction, self.use_fstar = bool(bias_correction), bool(use_fstar)
        defaults = {"lr": lr, "weight_decay": weight_decay, "k": 0, "loss_avg": 0.0, "f_star": float(lb)}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, loss: Any = None) -> Any:  # type: ignore[override]
        """One step from ``closure()`` or the given ``loss``; returns the loss."""
        loss = self._loss(closure, loss)
        first, beta = self.param_groups[0], self.beta
        k = first["k"] + 1
        fresh = k == 1 and not self.bias_correction  # the averages start at the first values

        active, reductions = [], []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                active.append(([], []))
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError("MoMo does not support sparse gradients")
            xg = _dots(params, grads)  # <g_k, x_k> per tensor
            for p, g, v in zip(params, grads, xg):
                state = self.state[p]
                if not state:
                    if self.bias_correction:
                        state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        state["grad_dot_w"] = torch.zeros((), dtype=p.dtype, device=p.device)
                    else:
                        state["grad_avg"] = g.clone(memory_format=torch.preserve_format)
                        state["grad_dot_w"] = v.clone()
            d = [self.state[p]["grad_avg"] for p in params]
            gamma = [self.state[p]["grad_dot_w"] for p in params]
            torch._foreach_mul_(d, beta)  # d_k = beta d_{k-1} + (1 - beta) g_k
            torch._foreach_add_(d, grads, alpha=1.0 - beta)
            torch._foreach_mul_(gamma, beta)  # gamma_k = beta gamma_{k-1} + (1 - beta) <g_k, x_k>
            torch._foreach_add_(gamma, xg, alpha=1.0 - beta)
            reductions.append((_dots(params, d), gamma, _dots(d, d)))
            active.append((params, d))

        like = next((p for ps, _ in active for p in ps), None)
        if like is None:
            like = torch.as_tensor(loss) if isinstance(loss, Tensor) else torch.zeros(())
        dot, gamma_sum, norm = (_total([v for r in reductions for v in r[i]], like) for i in range(3))
        f = torch.as_tensor(loss).detach().to(device=like.device, dtype=torch.float64).reshape(())
        f, dot_, gamma_, norm_ = torch.stack([f, dot, gamma_sum, norm]).tolist()  # the one host sync

        prev = f if fresh else first["loss_avg"]
        f_bar = beta * prev + (1.0 - beta) * f  # fbar_k
        rho = 1.0 - beta**k if self.bias_correction else 1.0
        taus, f_star = self._taus(f_bar, dot_, gamma_, norm_, [rho] * len(self.param_groups))

        for group, tau, (params, d) in zip(self.param_groups, taus, active):
            if params:
                torch._foreach_add_(params, d, alpha=-tau)  # x_k - tau_k d_k
                if group["weight_decay"] > 0:
                    torch._foreach_div_(params, 1.0 + group["lr"] * group["weight_decay"])
        for group in self.param_groups:
            group.update(k=k, loss_avg=f_bar, f_star=f_star)
        return loss


# ----------------------------------------------------------------------------- MoMo-Adam
class MoMoAdam(_MoMoBase):
    r"""MoMo-Adam: Adam's direction with a truncated Polyak step from a momentum model of the loss.

    ``step`` needs the loss value: ``opt.step(closure)`` or ``opt.step(loss=loss)`` after your own
    ``backward``. With ``D_k = diag(sqrt(v_k / (1 - beta2^k)) + eps)``, ``rho_k = 1 - beta1^k`` and
    the bias-corrected averages of the module docstring (``beta = beta1``):

    $$
    \tau_k = \min\Big(\frac{\alpha_k}{\rho_k},
        \frac{\big((1+\alpha_k\lambda)(\bar f_k - \rho_k f_*) + \langle d_k, x_k\rangle
        - (1+\alpha_k\lambda)\gamma_k\big)_+}{\|d_k\|^2_{D_k^{-1}}}\Big),\qquad
    x_{k+1} = \frac{x_k - \tau_k D_k^{-1} d_k}{1 + \alpha_k\lambda}.
    $$

    Args:
        params: parameters or parameter groups (``lr``, ``betas``, ``eps`` and ``weight_decay``
            may differ per group).
        lr: the step-size cap ``alpha`` (1e-2 is the package's default).
        betas: ``(beta1, beta2)``: momentum of ``d``, ``gamma``, ``fbar``, and of ``v``.
        eps: added to ``sqrt(v_hat)`` in ``D_k``.
        weight_decay: ``lambda``.
        lb: the lower bound ``f_*`` of the loss.
        divide: proximal weight decay (divide by ``1 + alpha lambda``, the paper's form) or, when
            False, AdamW-style ``x <- (1 - alpha lambda) x`` before the step.
        use_fstar: estimate ``f_*`` online, never below ``lb``.

    Example:
        >>> import torch
        >>> from zoo.optim import MoMoAdam
        >>> w = torch.nn.Parameter(torch.tensor([3.0]))
        >>> opt = MoMoAdam([w], lr=1.0)
        >>> loss = (w ** 2).sum() / 2
        >>> loss.backward()
        >>> _ = opt.step(loss=loss)  # explicit-loss form: backward already done
        >>> w.item() < 3.0
        True

    References:
        Schaipp, Ohana, Eickenberg, Defazio, Gower. MoMo: Momentum Models for Adaptive Learning
        Rates. ICML 2024. https://arxiv.org/abs/2305.07583
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        lb: float = 0.0,
        divide: bool = True,
        use_fstar: bool = False,
    ) -> None:
        _check(lr, weight_decay, lb)
        if not 0.0 <= eps:
            raise ValueError(f"invalid eps {eps}: must be >= 0")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"invalid betas[{i}] = {b}: must be in [0, 1)")
        self.lb, self.divide, self.use_fstar = float(lb), bool(divide), bool(use_fstar)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "k": 0,
            "loss_avg": 0.0,
            "f_star": float(lb),
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, loss: Any = None) -> Any:  # type: ignore[override]
        """One step from ``closure()`` or the given ``loss``; returns the loss."""
        loss = self._loss(closure, loss)
        first = self.param_groups[0]
        k = first["k"] + 1

        active, reductions = [], []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                active.append(([], [], []))
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError("MoMoAdam does not support sparse gradients")
            beta1, beta2 = group["betas"]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["grad_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["grad_dot_w"] = torch.zeros((), dtype=p.dtype, device=p.device)
                state["step"] += 1
            states = [self.state[p] for p in params]
            d = [s["grad_avg"] for s in states]
            v = [s["grad_avg_sq"] for s in states]
            gamma = [s["grad_dot_w"] for s in states]
            xg = _dots(params, grads)  # <g_k, x_k>
            torch._foreach_mul_(d, beta1)  # d_k = beta1 d_{k-1} + (1 - beta1) g_k
            torch._foreach_add_(d, grads, alpha=1.0 - beta1)
            torch._foreach_mul_(v, beta2)  # v_k = beta2 v_{k-1} + (1 - beta2) g_k^2
            torch._foreach_addcmul_(v, grads, grads, value=1.0 - beta2)
            torch._foreach_mul_(gamma, beta1)  # gamma_k = beta1 gamma_{k-1} + (1 - beta1) <g_k, x_k>
            torch._foreach_add_(gamma, xg, alpha=1.0 - beta1)
            big_d = torch._foreach_div(v, [1.0 - beta2 ** s["step"] for s in states])  # D_k = sqrt(v_hat) + eps
            torch._foreach_sqrt_(big_d)
            torch._foreach_add_(big_d, group["eps"])
            precond = torch._foreach_div(d, big_d)  # D_k^{-1} d_k
            reductions.append((_dots(params, d), gamma, _dots(d, precond)))
            active.append((params, d, big_d))

        like = next((p for ps, _, _ in active for p in ps), None)
        if like is None:
            like = torch.as_tensor(loss) if isinstance(loss, Tensor) else torch.zeros(())
        dot, gamma_sum, norm = (_total([v for r in reductions for v in r[i]], like) for i in range(3))
        f = torch.as_tensor(loss).detach().to(device=like.device, dtype=torch.float64).reshape(())
        f, dot_, gamma_, norm_ = torch.stack([f, dot, gamma_sum, norm]).tolist()  # the one host sync

        beta1 = self.param_groups[-1]["betas"][0]  # the package averages the loss with the last group's beta1
        f_bar = (1.0 - beta1) * f + beta1 * first["loss_avg"]  # fbar_k, from fbar_0 = 0
        rhos = [1.0 - group["betas"][0] ** k for group in self.param_groups]  # rho_k of each group's beta1
        taus, f_star = self._taus(f_bar, dot_, gamma_, norm_, rhos)

        for group, tau, (params, d, big_d) in zip(self.param_groups, taus, active):
            if not params:
                continue
            lam, lr = group["weight_decay"], group["lr"]
            if lam > 0 and not self.divide:
                torch._foreach_mul_(params, 1.0 - lam * lr)  # AdamW-like decay
            torch._foreach_addcdiv_(params, d, big_d, value=-tau)  # x_k - tau_k D_k^{-1} d_k
            if lam > 0 and self.divide:
                torch._foreach_div_(params, 1.0 + lam * lr)  # proximal decay
        for group in self.param_groups:
            group.update(k=k, loss_avg=f_bar, f_star=f_star)
        return loss


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    for name, cls, ref, kwargs in (
        ("momo", MoMo, "momo:Momo", {}),
        ("momo_adam", MoMoAdam, "momo:MomoAdam", {}),
    ):
        register_optimizer(OptimizerInfo(name=name, cls=cls, paper="momo_momentum_model_lr", reference=ref,
                                         needs_closure=True, test_kwargs=kwargs,
                                         description=(cls.__doc__ or "").strip().splitlines()[0]))


_register()
