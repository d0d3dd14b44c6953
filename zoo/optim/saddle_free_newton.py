"""Saddle-free Newton in a Krylov subspace: Newton's step with ``|H|`` in place of ``H``.

Yann Dauphin, Razvan Pascanu, Caglar Gulcehre, Kyunghyun Cho, Surya Ganguli, Yoshua Bengio. *On
the saddle point problem for non-convex optimization* / *Identifying and attacking the saddle
point problem in high-dimensional non-convex optimization*. NIPS 2014.
https://arxiv.org/abs/1406.2572 (no code of the authors is published for it; written from the
paper).

Notation (code name: paper symbol): ``krylov_dim``: ``k``, the dimension of the subspace;
``V`` (``k x d``): the orthonormal Krylov basis; ``T = V H V^T``: the Hessian in the subspace
(``H^`` in Algorithm 1); ``dampings``: the candidate values of ``lambda``; ``inner_steps``: ``m``,
the inner iterations that reuse one subspace; ``lr``: a multiplier of the step (1 in the paper).

**The saddle-free Newton step.** Newton's step ``-H^-1 g`` rescales the gradient by
the inverse curvature along every eigenvector of ``H``: along a negative eigenvalue it moves
*against* the descent direction, so Newton is attracted to saddle points. Minimising the first
order model inside a trust region measured by the second order term gives instead::

    dtheta = -|H|^-1 g,       |H| = sum_i |lambda_i| e_i e_i^T

which keeps Newton's per-direction step sizes and always descends, moving away from a saddle along
its negative-curvature directions.

**The Krylov approximation** (Algorithm 1, "approximate saddle-free Newton"): with ``k``
Lanczos iterations from the gradient, ``V`` spans ``{g, H g, ..., H^(k-1) g}``, the subspace of
the extreme eigenvalues; in it::

    f^(alpha) = f(theta + alpha V),         grad: V g,   Hessian: T = V H V^T
    |T| = U |Mu| U^T                        (T = U Mu U^T, its eigendecomposition)
    repeat m times:
        g^  = V grad f(theta)
        lambda* = argmin_lambda f(theta - V^T (|T| + lambda I)^-1 g^)     (line search)
        theta <- theta - lr V^T (|T| + lambda* I)^-1 g^

``absolute=False`` gives the damped Newton baseline of the paper's experiments, the same
algorithm with ``T`` in place of ``|T|`` (a direction with ``mu + lambda < 0`` is then climbed,
which is Newton's attraction to saddles).

**Hessian-vector products.** ``step(closure)`` needs a closure that zeroes the gradients,
computes the loss and back-propagates it. Two ways to get ``H v``:

* exact (R-operator, as in the paper), when the closure back-propagates with
  ``loss.backward(create_graph=True)``: the gradients then carry their graph and
  ``H v = d<g, v>/dtheta`` costs one double-backward pass;
* central finite differences of the gradient when they do not (the shared training loop of
  ``zoo.training`` calls plain ``backward()``): ``H v ~ (g(theta + eps v) - g(theta - eps v))
  / (2 eps)``, two closure calls per product, ``eps = fd_eps * (1 + ||theta||)`` for the
  unit-norm Lanczos vectors ``v``. ``hvp="auto"`` (default) picks the exact products whenever the
  gradients carry a graph.

Every closure call (finite differences, line search, inner steps) counts as a gradient
evaluation where the caller counts them. Per step: 1 gradient + ``k`` Hessian-vector products (exact:
``k`` double-backward passes; finite differences: ``2 k`` closure calls) + one closure
call per damping candidate when there are several + ``(m - 1)`` extra gradients, each with its
line search. ``last_hvps`` holds the number of products of the last step.

Departures from the paper, and choices it leaves open:

* Lanczos keeps every vector and reorthogonalises fully (``k`` is small); ``T`` is the full
  projected matrix ``V (H V^T)`` symmetrised, not only the three diagonals (equal in exact
  arithmetic, more robust in float32); the iteration stops early when the Krylov space is
  exhausted (``beta < sqrt(machine eps) * ||T||``);
* the line search is over a fixed list of ``lambda`` values (the paper does not say how it
  searches) and picks the lowest loss of the closure's mini-batch; with one value there is no
  search;
* the subspace is built once per ``step`` from the closure's mini-batch; ``inner_steps`` > 1
  reuses it for further steps on the same closure (the paper's inner loop);
* ``lr`` multiplies the step (1 in the paper); the Ritz values of the last subspace are kept in
  ``last_ritz_values`` (their share of negatives estimates the index of the current point).

The gradient left in ``p.grad`` after ``step`` is the one at the starting point; parameters
without a gradient are not part of the subspace and never move.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["SaddleFreeNewton", "abs_eig_solve"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def abs_eig_solve(t: Tensor, g: Tensor, damping: float, absolute: bool = True) -> Tensor:
    """``(|T| + damping I)^-1 g`` (``absolute``) or ``(T + damping I)^-1 g``, by ``T``'s eigendecomposition."""
    mu, u = torch.linalg.eigh(t)
    scale = (mu.abs() if absolute else mu) + damping
    return u @ ((u.T @ g) / scale)


