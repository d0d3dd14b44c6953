"""D-Adaptation: learning-rate-free SGD, Adam, AdaGrad and dual averaging.

Aaron Defazio, Konstantin Mishchenko. *Learning-Rate-Free Learning by D-Adaptation*. ICML 2023.
https://arxiv.org/abs/2301.07733 (authors' code: https://github.com/facebookresearch/dadaptation).

For a convex G-Lipschitz ``f`` the best fixed step of the subgradient method is ``D / (G sqrt(n))``
with ``D = ||x0 - x*||``, which is unknown. Convexity gives ``sum_k l_k <g_k, x_k - x*> >= 0`` for
any positive weights ``l_k``; writing ``s = sum_k l_k g_k`` and using Cauchy-Schwarz on
``<s, x0 - x*>`` turns this into a *lower bound on D built from observed quantities*:

    D >= sum_k l_k <g_k, x0 - x_k> / ||s||                                   (the key bound)

D-Adaptation keeps ``d_k`` = the running maximum of such bounds (so ``d_k <= D`` and it only grows)
and uses it in place of ``D`` in the step size.

:class:`DAdaptDualAveraging` is the paper's Algorithm 1 (the method of its theorems)::

    s_{k+1} = s_k + d_k g_k
    gamma_{k+1} = 1 / sqrt(sum_{i<=k} ||g_i||^2)                           (AdaGrad-norm)
    dhat_{k+1} = (gamma_{k+1} ||s_{k+1}||^2 - sum_{i<=k} gamma_i d_i^2 ||g_i||^2) / (2 ||s_{k+1}||)
    d_{k+1} = max(d_k, dhat_{k+1})
    x_{k+1} = x0 - gamma_{k+1} s_{k+1}

with the guarantees ``d_k <= D`` for every k and, when the iterates converge, ``lim d_k >= D/(1+sqrt 3)``.

The practical optimizers follow the authors' version-3 package (``dadaptation==3.2``, the oracle of
our tests), with step multiplier ``lr`` (keep it at 1 and put the usual schedule on it):

* :class:`DAdaptSGD`, step ``l_k = d_k lr / ||g_0||`` and primal-averaging momentum ``beta``::

      numerator_{k+1} = numerator_k + l_k <g_k, s_k>
      s_{k+1} = s_k + l_k g_k
      dhat_{k+1} = 2 numerator_{k+1} / ||s_{k+1}||      (the key bound, times 2)
      z_{k+1} = x0 - s_{k+1};   x_{k+1} = beta x_k + (1 - beta) z_{k+1}

* :class:`DAdaptAdam`, with ``l_k = d_k lr`` (times Adam's bias correction when enabled),
  ``A_k = diag(sqrt(v_k) + eps)`` and exponential weights instead of sums::

      numerator_{k+1} = sqrt(b2) numerator_k + (1 - sqrt(b2)) l_k <g_k, A_k^{-1} s_k>
      m_{k+1} = b1 m_k + (1 - b1) l_k g_k;     v_{k+1} = b2 v_k + (1 - b2) g_k^2
      s_{k+1} = sqrt(b2) s_k + (1 - sqrt(b2)) l_k g_k
      dhat_{k+1} = numerator_{k+1} / ((1 - sqrt(b2)) ||s_{k+1}||_1)
      x_{k+1} = x_k - m_{k+1} / (sqrt(v_{k+1}) + eps)

* :class:`DAdaptAdaGrad`, coordinate-wise (the paper's l-infinity variant), ``l_k = d_k lr``::

      a_{k+1} = a_k + g_k^2   (a_0 = 1e-6);   s_{k+1} = s_k + l_k g_k
      dhat_{k+1} = (||s_{k+1}||^2_{A^{-1}} - sum_{i<=k} l_i^2 ||g_i||^2_{A_{i+1}^{-1}}) / ||s_{k+1}||_1,
      A_{k+1} = diag(sqrt(a_{k+1}) + eps);    z_{k+1} = x0 - A_{k+1}^{-1} s_{k+1}
      x_{k+1} = beta x_k + (1 - beta) z_{k+1}

In all of them ``d_{k+1} = max(d_k, min(dhat_{k+1}, growth_rate d_k))``. The current estimate is
``param_groups[i]["d"]`` (the same in every group), as in the reference package.

Implementation notes. The reference loops over parameters and reads every partial sum back to
the host (``.item()``), one device sync per parameter tensor; here each step is a handful of
``torch._foreach_*`` kernels over all tensors and **one** host read of the stacked reductions.
Deviations from the reference (all invisible with a single parameter group and no gradient-less
parameters): weight decay and momentum are read per group (the reference SGD reads group 0's for
every group); gradients are not modified in place; AdaGrad's step multiplier is the largest group
``lr`` like the other variants, and a group with ``lr = 0`` accumulates nothing; SGD skips a step
whose gradients are all zero instead of dividing by zero; sparse gradients are not supported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["DAdaptAdaGrad", "DAdaptAdam", "DAdaptDualAveraging", "DAdaptSGD"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


# ----------------------------------------------------------------------------- helpers
def _sum_dots(xs: list[Tensor], ys: list[Tensor]) -> Tensor:
    """``sum_i <xs[i], ys[i]>`` as a 0-d float64 tensor on the device, without a host sync."""
    return torch.stack([torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in zip(xs, ys)]).sum(dtype=torch.float64)


def _sum_norms(xs: list[Tensor], p: float) -> Tensor:
    """``sum_i ||xs[i]||_p`` (``p = 1``) or ``sum_i ||xs[i]||_2^2`` (``p = 2``), 0-d float64."""
    norms = torch.stack(torch._foreach_norm(xs, p)).to(torch.float64)
    return norms.sum() if p == 1 else norms.square().sum()


def _to_host(*values: Tensor | float) -> list[float]:
    """Read several device scalars with one synchronisation."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    if not tensors:
        return [float(v) for v in values]
    dev = tensors[0].device
    stacked = torch.stack(
        [v if isinstance(v, Tensor) else torch.tensor(v, dtype=torch.float64, device=dev) for v in values]
    )
    return stacked.tolist()


