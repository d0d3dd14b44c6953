"""Exact learning dynamics of deep linear networks.

Andrew M. Saxe, James L. McClelland, Surya Ganguli. "Exact solutions to the nonlinear dynamics of
learning in deep linear neural networks", ICLR 2014. https://arxiv.org/abs/1312.6120

Setting. A linear network ``y_hat = W_D ... W_1 x`` (``D`` weight layers; the paper counts
``N_l = D + 1`` layers of units) is trained on ``1/2 E||y - y_hat||^2`` by gradient flow with time
constant ``tau = 1/lambda`` (``lambda`` the learning rate: one full-batch gradient step of size
``lambda`` advances time by one unit when ``tau = 1``). The inputs are whitened, ``Sigma11 =
E[x x^T] = I``, and the input-output correlation has the singular value decomposition

    Sigma31 = E[y x^T] = U S V^T = sum_a s_a u_a v_a^T.

Two weight layers (the paper's "three-layer network", Sec. 1):

    tau dW1/dt = W2^T (Sigma31 - W2 W1 Sigma11),     tau dW2/dt = (Sigma31 - W2 W1 Sigma11) W1^T.

From decoupled, balanced initial weights ``W1 = sum_a a r_a v_a^T``, ``W2 = sum_a a u_a r_a^T``
(orthonormal hidden directions ``r_a``) every mode keeps this form and its strength
``u = u_a^T W2 W1 v_a = a^2`` obeys ``tau du/dt = 2 u (s - u)``, solved by the sigmoid

    u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0)                     (mode_strength)

so the time to grow from ``u0`` to ``uf`` is

    t(u0 -> uf) = tau / (2s) ln[ uf (s - u0) / (u0 (s - uf)) ]          (learning_time)

which from ``eps`` to ``s - eps`` is about ``(tau/s) ln(s/eps)``: stronger modes are learned
faster, in a time inversely proportional to their singular value.

``D`` weight layers (Sec. 3): with decoupled balanced weights every layer contributes the same
scalar ``a`` per mode, ``u = a^D`` and

    tau du/dt = D u^{2 - 2/D} (s - u),      t(u0 -> uf) = (tau/D) int_{u0}^{uf} du / (u^{2-2/D} (s - u)).

We evaluate this integral in the variable ``w = ln(u / (s - u))``, where it reads
``dt/dw = tau / (D s) * u^{2/D - 1}`` with ``u = s sigmoid(w)``: a smooth integrand on an unbounded
interval, where ``D = 2`` gives ``w`` linear in ``t`` (the sigmoid above).

Small random initial weights (two layers). Our addition, not the paper's, for comparing a randomly
initialised network with the formula: linearising the flow at small weights, the hidden vectors
``a = W1 v_a`` and ``b = W2^T u_a`` of a mode obey ``tau da/dt = s b``, ``tau db/dt = s a``, so
``c = (a + b)/2`` grows like ``e^{st/tau}`` and ``d = (a - b)/2`` decays like ``e^{-st/tau}``, while
``u = a . b = |c|^2 - |d|^2``. The surviving part matches the sigmoid with ``u0 = |c(0)|^2``
(:func:`effective_initial_strength`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "Teacher",
    "DeepLinearNet",
    "mode_strength",
    "mode_strength_deep",
    "mode_velocity",
    "learning_time",
    "approximate_learning_time",
    "random_orthogonal",
    "teacher_correlation",
    "whitened_inputs",
    "end_to_end",
    "mode_strengths",
    "decoupled_init",
    "effective_initial_strength",
    "first_crossing_time",
]

Number = float | Tensor


def _as_tensors(*xs: Number) -> list[Tensor]:
    """Tensors of one floating dtype (float64 unless a floating tensor is given) and device."""
    like = next((x for x in xs if isinstance(x, Tensor)), None)
    dtype = like.dtype if like is not None and like.is_floating_point() else torch.float64
    device = like.device if like is not None else None
    return [torch.as_tensor(x, dtype=dtype, device=device) for x in xs]


def _check_depth(depth: int) -> None:
    if depth < 1:
        raise ValueError(f"depth (number of weight layers) must be >= 1, got {depth}")


# --------------------------------------------------------------------------- analytic dynamics


def mode_strength(t: Number, s: Number, u0: Number, tau: float = 1.0) -> Tensor:
    """Closed-form strength of one mode of a two-layer linear net at time ``t`` (broadcasts).

    ``u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0)``, evaluated as
    ``s / (1 + (s/u0 - 1) e^{-2st/tau})`` so that large ``t`` cannot overflow.
    Requires ``s > 0`` and ``u0 > 0``.
    """
    t, s, u0 = _as_tensors(t, s, u0)
    if (s <= 0).any() or (u0 <= 0).any():
        raise ValueError("mode_strength needs s > 0 and u0 > 0")
    return s / (1.0 + (s / u0 - 1.0) * torch.exp(-2.0 * s * t / tau))


def mode_velocity(u: Number, s: Number, depth: int = 2, tau: float = 1.0) -> Tensor:
    """``du/dt = (D / tau) u^{2 - 2/D} (s - u)``: the balanced mode ODE of a depth-``D`` linear net."""
    _check_depth(depth)
    u, s = _as_tensors(u, s)
    return depth / tau * u.pow(2.0 - 2.0 / depth) * (s - u)


def _logit_strength(u: Tensor, s: Tensor) -> Tensor:
    return torch.log(u) - torch.log(s - u)


def _dt_dw(w: Tensor, s: Tensor, depth: int, tau: float) -> Tensor:
    """``dt/dw = tau/(D s) u^{2/D - 1}`` with ``u = s sigmoid(w)``; the log form avoids underflow."""
    log_u = torch.log(s) + torch.nn.functional.logsigmoid(w)
    return tau / (depth * s) * torch.exp((2.0 / depth - 1.0) * log_u)


def learning_time(
    s: Number, u0: Number, uf: Number, tau: float = 1.0, depth: int = 2, grid: int = 4097
) -> Tensor:
    """Time for a mode to go from strength ``u0`` to ``uf`` (both in ``(0, s)``; broadcasts).

    ``depth = 2``: ``tau/(2s) ln[uf (s - u0) / (u0 (s - uf))]`` exactly. Deeper: the paper's integral
    ``(tau/D) int du / (u^{2-2/D} (s - u))`` by Simpson's rule on ``grid`` points in
    ``w = ln(u/(s - u))`` (see the module docstring).
    """
    _check_depth(depth)
    s, u0, uf = _as_tensors(s, u0, uf)
    if ((u0 <= 0) | (u0 >= s) | (uf <= 0) | (uf >= s)).any():
        raise ValueError("learning_time needs 0 < u0 < s and 0 < uf < s")
    if depth == 2:
        return tau / (2.0 * s) * torch.log(uf * (s - u0) / (u0 * (s - uf)))
    if grid < 3 or grid % 2 == 0:
        raise ValueError("Simpson's rule needs an odd grid of at least 3 points")
    s, u0, uf = torch.broadcast_tensors(s, u0, uf)
    w0, wf = _logit_strength(u0, s), _logit_strength(uf, s)
    frac = torch.linspace(0.0, 1.0, grid, dtype=s.dtype, device=s.device)
    w = w0.unsqueeze(-1) + (wf - w0).unsqueeze(-1) * frac
    f = _dt_dw(w, s.unsqueeze(-1), depth, tau)
    weights = torch.ones(grid, dtype=s.dtype, device=s.device)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return (f * weights).sum(-1) * (wf - w0) / (3.0 * (grid - 1))


def approximate_learning_time(s: Number, eps: Number, tau: float = 1.0) -> Tensor:
    """The paper's rule of thumb ``(tau/s) ln(s/eps)``: time from ``eps`` to ``s - eps`` (two layers)."""
    s, eps = _as_tensors(s, eps)
    return tau / s * torch.log(s / eps)


