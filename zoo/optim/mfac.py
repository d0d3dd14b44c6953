"""M-FAC: SGD preconditioned by the inverse of a sliding-window empirical Fisher, matrix-free.

Elias Frantar, Eldar Kurtic, Dan Alistarh. *M-FAC: Efficient Matrix-Free Approximations of
Second-Order Information*. NeurIPS 2021. https://arxiv.org/abs/2107.03356 (authors' code:
https://github.com/IST-DASLab/M-FAC, MIT licence: ``optim.py``, classes ``HInvFastUpMulti`` and
``MFAC``; not on PyPI, the PyPI name ``mfac`` is an unrelated package). Written from the paper
and from reading the authors' ``optim.py``; no code is copied.

Notation (code name: paper symbol): ``ngrads``: ``m``, the window size; ``damp``: ``lambda``;
``window`` (per-parameter state, ``m x numel``): that parameter's columns of ``G``, the ``m x d``
matrix of the last ``m`` gradients (a ring buffer, zero rows until it fills); ``dots``: ``G G^T``;
``slot``: the ring index the next gradient replaces.

**The empirical Fisher of the window** (the paper's Eq. 1 with the ``m`` stored gradients and a
dampening ``lambda``)::

    F = lambda I + (1/m) sum_{i=1}^m g_i g_i^T = lambda I + (1/m) G^T G

**The dynamic algorithm** (Section 3.2). Woodbury's identity applied one rank-one term at a time,
``F_0^-1 = I / lambda``, ``F_i^-1 = F_{i-1}^-1 - v_i v_i^T / (m + g_i^T v_i)`` with
``v_i = F_{i-1}^-1 g_i``, writes every ``v_i`` as a combination of the stored gradients,
``v_i = sum_j B_ij g_j`` (``B`` lower-triangular, ``m x m``), so that for any ``x``::

    F^-1 x = x / lambda - sum_i (v_i^T x) v_i / (m + g_i^T v_i)
           = x / lambda - G^T B^T diag(1 / (m + D_ii)) B G x,       D_ij = g_i^T F_{i-1}^-1 g_j

``D`` and ``B`` depend on ``G`` only through ``G G^T``: replacing one gradient (one row of ``G``)
costs ``O(dm)`` for the new row of ``G G^T`` and ``O(m^3)`` to recompute ``D`` and ``B``; the
product then costs ``O(dm + m^2)`` (one ``G x``, triangular ``m x m`` algebra, one ``G^T y``).
No ``d x d`` matrix is ever formed. The recursion for ``D`` is Gaussian elimination without
pivoting of ``M = m I + G G^T / lambda`` (its upper factor is ``U = D + m I``, on and above the
diagonal), and the correction term collapses to the Woodbury identity for the window::

    F^-1 x = (x - G^T (G G^T + m lambda I)^-1 G x) / lambda,

which is how :class:`MFAC` evaluates it: a Cholesky factorisation of the ``m x m`` matrix
``G G^T + m lambda I`` (in float64) per step, which computes the same factorisation as the
authors' ``torch.lu(..., pivot=False)`` of ``M`` (``U = diag(C) C^T`` for the Cholesky factor
``C`` of ``M``). :func:`dynamic_ihvp_reference` is the paper's recursion for ``D`` and ``B``
written out row by row, the readable twin; ``tests/optim/test_mfac.py`` checks that the two
agree, and both with the explicit ``(lambda I + G^T G / m)^-1 x``.

**The optimizer** (the authors' ``MFAC.step``): each step, with ``g = grad + wd * w``
(coupled weight decay, as in the authors' code), the window's oldest gradient is replaced by
``g``, then::

    u   = F^-1 g                         (with the window that now holds g)
    v   = mu v + (1 - mu) u              (momentum mu > 0; v = u when mu = 0)
    w  <- w - lr v

Implementation notes and departures from the authors' code:

* one Fisher for the whole model: every parameter of every group is one vector, as in the
  authors' code; ``lr``, ``momentum`` and ``weight_decay`` may differ per group (the authors'
  momentum and weight decay are global; with one group the two agree);
* the window is stored per parameter (its columns of ``G``), so that ``state_dict`` holds it and
  resumes bit-exactly; ``G G^T`` (float64) and the ring index live in the state of the first
  parameter, and ``load_state_dict`` keeps ``G G^T`` in float64;
* a parameter without a gradient contributes zeros to the new row of ``G`` (its entries of ``g``
  are 0) and is not moved (the authors' code requires every gradient);
* the ``m x m`` algebra runs in float64 whatever the parameters' dtype (the authors' runs in the
  parameters' dtype and disables TF32 for precision); ``G``, ``G x`` and ``G^T y`` stay in the
  parameters' dtype;
* the authors' sparse mode (pruned weights held at zero) is not implemented.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["MFAC", "dynamic_ihvp_reference", "explicit_ihvp"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def dynamic_ihvp_reference(grads: Tensor, x: Tensor, damp: float) -> Tensor:
    """``F^-1 x`` for ``F = damp I + grads^T grads / m`` by the paper's recursion for ``D`` and ``B``.

    ``grads`` is ``G`` (``m x d``), ``x`` a ``d``-vector. Literal and slow (Python loops over the
    ``m`` rows, float64): the readable twin of :meth:`MFAC.inverse_fisher_product`.
    """
    g = grads.double()
    m = g.shape[0]
    lam_inv = 1.0 / damp
    dots = g @ g.T
    # D_ij = g_i^T F_{i-1}^-1 g_j for j >= i, by the rank-one recursion
    # g_i^T F_k^-1 g_j = g_i^T F_{k-1}^-1 g_j - D_ki D_kj / (m + D_kk)   (k < i)
    d = lam_inv * dots.clone()
    for k in range(m):
        for i in range(k + 1, m):
            d[i, i:] -= d[k, i] * d[k, i:] / (m + d[k, k])
    denom = m + torch.diagonal(d)
    # v_i = F_{i-1}^-1 g_i = g_i / lambda - sum_{k<i} v_k D_ki / (m + D_kk): the rows of B
    b = torch.zeros(m, m, dtype=torch.float64, device=g.device)
    for i in range(m):
        b[i, i] = lam_inv
        for k in range(i):
            b[i] -= (d[k, i] / denom[k]) * b[k]
    q = b @ (g @ x.double())  # q_i = v_i^T x
    return lam_inv * x.double() - g.T @ (b.T @ (q / denom))


def explicit_ihvp(grads: Tensor, x: Tensor, damp: float) -> Tensor:
    """``(damp I + grads^T grads / m)^-1 x`` by forming the ``d x d`` matrix (float64; the oracle)."""
    g = grads.double()
    m, d = g.shape
    f = damp * torch.eye(d, dtype=torch.float64, device=g.device) + g.T @ g / m
    return torch.linalg.solve(f, x.double())


class MFAC(Optimizer):
    r"""M-FAC: SGD preconditioned by the inverse sliding-window empirical Fisher (dynamic algorithm).

    With ``G`` the last ``m`` gradients (one per step, a ring buffer), each step replaces the
    oldest by ``g = grad + weight_decay * w`` and moves along the matrix-free
    inverse-Fisher-vector product:

    $$
    F = \lambda I + \tfrac{1}{m} G^\top G,\qquad
    u = F^{-1} g = \tfrac{1}{\lambda}\big(g - G^\top (G G^\top + m\lambda I)^{-1} G g\big),\qquad
    v \leftarrow \mu v + (1-\mu) u,\qquad w \leftarrow w - \eta\, v.
    $$

    Args:
        params: parameters or parameter groups (``lr``, ``momentum`` and ``weight_decay`` may
            differ per group; the Fisher spans every parameter).
        lr: the step size ``eta`` (the authors' default 1e-3).
        momentum: ``mu`` of ``v = mu v + (1 - mu) u``, in ``[0, 1)`` (0: no momentum).
        weight_decay: coupled L2 decay, added to the gradient before preconditioning.
        ngrads: the window size ``m`` (the authors' default 1024).
        damp: the dampening ``lambda > 0`` (the authors' default 1e-5).

    Example:
        >>> import torch
        >>> from zoo.optim.mfac import MFAC
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -1.0]))
        >>> opt = MFAC([w], lr=0.1, ngrads=4, damp=1e-2)
        >>> loss = (w ** 2).sum()
        >>> loss.backward()
        >>> opt.step()
        >>> bool((w.detach().abs() < torch.tensor([3.0, 1.0])).all())
        True

    References:
        Frantar, Kurtic, Alistarh. M-FAC: Efficient Matrix-Free Approximations of Second-Order
        Information. NeurIPS 2021. https://arxiv.org/abs/2107.03356
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        ngrads: int = 1024,
        damp: float = 1e-5,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate {lr}: must be >= 0")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"invalid momentum {momentum}: must be in [0, 1)")
        if not weight_decay >= 0.0:
            raise ValueError(f"invalid weight_decay {weight_decay}: must be >= 0")
        if int(ngrads) < 1:
            raise ValueError(f"invalid ngrads {ngrads}: must be >= 1")
        if not damp > 0.0:
            raise ValueError(f"invalid damp {damp}: must be > 0")
        self.ngrads, self.damp = int(ngrads), float(damp)
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    # ------------------------------------------------------------------ window
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _anchor_state(self) -> dict[str, Any]:
        """The state holding the window's ``G G^T`` and ring index (the first parameter's)."""
        anchor = self._params()[0]
        state = self.state[anchor]
        if "dots" not in state:
            state["dots"] = torch.zeros(self.ngrads, self.ngrads, dtype=torch.float64, device=anchor.device)
            state["slot"] = 0
        return state

    def _window(self, p: Tensor) -> Tensor:
        state = self.state[p]
        if "window" not in state:
            state["window"] = torch.zeros(self.ngrads, p.numel(), dtype=p.dtype, device=p.device)
        return state["window"]

    def _coefficients(self, gx: Tensor) -> Tensor:
        """``(G G^T + m lambda I)^-1 (G x)``, float64, by a Cholesky factorisation."""
        dots = self._anchor_state()["dots"]
        m = self.ngrads
        kernel = dots + (m * self.damp) * torch.eye(m, dtype=torch.float64, device=dots.device)
        chol = torch.linalg.cholesky(kernel)
        return torch.cholesky_solve(gx.reshape(m, 1), chol).reshape(m)

    @torch.no_grad()
    def inverse_fisher_product(self, xs: list[Tensor]) -> list[Tensor]:
        """``F^-1 x`` for the current window; ``xs`` holds one tensor per parameter, in group order.

        Parameters that never had a gradient have zero columns in ``G``. The result is in each
        parameter's dtype; the ``m x m`` algebra runs in float64.
        """
        params = self._params()
        if len(xs) != len(params):
            raise ValueError(f"expected {len(params)} tensors (one per parameter), got {len(xs)}")
        state = self._anchor_state()
        gx = torch.zeros(self.ngrads, dtype=torch.float64, device=state["dots"].device)
        for p, x in zip(params, xs):
            gx += (self._window(p) @ x.reshape(-1)).to(gx)
        coef = self._coefficients(gx)
        out = []
        for p, x in zip(params, xs):
            w = self._window(p)
            corr = w.T @ coef.to(w)  # G^T (G G^T + m lambda I)^-1 G x
            out.append(((x.reshape(-1) - corr) / self.damp).reshape(p.shape))
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; ``G G^T`` stays float64 (torch would cast it to the parameter's dtype)."""
        dots = [v["dots"] for v in state_dict["state"].values() if "dots" in v]
        super().load_state_dict(state_dict)
        if dots:
            anchor = self._params()[0]
            self.state[anchor]["dots"] = dots[0].detach().clone().to(device=anchor.device, dtype=torch.float64)

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One M-FAC step; ``closure`` (optional) recomputes the loss and gradients first."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        if not params:
            return loss
        state0 = self._anchor_state()
        slot = int(state0["slot"])
        dots = state0["dots"]
        # 1. the new gradient g (with coupled weight decay) replaces row `slot` of G
        gs: list[Tensor | None] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    gs.append(None)
                    if "window" in self.state[p]:
                        self.state[p]["window"][slot].zero_()
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("MFAC does not support sparse gradients")
                g = p.grad.reshape(-1)
                if group["weight_decay"] != 0:
                    g = g.add(p.reshape(-1), alpha=group["weight_decay"])
                self._window(p)[slot].copy_(g)
                gs.append(g)
        if all(g is None for g in gs):
            return loss
        # 2. the new row (and column) of G G^T: O(dm)
        row = torch.zeros(self.ngrads, dtype=torch.float64, device=dots.device)
        for p, g in zip(params, gs):
            if g is not None:
                row += (self._window(p) @ g).to(row)
        dots[slot, :] = row
        dots[:, slot] = row
        state0["slot"] = (slot + 1) % self.ngrads
        # 3. u = F^-1 g = (g - G^T (G G^T + m lambda I)^-1 G g) / lambda; here G g = row
        coef = self._coefficients(row)
        # 4. momentum and the step, per group
        i = 0
        for group in self.param_groups:
            mu, lr = group["momentum"], group["lr"]
            for p in group["params"]:
                g = gs[i]
                i += 1
                if g is None:
                    continue
                w = self._window(p)
                u = (g - w.T @ coef.to(w)) / self.damp
                if mu > 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(u)
                    buf = state["momentum_buffer"]
                    buf.mul_(mu).add_(u, alpha=1.0 - mu)
                    u = buf
                p.add_(u.reshape(p.shape), alpha=-lr)
        return loss


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(
        name="mfac", cls=MFAC, paper="mfac_matrix_free_second_order", reference=None,
        test_kwargs={"lr": 0.1, "ngrads": 8, "damp": 1.0},
        description=(MFAC.__doc__ or "").strip().splitlines()[0]))


_register()