def _max_lr(groups: list[dict[str, Any]]) -> float:
    """The step multiplier: the largest group lr; other groups may only use 0 (frozen)."""
    lr = max(g["lr"] for g in groups)
    for g in groups:
        if g["lr"] not in (lr, 0.0):
            raise RuntimeError(
                "D-Adaptation shares one step size across parameter groups: every group's lr must be "
                f"the same or 0 (got {g['lr']} and {lr}); scale layers with `layer_scale` (DAdaptAdam) instead"
            )
    return float(lr)


def _new_d(d: float, d_hat: float, growth_rate: float) -> float:
    """``d_{k+1} = max(d_k, min(dhat_{k+1}, growth_rate d_k))``."""
    return max(d, min(d_hat, d * growth_rate))


def _check_common(lr: float, d0: float, weight_decay: float, growth_rate: float) -> None:
    if not lr > 0.0:
        raise ValueError(f"invalid learning rate multiplier {lr}: must be > 0 (use 1.0)")
    if not d0 > 0.0:
        raise ValueError(f"invalid d0 {d0}: must be > 0")
    if not weight_decay >= 0.0:
        raise ValueError(f"invalid weight_decay {weight_decay}: must be >= 0")
    if not growth_rate >= 1.0:
        raise ValueError(f"invalid growth_rate {growth_rate}: must be >= 1 (inf for unrestricted)")


class _DAdaptBase(Optimizer):
    """Shared plumbing: closures and gathering the parameters that have gradients."""

    _state_keys: tuple[str, ...] = ()

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _gather(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor], list[list[Tensor]]]:
        """Parameters with a gradient, their gradients, and their state buffers (created lazily)."""
        params, grads = [], []
        buffers: list[list[Tensor]] = [[] for _ in self._state_keys]
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            state = self.state[p]
            if not state:
                state.update(self._init_state(p))
            params.append(p)
            grads.append(p.grad)
            for buf, key in zip(buffers, self._state_keys):
                buf.append(state[key])
        return params, grads, buffers

    def _scratch(self, slot: int, like: list[Tensor]) -> list[Tensor]:
        """Uninitialised per-step work buffers shaped like the parameters ``like``.

        On CUDA these are fresh tensors (the caching allocator recycles them for free). On the
        CPU a fresh large tensor pays a page fault per 4 KiB on first touch, which costs more
        than the arithmetic, so the buffers are kept between steps (not in ``state_dict``).
        """
        if not like or like[0].device.type != "cpu":
            return [torch.empty_like(t) for t in like]
        cache: dict[tuple[int, int], Tensor] = self.__dict__.setdefault("_scratch_cache", {})
        out = []
        for t in like:
            buf = cache.get((slot, id(t)))
            if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
                buf = cache[(slot, id(t))] = torch.empty_like(t)
            out.append(buf)
        return out

    def _decayed(self, grads: list[Tensor], params: list[Tensor], decay: float) -> list[Tensor]:
        """``g + decay * x`` in a work buffer (the caller's gradients stay untouched)."""
        out = self._scratch(-1, params)
        torch._foreach_copy_(out, grads)
        torch._foreach_add_(out, params, alpha=decay)
        return out

    @staticmethod
    def _closure(closure: Callable[[], float] | None) -> Any:
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()