def mode_strength_deep(
    t: Number, s: Number, u0: Number, depth: int, tau: float = 1.0, grid: int = 32769, w_end: float = 40.0
) -> Tensor:
    """Strength ``u(t)`` of modes of a depth-``D`` net from decoupled balanced weights.

    ``t`` holds times (1-D, any order); ``s`` and ``u0`` are per mode (scalars or 1-D, broadcast);
    the result has shape ``(len(t), n_modes)``. ``depth = 2`` uses the closed form; deeper nets
    tabulate ``t(w)`` (cumulative trapezoid of ``dt/dw`` on ``grid`` points from
    ``w0 = ln(u0/(s-u0))`` to ``w_end``, where ``u = s`` to double precision) and invert it by
    linear interpolation. Requires ``0 < u0 < s``.
    """
    _check_depth(depth)
    t, s, u0 = _as_tensors(t, s, u0)
    t = t.reshape(-1)
    s, u0 = (x.reshape(-1) for x in torch.broadcast_tensors(s, u0))
    if ((u0 <= 0) | (u0 >= s)).any():
        raise ValueError("mode_strength_deep needs 0 < u0 < s")
    if depth == 2:
        return mode_strength(t.unsqueeze(-1), s, u0, tau)
    w0 = _logit_strength(u0, s)
    frac = torch.linspace(0.0, 1.0, grid, dtype=s.dtype, device=s.device)
    w = w0.unsqueeze(-1) + (w_end - w0).unsqueeze(-1) * frac  # (modes, grid)
    f = _dt_dw(w, s.unsqueeze(-1), depth, tau)
    dw = (w[:, 1:] - w[:, :-1])
    times = torch.cat([torch.zeros_like(w0).unsqueeze(-1), torch.cumsum(0.5 * (f[:, 1:] + f[:, :-1]) * dw, -1)], -1)
    query = t.unsqueeze(0).expand(len(s), -1).contiguous()
    hi = torch.searchsorted(times, query).clamp(1, grid - 1)
    t_lo, t_hi = times.gather(1, hi - 1), times.gather(1, hi)
    w_lo, w_hi = w.gather(1, hi - 1), w.gather(1, hi)
    frac_q = ((query - t_lo) / (t_hi - t_lo)).clamp(0.0, 1.0)  # beyond the table: u = s
    w_q = w_lo + frac_q * (w_hi - w_lo)
    return (s.unsqueeze(-1) * torch.sigmoid(w_q)).T


