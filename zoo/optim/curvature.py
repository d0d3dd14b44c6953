"""Curvature probes: Hessian-vector products and the top Hessian eigenvalue by Lanczos.

The sharpness measure of the SAM and SAF reproductions is ``lambda_max``, the largest eigenvalue of
the Hessian of the training loss with respect to every parameter, at the final weights, on one
fixed batch (Foret et al. 2021, Sec. 4 / Fig. 3, computed there by power iteration / Lanczos;
Du et al. 2022, Sec. 5). It needs only Hessian-vector products, by double back-propagation
(Pearlmutter's trick)::

    H v = d/dw (grad L(w) . v)                                          (one HVP)

:func:`top_hessian_eigenvalue` runs ``k`` steps of the Lanczos iteration from a seeded random
start, with full re-orthogonalisation (``k`` is small: tens of vectors of the model's size), and
returns the largest eigenvalue of the ``k x k`` tridiagonal matrix ``T_k``. The Ritz values of
``T_k`` converge to the extreme eigenvalues of ``H`` much faster than power iteration does, and
the largest one is a lower bound on ``lambda_max`` that is exact once ``k`` reaches the number of
distinct eigenvalues (``tests/optim/test_curvature.py`` checks it against an explicit Hessian).

Notation: ``loss_fn`` -> ``L`` (a closure with no arguments, so the batch is fixed by the caller),
``params`` -> ``w``, ``iters`` -> ``k``, ``alpha``/``beta`` -> the diagonal and off-diagonal of
``T_k``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["hvp", "top_hessian_eigenvalue"]


def _flat(ts: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _split(v: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for p in like:
        out.append(v[i : i + p.numel()].view_as(p))
        i += p.numel()
    return out


def hvp(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], v: torch.Tensor) -> torch.Tensor:
    """``H v`` for the Hessian ``H`` of ``loss_fn()`` in ``params`` (flattened, concatenated).

    Args:
        loss_fn: Recomputes the scalar loss (on a fixed batch) from the current ``params``.
        params: The tensors ``w`` (each ``requires_grad``).
        v: A flat vector with ``sum(p.numel())`` entries, in ``params`` order.

    Returns:
        The flat vector ``H v`` (same dtype and device as the parameters).
    """
    with torch.enable_grad():
        loss = loss_fn()
        grads = torch.autograd.grad(loss, list(params), create_graph=True)
        dot = (_flat(grads) * v).sum()  # grad L(w) . v
        hv = torch.autograd.grad(dot, list(params))
    return _flat(hv).detach()


def top_hessian_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                           iters: int = 20, seed: int = 0) -> float:
    """``lambda_max`` of the Hessian of ``loss_fn()`` in ``params``, by ``iters`` Lanczos steps.

    ```text
    q_1 = z / ||z||,  z ~ N(0, I) (seeded)
    for j = 1..k:   w = H q_j - beta_{j-1} q_{j-1};  alpha_j = q_j . w;  w -= alpha_j q_j
                    w -= Q_j (Q_j^T w)              (full re-orthogonalisation)
                    beta_j = ||w||;  q_{j+1} = w / beta_j
    lambda_max ~ the largest eigenvalue of T_k = tridiag(beta, alpha, beta)
    ```

    Stops early (exactly) when ``beta_j`` vanishes: the Krylov space is then invariant.

    Args:
        loss_fn: Recomputes the scalar loss on a fixed batch (no randomness inside).
        params: The parameters ``w``; their ``.grad`` is left untouched.
        iters: Lanczos steps ``k`` (HVPs); capped at the number of parameters.
        seed: Seeds the start vector (a CPU generator, the same on every device).

    Returns:
        The largest Ritz value, a float (a lower bound on ``lambda_max``, tight for large ``k``).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("top_hessian_eigenvalue: no parameter requires grad")
    n = sum(p.numel() for p in params)
    k = max(1, min(int(iters), n))
    dtype, device = params[0].dtype, params[0].device
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    q = q / torch.linalg.vector_norm(q)
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    q_prev = torch.zeros_like(q)
    beta = 0.0
    for j in range(k):
        w = hvp(loss_fn, params, q) - beta * q_prev
        alpha = float(torch.dot(w, q))
        alphas.append(alpha)
        w = w - alpha * q
        qs = torch.stack(basis)  # full re-orthogonalisation against every previous q
        w = w - qs.T @ (qs @ w)
        beta = float(torch.linalg.vector_norm(w))
        if j == k - 1 or beta <= 1e-10 * max(1.0, abs(alpha)):
            break
        betas.append(beta)
        q_prev, q = q, w / beta
        basis.append(q)
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    return float(torch.linalg.eigvalsh(t)[-1])