# ----------------------------------------------------------------------------- SGD
class DAdaptSGD(_DAdaptBase):
    """SGD with D-Adaptation (primal-averaging momentum); see the module docstring.

    Args:
        params: parameters or parameter groups.
        lr: multiplier on the adapted step ``d / ||g_0||``; keep 1.0 and schedule it as usual.
        momentum: ``beta`` of the primal averaging ``x <- beta x + (1 - beta) z`` (0 disables).
        weight_decay: L2 penalty added to the gradient.
        d0: initial distance estimate (a tiny lower bound; rarely needs changing).
        growth_rate: cap on the per-step growth factor of ``d`` (``inf``: unrestricted).
    """

    _state_keys = ("s", "x0")

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        d0: float = 1e-6,
        growth_rate: float = float("inf"),
    ) -> None:
        _check_common(lr, d0, weight_decay, growth_rate)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"invalid momentum {momentum}: must be in [0, 1)")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "d": d0,
            "k": 0,
            "numerator_weighted": 0.0,
            "g0_norm": 0.0,
            "growth_rate": growth_rate,
        }
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        # z = x0 - s is recomputed each step, so unlike the reference it is not stored.
        return {"s": torch.zeros_like(p, memory_format=torch.preserve_format), "x0": p.detach().clone()}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        """One step; returns the closure's loss when one is given."""
        loss = self._closure(closure)
        first = self.param_groups[0]
        lr = _max_lr(self.param_groups)
        k, d = first["k"], first["d"]

        gathered = [(g, *self._gather(g)) for g in self.param_groups]
        active = [(g, p, gr, b) for g, p, gr, b in gathered if p]
        if not active:
            return loss
        g0_norm = first["g0_norm"]
        if k == 0:
            # Like the reference, ||g_0|| is measured on the raw gradients (no weight decay).
            sq = [_sum_norms(gr, 2) for g, _, gr, _ in active if g["lr"] > 0]
            (g0_sq,) = _to_host(torch.stack(sq).sum()) if sq else [0.0]
            g0_norm = math.sqrt(g0_sq)
            if g0_norm == 0.0:  # nothing to scale by yet: wait for a non-zero gradient
                return loss
        dlr = d * lr / g0_norm

        numerator, sk_sq = [], []
        for group, params, grads, (ss, _) in active:
            if group["weight_decay"] != 0:
                grads = self._decayed(grads, params, group["weight_decay"])
            if group["lr"] > 0:
                numerator.append(_sum_dots(grads, ss))  # <g_k, s_k> before s moves
                torch._foreach_add_(ss, grads, alpha=dlr)
                sk_sq.append(_sum_norms(ss, 2))
        if not numerator:
            return loss
        num_acc, sk_sq_total = _to_host(torch.stack(numerator).sum(), torch.stack(sk_sq).sum())
        numerator_weighted = first["numerator_weighted"] + dlr * num_acc
        if sk_sq_total == 0.0:
            return loss
        if lr > 0.0:
            d = _new_d(d, 2.0 * numerator_weighted / math.sqrt(sk_sq_total), first["growth_rate"])

        for group, params, _, (ss, x0s) in active:
            # x <- beta x + (1 - beta) (x0 - s), in place: no temporary z (fresh CPU memory is slow)
            w = 1.0 - group["momentum"]
            torch._foreach_lerp_(params, x0s, w)
            torch._foreach_add_(params, ss, alpha=-w)
        for group in self.param_groups:
            group.update(numerator_weighted=numerator_weighted, d=d, g0_norm=g0_norm, k=k + 1)
        return loss