def _moved(start: list[Tensor], direction: list[Tensor], lrs: list[float]) -> list[Tensor]:
    """``start - lr * direction`` per tensor; a group with ``lr = 0`` stays exactly where it is."""
    return [s if lr == 0 else s - lr * d for s, d, lr in zip(start, direction, lrs)]


def _flat(ts: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _dot(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> Tensor:
    return sum((torch.dot(x.reshape(-1).double(), y.reshape(-1).double()) for x, y in zip(xs, ys)),
               torch.zeros((), dtype=torch.float64, device=xs[0].device))


class SaddleFreeNewton(Optimizer):
    r"""Saddle-free Newton (Dauphin et al., NIPS 2014), Krylov-subspace version (Algorithm 1).

    ``step(closure)`` is required. The closure must zero the gradients, compute the loss and
    call ``backward()``; with ``backward(create_graph=True)`` the Hessian-vector products are
    exact, otherwise central finite differences of the gradient (two closure calls each). In the
    ``k``-dimensional Lanczos subspace ``V`` of the Hessian started at the gradient, with
    ``T = V H V^\top = U M U^\top``:

    $$
    \Delta\theta = -\,\eta\, V^\top \big(|T| + \lambda I\big)^{-1} V g,\qquad |T| = U |M| U^\top,
    $$

    ``lambda`` chosen among ``dampings`` by the lowest closure loss (line search).

    Args:
        params: parameters or parameter groups (``lr`` may differ per group; the subspace spans
            every parameter with a gradient).
        lr: multiplier ``eta`` of the step (1 in the paper).
        krylov_dim: ``k``, the Lanczos iterations (the subspace dimension).
        dampings: candidate ``lambda`` values (> 0 when ``absolute``); the line search picks one.
        inner_steps: steps taken in one subspace (the paper's inner loop, ``m``).
        absolute: ``|T|`` (saddle-free Newton) or ``T`` (damped Newton, the paper's baseline).
        hvp: ``"auto"`` (exact when the gradients carry a graph), ``"exact"`` or ``"fd"``.
        fd_eps: relative step of the finite differences (``eps = fd_eps (1 + ||theta||)``);
            ``None``: the cube root of the machine epsilon of the parameters' dtype.

    Example:
        >>> import torch
        >>> from zoo.optim.saddle_free_newton import SaddleFreeNewton
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 1e-3], dtype=torch.float64))
        >>> opt = SaddleFreeNewton([w], krylov_dim=2, dampings=(1e-8,))
        >>> def closure():  # a saddle at 0: curvature +1 along w[0], -1 along w[1]
        ...     opt.zero_grad()
        ...     loss = 0.5 * w[0] ** 2 - 0.5 * w[1] ** 2
        ...     loss.backward(create_graph=True)
        ...     return loss
        >>> _ = opt.step(closure)  # w[0] -> 0 (Newton), w[1] doubles (away from the saddle)
        >>> print([round(v, 6) for v in w.tolist()])
        [0.0, 0.002]

    References:
        Dauphin, Pascanu, Gulcehre, Cho, Ganguli, Bengio. Identifying and attacking the saddle
        point problem in high-dimensional non-convex optimization. NIPS 2014.
        https://arxiv.org/abs/1406.2572
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        krylov_dim: int = 20,
        dampings: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0),
        inner_steps: int = 1,
        absolute: bool = True,
        hvp: str = "auto",
        fd_eps: float | None = None,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate {lr}: must be >= 0")
        if int(krylov_dim) < 1:
            raise ValueError(f"invalid krylov_dim {krylov_dim}: must be >= 1")
        dampings = tuple(float(v) for v in dampings)
        if not dampings or (absolute and not all(v > 0 for v in dampings)):
            raise ValueError(f"invalid dampings {dampings}: need at least one, each > 0 for saddle-free Newton")
        if int(inner_steps) < 1:
            raise ValueError(f"invalid inner_steps {inner_steps}: must be >= 1")
        if hvp not in ("auto", "exact", "fd"):
            raise ValueError(f"invalid hvp {hvp!r}: one of 'auto', 'exact', 'fd'")
        if fd_eps is not None and not fd_eps > 0:
            raise ValueError(f"invalid fd_eps {fd_eps}: must be > 0")
        self.krylov_dim, self.dampings, self.inner_steps = int(krylov_dim), dampings, int(inner_steps)
        self.absolute, self.hvp, self.fd_eps = bool(absolute), hvp, fd_eps
        self.last_ritz_values: Tensor | None = None
        self.last_damping: float | None = None
        self.last_hvps = 0  # Hessian-vector products of the last step (exact or finite differences)
        super().__init__(params, {"lr": lr})

    # ------------------------------------------------------------------ helpers
    def _active(self) -> list[tuple[Tensor, float]]:
        return [(p, g["lr"]) for g in self.param_groups for p in g["params"] if p.grad is not None]

    def _eval(self, closure: Callable[[], Any]) -> Any:
        with torch.enable_grad():
            return closure()

    def _grads_at(self, closure: Callable[[], Any], params: list[Tensor]) -> tuple[Any, list[Tensor]]:
        loss = self._eval(closure)
        return loss, [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]

    @staticmethod
    def _set(params: list[Tensor], values: list[Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(params, values):
                p.copy_(v)

    # ------------------------------------------------------------------ step
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One saddle-free Newton step (``inner_steps`` in one Krylov subspace); returns the loss at the start."""
        if closure is None:
            raise ValueError("SaddleFreeNewton needs step(closure): it evaluates gradients and Hessian-vector products")
        loss = self._eval(closure)
        active = self._active()
        if not active:
            return loss
        params = [p for p, _ in active]
        lrs = [lr for _, lr in active]
        raw = [p.grad for p in params]
        exact = self.hvp == "exact" or (self.hvp == "auto" and all(g.requires_grad for g in raw))
        if self.hvp == "exact" and not all(g.requires_grad for g in raw):
            raise RuntimeError("hvp='exact' needs a closure that calls loss.backward(create_graph=True)")
        grad0 = [g.detach().clone() for g in raw]
        theta0 = [p.detach().clone() for p in params]
        dtype = params[0].dtype

        if exact:
            def hvp(v: list[Tensor]) -> list[Tensor]:
                hv = torch.autograd.grad(raw, params, grad_outputs=v, retain_graph=True, allow_unused=True)
                return [torch.zeros_like(p) if h is None else h.detach() for p, h in zip(params, hv)]
        else:
            rel = self.fd_eps if self.fd_eps is not None else torch.finfo(dtype).eps ** (1.0 / 3.0)
            eps = rel * (1.0 + math.sqrt(float(_dot(theta0, theta0))))

            def hvp(v: list[Tensor]) -> list[Tensor]:  # central differences; v has unit norm
                self._set(params, [t + eps * x for t, x in zip(theta0, v)])
                _, gp = self._grads_at(closure, params)
                self._set(params, [t - eps * x for t, x in zip(theta0, v)])
                _, gm = self._grads_at(closure, params)
                self._set(params, theta0)
                return [(a - b) / (2.0 * eps) for a, b in zip(gp, gm)]

        # Lanczos from the gradient, full reorthogonalisation: the rows of V, and H V^T
        shapes = [p.shape for p in params]
        sizes = [p.numel() for p in params]

        def unflat(v: Tensor) -> list[Tensor]:
            return [x.reshape(sh) for x, sh in zip(torch.split(v, sizes), shapes)]

        self.last_hvps = 0

        def flat_hvp(v: Tensor) -> Tensor:
            self.last_hvps += 1
            return _flat(hvp(unflat(v)))

        g_flat = _flat(grad0)
        basis, images = self._lanczos(g_flat, flat_hvp)
        if basis is None:  # a zero (or non-finite) gradient: nothing to do
            for p, g in zip(params, grad0):
                p.grad = g
            return loss
        t = basis.double() @ images.double().T
        t = 0.5 * (t + t.T)  # T = V H V^T
        self.last_ritz_values = torch.linalg.eigvalsh(t).cpu()
        if exact:
            del raw
            for p in params:  # drop the graph held by the gradients
                p.grad = None

        grad = g_flat
        for inner in range(self.inner_steps):
            if inner > 0:
                _, gs = self._grads_at(closure, params)
                grad = _flat(gs)
            g_hat = basis.double() @ grad.double()  # V g
            start = [p.detach().clone() for p in params]
            cands = []
            for lam in self.dampings:
                coef = abs_eig_solve(t, g_hat, lam, self.absolute)  # (|T| + lambda I)^-1 V g
                cands.append((lam, unflat((coef.to(basis) @ basis))))  # V^T (...)
            if len(cands) == 1:
                lam, direction = cands[0]
            else:
                scores = []
                for lam, direction in cands:
                    self._set(params, _moved(start, direction, lrs))
                    value = float(torch.as_tensor(self._eval(closure)).detach())
                    scores.append(value if math.isfinite(value) else math.inf)
                lam, direction = cands[min(range(len(cands)), key=lambda i: (scores[i], i))]
            self._set(params, _moved(start, direction, lrs))
            self.last_damping = lam
        for p, g in zip(params, grad0):  # the gradient at the starting point, as after a plain step
            p.grad = g
        for group in self.param_groups:
            group["step"] = group.get("step", 0) + 1
        return loss

    def _lanczos(self, g: Tensor, hvp: Callable[[Tensor], Tensor]) -> tuple[Tensor | None, Tensor]:
        """The Krylov basis ``V`` (rows, orthonormal) from ``g`` and the products ``H V^T`` (rows)."""
        norm = float(g.double().norm())
        if norm == 0.0 or not math.isfinite(norm):
            return None, g
        k = min(self.krylov_dim, g.numel())
        tol = math.sqrt(torch.finfo(g.dtype).eps)
        basis = [g / norm]
        images: list[Tensor] = []
        scale = 0.0
        for j in range(k):
            hv = hvp(basis[j])
            images.append(hv)
            if j + 1 == k:
                break
            v = torch.stack(basis)
            r = hv - v.T @ (v @ hv)
            r = r - v.T @ (v @ r)  # full reorthogonalisation, twice ("twice is enough")
            beta = float(r.double().norm())
            scale = max(scale, float(hv.double().norm()))
            if not beta > tol * max(scale, 1e-30):
                break  # the Krylov space is exhausted
            basis.append(r / beta)
        return torch.stack(basis), torch.stack(images)


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(
        name="saddle_free_newton", cls=SaddleFreeNewton, paper="saddle_free_newton", reference=None,
        needs_closure=True, test_kwargs={"krylov_dim": 4, "dampings": (1e-2, 1e-1), "lr": 0.5},
        description=(SaddleFreeNewton.__doc__ or "").strip().splitlines()[0]))


_register()
