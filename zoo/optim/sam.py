"""SAM: sharpness-aware minimization, wrapped around any ``torch.optim`` optimizer.

Pierre Foret, Ariel Kleiner, Hossein Mobahi, Behnam Neyshabur. *Sharpness-Aware Minimization for
Efficiently Improving Generalization*. ICLR 2021. https://arxiv.org/abs/2010.01412 (authors' JAX
code: https://github.com/google-research/sam). The adaptive variant is ASAM: Jungmin Kwon, Jeongseop
Kim, Hyunseo Park, In Kwon Choi. *ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant
Learning of Deep Neural Networks*. ICML 2021. https://arxiv.org/abs/2102.11600.

SAM minimises ``max_{||eps||_2 <= rho} L(w + eps)``. A first-order expansion of the inner problem
gives its maximiser in closed form (the paper's Eq. 2 with p = 2), and dropping the second-order
term of the gradient of ``L(w + eps_hat(w))`` gives the update direction (Eq. 3):

    eps_hat(w) = rho * g / ||g||_2,              g = grad L(w)                    (Eq. 2)
    g_SAM      = grad L(w) |_{w + eps_hat(w)}                                       (Eq. 3)
    w          <- base_step(w, g_SAM)            (Algorithm 1: SGD, or any base)

With ``adaptive=True`` (ASAM, with ``T_w = |w|`` element-wise and no offset ``eta``)::

    eps_hat(w) = rho * T_w^2 g / ||T_w g||_2

Notation: ``rho`` -> ``rho`` (per param group), ``eps_hat`` -> the perturbation added in
`first_step()`, ``base_step`` -> ``base_optimizer.step()``. The norm is global over every
parameter of every group (one ``eps_hat`` for the whole ``w``, as in the paper); each group scales
it by its own ``rho`` and chooses ``adaptive`` for its own tensors.

Departures, each invisible at float64 resolution: ``||.||_2 + eps`` (``eps=1e-12``) in the
denominator guards a zero gradient (the paper divides by the bare norm); ASAM's ``eta`` is 0 (as in
the common PyTorch implementation, https://github.com/davda54/sam, and ``pytorch_optimizer``).
Matches ``pytorch_optimizer==4.1.0``'s ``SAM`` step by step (``tests/optim/test_sam.py``), which
accumulates the squared norm in float32; here it is accumulated in float64 for float64 gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["SAM"]


class SAM(torch.optim.Optimizer):
    r"""Sharpness-Aware Minimization (Foret et al., ICLR 2021) around a base optimizer.

    Each step costs two forward-backward passes. With ``g = grad L(w)``:

    ```text
    eps_hat = rho * g / (||g||_2 + eps)                        (Eq. 2; adaptive: rho T^2 g / ||T g||, T = |w|)
    w       <- w + eps_hat                                      first_step()
    g_SAM   = grad L(w + eps_hat)                               the second pass (Eq. 3)
    w       <- w - eps_hat; base_optimizer.step() with g_SAM    second_step()
    ```

    SAM shares its ``param_groups`` and ``state`` with ``base_optimizer``, so a learning-rate
    scheduler built on the SAM object drives the base learning rate, per-group options (``lr``,
    ``rho``, ``adaptive``, ``momentum``, ...) live in one place, and ``state_dict()`` holds the
    base optimizer's state (momentum buffers, Adam moments).

    **Use with a closure.** `step()` requires one; it must zero the gradients, recompute the loss
    and call ``backward()``. ``step`` calls it twice (at ``w``, then at ``w + eps_hat``) and returns
    the first loss, the loss at ``w``.

    **Driving the passes yourself** (e.g. to disable BatchNorm running statistics in the second):
    call ``backward()`` at ``w``, then ``first_step(zero_grad=True)``, ``backward()`` again, then
    ``second_step()``.

    **With ``torch.amp.GradScaler``.** ``GradScaler.step`` refuses closures, so drive the passes
    yourself. Unscale the first-pass gradients on the SAM object before `first_step()` (the
    direction ``g / ||g||`` does not depend on the scale, but ``unscale_`` records non-finite
    gradients for ``update()``); after the second backward, put ``w`` back with `restore()`
    and let the scaler step the *base* optimizer, which unscales the second-pass gradients and
    skips the step when they are not finite:

        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)                 # first pass, true scale; non-finite recorded
        opt.first_step(zero_grad=True)       # w -> w + eps_hat
        with torch.autocast("cuda", dtype=torch.float16):
            loss2 = loss_fn(model(x), y)
        scaler.scale(loss2).backward()       # second pass, at w + eps_hat
        opt.restore()                        # w + eps_hat -> w, before the base step
        scaler.step(opt.base_optimizer)      # unscales g_SAM; skipped if not finite
        scaler.update()
        opt.zero_grad()

    A non-finite first-pass gradient makes ``w + eps_hat`` non-finite, hence the second-pass
    gradient too: the scaler then skips the base step, `restore()` has already put ``w``
    back, and ``update()`` lowers the scale.

    Args:
        params: Parameters, or dicts defining parameter groups (which may set ``rho``,
            ``adaptive`` and any base-optimizer option).
        base_optimizer: The optimizer class that takes the step at ``w`` (default SGD); it is
            built as ``base_optimizer(self.param_groups, **base_kwargs)``.
        rho: Neighbourhood radius ``rho >= 0`` (the paper's default 0.05).
        adaptive: ASAM's element-wise scaling ``T_w = |w|``.
        eps: Added to the gradient norm to guard a zero gradient.
        **base_kwargs: Options of the base optimizer (``lr``, ``momentum``, ``weight_decay``, ...).

    Example:
        >>> import torch
        >>> from zoo.optim import SAM
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
        >>> x, y = torch.randn(16, 3), torch.randn(16, 1)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = torch.nn.functional.mse_loss(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> loss = opt.step(closure)    # two forward-backward passes, returns L(w)

    References:
        Foret, Kleiner, Mobahi, Neyshabur. Sharpness-Aware Minimization for Efficiently Improving
        Generalization. ICLR 2021. https://arxiv.org/abs/2010.01412. Kwon, Kim, Park, Choi. ASAM.
        ICML 2021. https://arxiv.org/abs/2102.11600.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        rho: float = 0.05,
        adaptive: bool = False,
        eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        if not rho >= 0.0:
            raise ValueError(f"SAM: rho must be >= 0, got {rho}")
        if not eps >= 0.0:
            raise ValueError(f"SAM: eps must be >= 0, got {eps}")
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise TypeError(f"SAM: base_optimizer must be a torch.optim.Optimizer class, got {base_optimizer!r}")
        self.eps = eps
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **base_kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self._share()
        self._w: dict[torch.Tensor, torch.Tensor] = {}  # w, saved by first_step for restore

    def _share(self) -> None:
        # One list of group dicts and one state for both objects.
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to SAM and to the base optimizer (they share the list)."""
        if not hasattr(self, "base_optimizer"):  # during __init__
            return super().add_param_group(param_group)
        for name in ("rho", "adaptive"):
            param_group.setdefault(name, self.defaults[name])
        self.base_optimizer.add_param_group(param_group)

    def _grad_norm(self) -> torch.Tensor:
        """``sqrt(sum_p ||T_p g_p||^2)`` over every group, ``T_p = |w_p|`` where adaptive, else 1."""
        terms = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    terms.append(p.grad * p.abs() if group["adaptive"] else p.grad)
        if not terms:
            return torch.zeros(())
        acc = torch.float64 if any(t.dtype == torch.float64 for t in terms) else torch.float32
        device = terms[0].device
        sq = [torch.linalg.vector_norm(t, dtype=acc).square().to(device) for t in terms]
        return torch.stack(sq).sum().sqrt()

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move to ``w + eps_hat(w)`` using the gradients at ``w`` (Eq. 2), saving ``w``.

        Args:
            zero_grad: Clear the gradients afterwards, ready for the second backward pass.
        """
        norm = self._grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (norm + self.eps)
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._w[p] = p.detach().clone()
                e = p.grad * p.square() if group["adaptive"] else p.grad  # ASAM: T_w^2 g
                p.add_(e * scale.to(device=p.device, dtype=p.dtype))  # w + eps_hat
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def restore(self) -> None:
        """Put back the weights ``w`` saved by `first_step()` (``w + eps_hat -> w``)."""
        for p, w in self._w.items():
            p.copy_(w)
        self._w.clear()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore ``w`` and take the base optimizer's step with the gradients at ``w + eps_hat``.

        Args:
            zero_grad: Clear the gradients afterwards.
        """
        self.restore()
        self.base_optimizer.step()  # the gradient of Eq. 3, applied at w
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """Both passes of one SAM step; returns the loss at ``w``.

        Args:
            closure: Zeroes the gradients, recomputes the loss, calls ``backward()`` and returns the
                loss. Required.
        """
        if closure is None:
            raise RuntimeError("SAM.step needs a closure (zero_grad, loss, backward, return loss): call opt.step(closure)")
        with torch.enable_grad():
            loss = closure()  # gradients at w
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()  # gradients at w + eps_hat
        self.second_step()
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load SAM's (= the base optimizer's) state and param groups, and re-share them."""
        super().load_state_dict(state_dict)
        self.base_optimizer.param_groups = self.param_groups
        self.base_optimizer.state = self.state


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(name="sam", cls=SAM, paper="sharpness_aware_minimization", needs_closure=True,
                                     test_kwargs={"lr": 0.05}, reference="pytorch_optimizer:SAM",
                                     description=(SAM.__doc__ or "").strip().splitlines()[0]))


_register()