# ----------------------------------------------------------------------------- Adam
class DAdaptAdam(_DAdaptBase):
    """Adam with D-Adaptation (the authors' version 3); see the module docstring.

    Args:
        params: parameters or parameter groups.
        lr: multiplier on the adapted step ``d``; keep 1.0 and schedule it as usual.
        betas: Adam's ``(b1, b2)``.
        eps: added to ``sqrt(v)`` in the denominator.
        weight_decay: L2 penalty on the gradient, or AdamW-style decay when ``decouple``.
        decouple: decoupled (AdamW) weight decay ``x <- x - weight_decay d lr x``.
        use_bias_correction: multiply the step by Adam's ``sqrt(1 - b2^k) / (1 - b1^k)``.
        d0: initial distance estimate.
        growth_rate: cap on the per-step growth factor of ``d``.

    A group may set ``layer_scale`` (default 1) to scale its step relative to the others.
    """

    _state_keys = ("exp_avg", "exp_avg_sq", "s")

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decouple: bool = False,
        use_bias_correction: bool = False,
        d0: float = 1e-6,
        growth_rate: float = float("inf"),
    ) -> None:
        _check_common(lr, d0, weight_decay, growth_rate)
        if not eps > 0.0:
            raise ValueError(f"invalid eps {eps}: must be > 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas {betas}: each must be in [0, 1)")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "decouple": decouple,
            "use_bias_correction": use_bias_correction,
            "d": d0,
            "k": 0,
            "numerator_weighted": 0.0,
            "layer_scale": 1.0,
            "growth_rate": growth_rate,
        }
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        z = lambda: torch.zeros_like(p, memory_format=torch.preserve_format)
        return {"exp_avg": z(), "exp_avg_sq": z(), "s": z()}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        """One step; returns the closure's loss when one is given."""
        loss = self._closure(closure)
        first = self.param_groups[0]
        lr = _max_lr(self.param_groups)
        beta1, beta2 = first["betas"]
        k, d = first["k"], first["d"]
        bias_correction = (
            (1 - beta2 ** (k + 1)) ** 0.5 / (1 - beta1 ** (k + 1)) if first["use_bias_correction"] else 1.0
        )
        dlr = d * lr * bias_correction
        sqrt_beta2 = beta2**0.5

        active = []
        numerator, sk_l1 = [], []
        for group in self.param_groups:
            params, grads, (ms, vs, ss) = self._gather(group)
            if not params:
                continue
            scratch = self._scratch(0, params)  # A_k, then A_k^-1 s_k, then A_{k+1}
            active.append((group, params, ms, vs, scratch))
            if group["lr"] == 0.0:
                continue
            decay, r = group["weight_decay"], group["layer_scale"]
            if decay != 0 and not group["decouple"]:
                grads = self._decayed(grads, params, decay)
            torch._foreach_copy_(scratch, vs)
            torch._foreach_sqrt_(scratch)
            torch._foreach_add_(scratch, group["eps"])  # A_k = sqrt(v_k) + eps
            torch._foreach_reciprocal_(scratch)
            torch._foreach_mul_(scratch, ss)  # A_k^-1 s_k
            numerator.append(r * _sum_dots(grads, scratch))  # <g_k, A_k^-1 s_k>
            torch._foreach_mul_(ms, beta1)
            torch._foreach_add_(ms, grads, alpha=r * dlr * (1 - beta1))
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
            torch._foreach_mul_(ss, sqrt_beta2)
            torch._foreach_add_(ss, grads, alpha=dlr * (1 - sqrt_beta2))
            sk_l1.append(r * _sum_norms(ss, 1))
        if not active:
            return loss
        if numerator:
            num_acc, l1 = _to_host(torch.stack(numerator).sum(), torch.stack(sk_l1).sum())
        else:
            num_acc, l1 = 0.0, 0.0
        numerator_weighted = sqrt_beta2 * first["numerator_weighted"] + (1 - sqrt_beta2) * dlr * num_acc
        if l1 == 0.0:  # no gradient signal yet (as the reference: nothing moves)
            return loss
        if lr > 0.0:
            d = _new_d(d, numerator_weighted / ((1 - sqrt_beta2) * l1), first["growth_rate"])

        for group, params, ms, vs, denom in active:
            torch._foreach_copy_(denom, vs)
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, group["eps"])  # A_{k+1}
            if group["weight_decay"] != 0 and group["decouple"]:
                torch._foreach_mul_(params, 1 - group["weight_decay"] * dlr)
            torch._foreach_addcdiv_(params, ms, denom, value=-1.0)
        for group in self.param_groups:
            group.update(numerator_weighted=numerator_weighted, d=d, k=k + 1)
        return loss