# --------------------------------------------------------------------------- problem construction


@dataclass(frozen=True)
class Teacher:
    """An input-output correlation ``sigma31 = U diag(s) V^T`` with orthonormal columns ``U, V``."""

    sigma31: Tensor  # (n_out, n_in)
    U: Tensor  # (n_out, modes)
    s: Tensor  # (modes,)
    V: Tensor  # (n_in, modes)


def random_orthogonal(
    n: int, k: int | None = None, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """``(n, k)`` matrix with orthonormal columns, Haar distributed (QR of a Gaussian, signs fixed)."""
    k = n if k is None else k
    if k > n:
        raise ValueError(f"cannot have {k} orthonormal columns in dimension {n}")
    q, r = torch.linalg.qr(torch.randn(n, k, generator=generator, dtype=dtype))
    # Without the sign correction QR's convention would bias the distribution.
    return q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)


def teacher_correlation(
    singular_values: Sequence[float] | Tensor,
    n_out: int,
    n_in: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Teacher:
    """A teacher ``Sigma31`` with the given singular values and random orthonormal singular vectors."""
    s = torch.as_tensor(singular_values, dtype=dtype)
    m = s.numel()
    if m > min(n_out, n_in):
        raise ValueError(f"{m} singular values do not fit a {n_out}x{n_in} matrix")
    U = random_orthogonal(n_out, m, generator, dtype)
    V = random_orthogonal(n_in, m, generator, dtype)
    return Teacher(U @ torch.diag(s) @ V.T, U, s, V)


def whitened_inputs(
    n_samples: int, n_in: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Inputs ``X`` (``n_samples x n_in``) with ``X^T X / n_samples = I`` exactly (whitened)."""
    if n_samples < n_in:
        raise ValueError(f"whitening {n_in} features needs at least {n_in} samples, got {n_samples}")
    return random_orthogonal(n_samples, n_in, generator, dtype) * n_samples**0.5


# --------------------------------------------------------------------------- networks and measurements


def end_to_end(weights: Sequence[Tensor]) -> Tensor:
    """The composite map ``W_D ... W_1`` of a list ``[W_1, ..., W_D]`` (leading batch dims allowed)."""
    out = weights[0]
    for w in weights[1:]:
        out = w @ out
    return out


def mode_strengths(W: Tensor, U: Tensor, V: Tensor) -> Tensor:
    """``diag(U^T W V)``: how strongly the map ``W`` expresses each teacher mode ``(u_a, v_a)``.

    ``W`` is ``(..., n_out, n_in)``, ``U`` ``(..., n_out, m)``, ``V`` ``(..., n_in, m)``; returns ``(..., m)``.
    """
    return (U * (W @ V)).sum(-2)


def decoupled_init(
    U: Tensor,
    V: Tensor,
    hidden: Sequence[int],
    u0: Number,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Decoupled, balanced weights ``[W_1, ..., W_D]`` (``D = len(hidden) + 1``) giving each mode strength ``u0``.

    Each hidden layer ``l`` gets random orthonormal directions ``R_l`` (one per mode) and every layer
    scales mode ``a`` by ``u0_a^{1/D}``: ``W_1 = R_1 A V^T``, ``W_l = R_l A R_{l-1}^T``,
    ``W_D = U A R_{D-1}^T``, so ``W_D ... W_1 = U diag(u0) V^T``. Gradient flow keeps this form.
    """
    depth = len(hidden) + 1
    m = U.shape[-1]
    (u0,) = _as_tensors(u0)
    a = torch.diag(torch.broadcast_to(u0.to(device=U.device, dtype=U.dtype), (m,)).pow(1.0 / depth))
    left = [random_orthogonal(h, m, generator, U.dtype).to(U.device) for h in hidden] + [U]
    right = V
    weights = []
    for L in left:
        weights.append(L @ a @ right.T)
        right = L
    return weights


def effective_initial_strength(W1: Tensor, W2: Tensor, U: Tensor, V: Tensor) -> Tensor:
    """``|c_a|^2`` with ``c_a = (W1 v_a + W2^T u_a)/2``: the sigmoid's ``u0`` for small random weights.

    The growing part of the linearised two-layer flow (module docstring). Shapes as in
    :func:`mode_strengths` with ``W1`` ``(..., hidden, n_in)`` and ``W2`` ``(..., n_out, hidden)``.
    """
    c = 0.5 * (W1 @ V + W2.transpose(-1, -2) @ U)  # (..., hidden, m)
    return c.pow(2).sum(-2)


def first_crossing_time(t: Tensor, u: Tensor, level: Tensor | float) -> Tensor:
    """First time ``u`` reaches ``level``, linearly interpolated between samples; NaN if never.

    ``t`` is ``(T,)`` increasing, ``u`` is ``(T, ...)`` and ``level`` broadcasts to ``u.shape[1:]``.
    """
    level = torch.as_tensor(level, dtype=u.dtype, device=u.device).expand(u.shape[1:])
    above = u >= level
    idx = above.to(torch.uint8).argmax(0)  # first True (0 when never: masked below)
    prev = (idx - 1).clamp(min=0)
    u_hi, u_lo = u.gather(0, idx.unsqueeze(0))[0], u.gather(0, prev.unsqueeze(0))[0]
    t_hi, t_lo = t[idx], t[prev]
    frac = torch.where(u_hi > u_lo, (level - u_lo) / (u_hi - u_lo), torch.ones_like(u_hi))
    out = t_lo + frac.clamp(0.0, 1.0) * (t_hi - t_lo)
    return torch.where(above.any(0), out, torch.full_like(out, float("nan")))


class DeepLinearNet(nn.Module):
    """``y = W_D ... W_1 x`` without biases, as ``copies`` independent networks evaluated at once.

    Weights have shape ``(copies, out, in)``; inputs ``(..., copies, in)`` give outputs
    ``(..., copies, out)``, so a loss summed over copies trains each copy on its own data (e.g. one
    copy per seed). Initial entries are ``N(0, init_std^2)``, drawn on the CPU from ``generator``.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        copies: int = 1,
        init_std: float = 0.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("sizes needs at least an input and an output width")
        self.sizes = tuple(int(n) for n in sizes)
        self.copies = copies
        self.weights = nn.ParameterList(
            nn.Parameter((init_std * torch.randn(copies, o, i, generator=generator, dtype=dtype)).to(device))
            for i, o in zip(self.sizes[:-1], self.sizes[1:])
        )

    @property
    def depth(self) -> int:
        return len(self.weights)

    def forward(self, x: Tensor) -> Tensor:
        # (..., copies, in) -> (copies, ..., in): one batched matmul per layer.
        h = x.movedim(-2, 0)
        for w in self.weights:
            h = h @ w.mT if h.ndim == 3 else torch.einsum("coi,c...i->c...o", w, h)
        return h.movedim(0, -2)

    def end_to_end(self) -> Tensor:
        """``W_D ... W_1`` per copy, ``(copies, out, in)``."""
        return end_to_end(list(self.weights))

    @torch.no_grad()
    def load_weights(self, weights: Sequence[Tensor]) -> None:
        """Overwrite the weights with ``[W_1, ..., W_D]``, each ``(copies, out, in)``."""
        if len(weights) != self.depth:
            raise ValueError(f"expected {self.depth} weight matrices, got {len(weights)}")
        for p, w in zip(self.weights, weights):
            p.copy_(w)