# ----------------------------------------------------------------------------- AdaGrad
class DAdaptAdaGrad(_DAdaptBase):
    """Coordinate-wise AdaGrad with D-Adaptation (dense gradients); see the module docstring.

    Args:
        params: parameters or parameter groups.
        lr: multiplier on the adapted step ``d``; keep 1.0 and schedule it as usual.
        momentum: ``beta`` of the primal averaging ``x <- beta x + (1 - beta) z`` (0 disables).
        weight_decay: L2 penalty added to the gradient.
        eps: added to ``sqrt(a)`` in the denominator.
        d0: initial distance estimate.
        growth_rate: cap on the per-step growth factor of ``d``.
    """

    _state_keys = ("alphak", "sk", "x0")

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        eps: float = 1e-6,
        d0: float = 1e-6,
        growth_rate: float = float("inf"),
    ) -> None:
        _check_common(lr, d0, weight_decay, growth_rate)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"invalid momentum {momentum}: must be in [0, 1)")
        if not eps > 0.0:
            raise ValueError(f"invalid eps {eps}: must be > 0")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eps": eps,
            "d": d0,
            "k": 0,
            "gsq_weighted": 0.0,
            "sksq_weighted": 0.0,
            "skl1": 0.0,
            "growth_rate": growth_rate,
        }
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        return {
            "alphak": torch.full_like(p, 1e-6, memory_format=torch.preserve_format),
            "sk": torch.zeros_like(p, memory_format=torch.preserve_format),
            "x0": p.detach().clone(),
            # This tensor's share of ||s||^2_{A^-1} and ||s||_1, so that the totals stay exact
            # when a tensor has no gradient on some step (its share is then unchanged). Python
            # floats: load_state_dict would cast a tensor to the parameter's dtype.
            "sksq": 0.0,
            "l1": 0.0,
        }

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        """One step; returns the closure's loss when one is given."""
        loss = self._closure(closure)
        first = self.param_groups[0]
        lr = _max_lr(self.param_groups)
        d = first["d"]
        dlr = d * lr

        active = []
        g_sq: list[Tensor] = []
        shares: list[Tensor] = []  # per group: the tensors' ||s||^2_{A^-1}, then their ||s||_1
        for group in self.param_groups:
            params, grads, (alphas, sks, x0s) = self._gather(group)
            if not params:
                continue
            if group["weight_decay"] != 0:
                grads = self._decayed(grads, params, group["weight_decay"])
            if group["lr"] > 0:
                torch._foreach_addcmul_(alphas, grads, grads)
            denom, scaled = self._scratch(0, params), self._scratch(1, params)
            torch._foreach_copy_(denom, alphas)
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, group["eps"])  # A_{k+1} = sqrt(a_{k+1}) + eps
            if group["lr"] > 0:
                torch._foreach_copy_(scaled, grads)
                torch._foreach_div_(scaled, denom)
                g_sq.append(_sum_dots(grads, scaled))  # ||g_k||^2_{A_{k+1}^-1}
                torch._foreach_add_(sks, grads, alpha=dlr)
            torch._foreach_copy_(scaled, sks)
            torch._foreach_div_(scaled, denom)  # A^-1 s, reused for the step
            shares.append(torch.stack([torch.dot(s.reshape(-1), q.reshape(-1)) for s, q in zip(sks, scaled)]))
            shares.append(torch.stack(torch._foreach_norm(sks, 1)))
            active.append((group, params, x0s, scaled))
        if not active:
            return loss
        # One host read for the gradient term and every tensor's shares.
        gsq_total = torch.stack(g_sq).sum() if g_sq else torch.zeros((), dtype=torch.float64, device=shares[0].device)
        values = torch.cat([gsq_total.reshape(1).double(), *(t.double() for t in shares)]).tolist()
        gsq, pos = values[0], 1
        for _, params, _, _ in active:
            n = len(params)
            for i, p in enumerate(params):
                self.state[p]["sksq"], self.state[p]["l1"] = values[pos + i], values[pos + n + i]
            pos += 2 * n
        sksq_weighted = math.fsum(st["sksq"] for st in self.state.values() if "sksq" in st)
        skl1 = math.fsum(st["l1"] for st in self.state.values() if "l1" in st)
        if skl1 == 0.0:
            return loss
        gsq_weighted = first["gsq_weighted"] + dlr * dlr * gsq
        if lr > 0.0:
            d = _new_d(d, (sksq_weighted - gsq_weighted) / skl1, first["growth_rate"])

        for group, params, x0s, scaled in active:
            w = 1.0 - group["momentum"]  # x <- beta x + (1 - beta) (x0 - A^-1 s), in place
            torch._foreach_lerp_(params, x0s, w)
            torch._foreach_add_(params, scaled, alpha=-w)
        for group in self.param_groups:
            group.update(gsq_weighted=gsq_weighted, sksq_weighted=sksq_weighted, skl1=skl1, d=d, k=group["k"] + 1)
        return loss


# ----------------------------------------------------------------------------- dual averaging
class DAdaptDualAveraging(_DAdaptBase):
    """The paper's Algorithm 1: dual averaging with D-Adaptation and AdaGrad-norm steps.

    This is the method the paper's guarantees are about (``d_k <= D`` for every k; the optimal
    ``O(DG / sqrt(n))`` rate on convex G-Lipschitz problems); the practical variants above
    change the step and add momentum. The paper returns the average ``sum_k d_k x_k / sum_k d_k``;
    the parameters hold the iterate ``x_k``.

    Args:
        params: parameters or parameter groups.
        lr: constant multiplier on ``gamma`` (1.0 is the algorithm as analysed; the lower bound
            holds for any constant value because ``gamma`` enters the bound as used).
        d0: initial distance estimate (at most D for the lower-bound guarantee).
    """

    _state_keys = ("s", "x0")

    def __init__(self, params: Params, lr: float = 1.0, d0: float = 1e-6) -> None:
        _check_common(lr, d0, 0.0, float("inf"))
        defaults = {"lr": lr, "d": d0, "k": 0, "gsq_sum": 0.0, "gamma": 0.0, "weighted_gsq": 0.0}
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        return {"s": torch.zeros_like(p, memory_format=torch.preserve_format), "x0": p.detach().clone()}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        """One step; returns the closure's loss when one is given."""
        loss = self._closure(closure)
        first = self.param_groups[0]
        lr = _max_lr(self.param_groups)
        d, k = first["d"], first["k"]
        active = [(g, *self._gather(g)) for g in self.param_groups]
        active = [(g, p, gr, b) for g, p, gr, b in active if p and g["lr"] > 0]
        if not active:
            return loss
        (g_sq,) = _to_host(torch.stack([_sum_norms(gr, 2) for _, _, gr, _ in active]).sum())
        gsq_sum = first["gsq_sum"] + g_sq
        if gsq_sum == 0.0:  # g_0 = 0: x0 is optimal, nothing to do
            return loss
        gamma = lr / math.sqrt(gsq_sum)  # gamma_{k+1}
        gamma_k = first["gamma"] if k > 0 else gamma  # gamma_0 = 1/||g_0|| = gamma_1
        weighted_gsq = first["weighted_gsq"] + gamma_k * d * d * g_sq  # sum_i gamma_i d_i^2 ||g_i||^2
        sq = []
        for _, _, grads, (ss, _) in active:
            torch._foreach_add_(ss, grads, alpha=d)  # s_{k+1} = s_k + d_k g_k
            sq.append(_sum_norms(ss, 2))
        (s_sq,) = _to_host(torch.stack(sq).sum())
        if s_sq > 0.0:
            d = max(d, (gamma * s_sq - weighted_gsq) / (2.0 * math.sqrt(s_sq)))
        for _, params, _, (ss, x0s) in active:
            torch._foreach_copy_(params, x0s)  # x_{k+1} = x0 - gamma_{k+1} s_{k+1}
            torch._foreach_add_(params, ss, alpha=-gamma)
        for group in self.param_groups:
            group.update(d=d, k=k + 1, gsq_sum=gsq_sum, gamma=gamma, weighted_gsq=weighted_gsq)
        return loss


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    for name, cls, ref, kwargs in (
        ("dadapt_sgd", DAdaptSGD, "dadaptation:DAdaptSGD", {}),
        ("dadapt_adam", DAdaptAdam, "dadaptation:DAdaptAdam", {}),
        ("dadapt_adagrad", DAdaptAdaGrad, "dadaptation:DAdaptAdaGrad", {}),
        # Algorithm 1 has no growth cap and AdaGrad-norm steps: from d0 = 1e-6 it needs thousands
        # of steps to reach the problem's scale, so the contract test starts it nearer.
        ("dadapt_dual_averaging", DAdaptDualAveraging, None, {"d0": 0.1}),
    ):
        register_optimizer(OptimizerInfo(name=name, cls=cls, paper="d_adaptation", reference=ref, test_kwargs=kwargs,
                                         description=(cls.__doc__ or "").strip().splitlines()[0]))


_register()
