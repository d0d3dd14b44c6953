"""Schedule-Free SGD and AdamW: no learning-rate schedule, interpolation plus iterate averaging.

Aaron Defazio, Xingyu Yang, Harsh Mehta, Konstantin Mishchenko, Ahmed Khaled, Ashok Cutkosky.
*The Road Less Scheduled*. NeurIPS 2024. https://arxiv.org/abs/2405.15682
(authors' code: https://github.com/facebookresearch/schedule_free, package ``schedulefree``;
this module is written from the paper and checked step by step against ``schedulefree==1.4.1``).

Schedule-Free keeps three sequences. The base optimizer's iterate ``z`` takes the gradient steps,
``x`` is a weighted running average of the ``z``s (the point to evaluate and ship) and the gradient
is taken at ``y``, an interpolation of the two with the momentum-like constant ``beta``:

```text
y_t     = (1 - beta) z_t + beta x_t                    (gradient point; the model's weights in train mode)
z_{t+1} = z_t - gamma_t d_t                            (base step; d_t = grad f(y_t) for SGD)
x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}          (averaging; the weights in eval mode)
c_{t+1} = w_t / sum_{i<=t} w_i,   w_t = t^r gamma_t^p  (p = weight_lr_power = 2: the paper's gamma_t^2 weights)
gamma_t = lr min(1, t / warmup_steps)                  (linear warmup; t = 1, 2, ... counts steps)
```

With ``w_t`` constant (no warmup, ``r = 0``) the average is uniform, ``c_{t+1} = 1/(t+1)``; with
warmup the small early steps get small weights. Only two buffers are stored per parameter: the
parameter tensor itself holds ``y`` (train mode) or ``x`` (eval mode) and the state holds ``z``;
``x`` is never materialised during training. Substituting ``x_t = (y_t - (1 - beta) z_t) / beta``
into the three updates gives the in-place step used here (and by the authors' fast version):

```text
y_{t+1} = (1 - c_{t+1}) y_t + c_{t+1} z_t + gamma_t (beta (1 - c_{t+1}) - 1) d_t
z_{t+1} = z_t - gamma_t d_t
```

and :meth:`~ScheduleFreeSGD.eval` / :meth:`~ScheduleFreeSGD.train` move the weights between the two
points without a copy: ``x = y + (1 - 1/beta) (z - y)`` and ``y = x + (1 - beta) (z - x)``.

The update direction ``d_t``:

* :class:`ScheduleFreeSGD` (the paper's Schedule-Free SGD, with an L2 penalty taken at ``y``):
  ``d_t = g_t + lambda y_t`` with ``g_t = grad f(y_t)``.
* :class:`ScheduleFreeAdamW` (the paper's Algorithm 1, as ``AdamWScheduleFree`` computes it): a
  second-moment preconditioner with bias correction, and decoupled weight decay at ``y``:

```text
v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
d_t = g_t / (sqrt(v_t / (1 - beta2^t)) + eps) + lambda y_t
```

There is no first moment: ``beta1`` (``betas[0]``) plays the part of the interpolation ``beta``.

Departures from the authors' package (``schedulefree==1.4.1``, none visible on a run whose
learning rate only rises, i.e. warmup then constant, which is every run the package documents):

* **Averaging weights use the current learning rate** ``gamma_t`` (the paper's
  ``c_{t+1} = gamma_t^2 / sum_i gamma_i^2``), not the package's running maximum ``max_i gamma_i``;
  a step with learning rate 0 has weight 0 (also for ``weight_lr_power = 0``). So a scheduler that
  sets the learning rate to 0 freezes ``x``, ``y`` and ``z``; with the package ``x`` (and so the
  weights ``y``) keep drifting toward ``z``.
* **The optimizer starts in train mode.** At construction ``x = y = z``, so the mode is only a
  flag; the package's fast classes start in eval mode and raise on a ``step`` before ``train()``.
  A ``step`` in eval mode raises here too, after an ``eval()`` call ``train()`` is required.
* **Gradients are not modified in place** (the package adds weight decay into ``p.grad`` and the
  AdamW variant also divides it by the preconditioner).
* The learning rate must be a float; sparse gradients are rejected. ``x`` is obtained with
  :meth:`eval` as in the package (the package's ``*Reference`` classes store ``x`` and ``y``
  explicitly; the results agree to rounding).

Batch-norm models: the running statistics were accumulated at ``y``; recompute them at ``x`` with
:func:`bn_recalibrate` before evaluating (the authors' recommendation).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

__all__ = ["ScheduleFreeAdamW", "ScheduleFreeSGD", "bn_recalibrate"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class _ScheduleFree(Optimizer):
    """The shared machinery: warmup, averaging weights, the y/z step and the train/eval swap."""

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        _check(isinstance(defaults["lr"], float | int) and defaults["lr"] >= 0.0,
               f"lr must be a float >= 0, got {defaults['lr']!r}")
        _check(defaults["weight_decay"] >= 0.0, f"weight_decay must be >= 0, got {defaults['weight_decay']}")
        _check(int(defaults["warmup_steps"]) == defaults["warmup_steps"] and defaults["warmup_steps"] >= 0,
               f"warmup_steps must be an integer >= 0, got {defaults['warmup_steps']}")
        _check(defaults["r"] >= 0.0, f"r must be >= 0, got {defaults['r']}")
        _check(defaults["weight_lr_power"] >= 0.0, f"weight_lr_power must be >= 0, got {defaults['weight_lr_power']}")
        # Per group, as in the package: the step count k, the sum of averaging weights, the mode.
        defaults = {**defaults, "k": 0, "weight_sum": 0.0, "train_mode": True, "scheduled_lr": 0.0}
        super().__init__(params, defaults)

    # -- hooks for the variants
    def _beta(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    def _init_state(self, p: Tensor, state: dict[str, Any]) -> None:
        state["z"] = torch.clone(p, memory_format=torch.preserve_format).detach()

    def _update(self, group: dict[str, Any], ys: list[Tensor], zs: list[Tensor], grads: list[Tensor],
                states: list[dict[str, Any]], k: int, lr: float, ckp1: float) -> None:
        """The in-place step with direction ``d_t``: ``y <- (1 - c) y + c z + lr (beta (1 - c) - 1) d``,
        ``z <- z - lr d`` (``lr`` is ``gamma_t``, ``c`` is ``c_{t+1}``); updates any moment state.
        With ``lr == 0`` only the moment state moves. The gradients are read, never written."""
        raise NotImplementedError

    # -- modes
    @torch.no_grad()
    def _swap(self, to_train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == to_train:
                continue
            beta = self._beta(group)
            pairs = [(p, self.state[p]["z"]) for p in group["params"] if "z" in self.state[p]]
            if pairs:
                ps, zs = (list(t) for t in zip(*pairs))
                # eval: x = y + (1 - 1/beta)(z - y);  train: y = x + (1 - beta)(z - x)
                torch._foreach_lerp_(ps, zs, weight=(1.0 - beta) if to_train else (1.0 - 1.0 / beta))
            group["train_mode"] = to_train

    def eval(self) -> None:
        """Put the averaged point ``x`` into the parameters (call with ``model.eval()``, and before saving)."""
        self._swap(False)

    def train(self) -> None:
        """Put the gradient point ``y`` back into the parameters (call before training resumes)."""
        self._swap(True)

    @property
    def train_mode(self) -> bool:
        """True when the parameters hold ``y`` (training), False when they hold ``x`` (after ``eval()``)."""
        return all(g["train_mode"] for g in self.param_groups)

    # -- the step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Schedule-Free step at the current point ``y``.

        Args:
            closure: optional; re-evaluates the model (with gradients) and returns the loss.

        Returns:
            The closure's loss, or None without a closure.

        Raises:
            RuntimeError: when the optimizer is in eval mode (call ``train()`` first).
        """
        if not self.train_mode:
            raise RuntimeError(f"{type(self).__name__}.step() called in eval mode: the parameters hold the "
                               "average x; call optimizer.train() before training (and eval() before evaluating)")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            k = group["k"]
            warmup = group["warmup_steps"]
            lr = group["lr"] * ((k + 1) / warmup if k < warmup else 1.0)  # gamma_t, t = k + 1
            group["scheduled_lr"] = lr
            weight = ((k + 1) ** group["r"]) * (lr ** group["weight_lr_power"]) if lr > 0.0 else 0.0  # w_t
            weight_sum = group["weight_sum"] + weight
            ckp1 = weight / weight_sum if weight_sum > 0.0 else 0.0  # c_{t+1}
            group.update(k=k + 1, weight_sum=weight_sum)

            ys, grads, states = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                if "z" not in state:
                    self._init_state(p, state)
                ys.append(p)
                grads.append(p.grad)
                states.append(state)
            if not ys:
                continue
            # lr 0: weight 0, so c = 0 and neither y nor z moves (the variant skips them).
            self._update(group, ys, [s["z"] for s in states], grads, states, k, lr, ckp1)
        return loss


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-Free SGD (*The Road Less Scheduled*, Defazio et al. 2024).

    Call ``optimizer.train()`` / ``optimizer.eval()`` together with ``model.train()`` /
    ``model.eval()``: in train mode the parameters hold the gradient point ``y``, in eval mode the
    average ``x`` (evaluate and save checkpoints there). ``step`` in eval mode raises. No learning
    rate schedule is needed; use ``warmup_steps`` for a warmup.

    ```text
    y_t = (1 - momentum) z_t + momentum x_t
    z_{t+1} = z_t - gamma_t (grad f(y_t) + weight_decay y_t)
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},   c_{t+1} = w_t / sum_i w_i,  w_t = t^r gamma_t^weight_lr_power
    gamma_t = lr min(1, t / warmup_steps)
    ```

    Matches ``schedulefree.SGDScheduleFree`` (1.4.1) except for the departures listed in the
    module docstring (averaging weights from the current rather than the maximal lr, train mode at
    construction, gradients left untouched).

    Args:
        params: parameters or parameter groups.
        lr: base step size ``gamma`` (the package's default 1.0; try 10x a tuned SGD lr).
        momentum: interpolation constant ``beta`` in (0, 1).
        weight_decay: L2 penalty, its gradient taken at ``y``.
        warmup_steps: length of the linear warmup of ``gamma_t``.
        r: power of the polynomial weighting ``t^r`` of the average.
        weight_lr_power: power of ``gamma_t`` in the averaging weights (2 in the paper).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = ScheduleFreeSGD(model.parameters(), lr=0.5, warmup_steps=5)
        >>> opt.train()
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     model(torch.randn(8, 3)).pow(2).mean().backward()
        ...     opt.step()
        >>> opt.eval()   # the parameters now hold x, the point to evaluate and save
    """

    def __init__(self, params: Params, lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0) -> None:
        _check(0.0 < momentum < 1.0, f"momentum must be in (0, 1), got {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps,
                                      r=r, weight_lr_power=weight_lr_power))

    def _beta(self, group: dict[str, Any]) -> float:
        return group["momentum"]

    def _update(self, group, ys, zs, grads, states, k, lr, ckp1):
        if lr == 0.0:
            return
        # Three passes as in the package: without weight decay d = g is read in place (never written);
        # with it d = g + lambda y is a temporary (the package adds lambda y into p.grad instead).
        decay = group["weight_decay"]
        direction = torch._foreach_add(grads, ys, alpha=decay) if decay != 0.0 else grads
        torch._foreach_lerp_(ys, zs, weight=ckp1)  # (1 - c) y_t + c z_t
        torch._foreach_add_(ys, direction, alpha=lr * (group["momentum"] * (1.0 - ckp1) - 1.0))
        torch._foreach_add_(zs, direction, alpha=-lr)  # z_{t+1} = z_t - gamma_t d_t


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-Free AdamW (*The Road Less Scheduled*, Algorithm 1).

    Call ``optimizer.train()`` / ``optimizer.eval()`` together with ``model.train()`` /
    ``model.eval()``: in train mode the parameters hold the gradient point ``y``, in eval mode the
    average ``x`` (evaluate and save checkpoints there). ``step`` in eval mode raises. No learning
    rate schedule is needed; use ``warmup_steps`` for a warmup.

    ```text
    y_t = (1 - beta1) z_t + beta1 x_t
    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2,                       g_t = grad f(y_t)
    z_{t+1} = z_t - gamma_t (g_t / (sqrt(v_t / (1 - beta2^t)) + eps) + weight_decay y_t)
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},   c_{t+1} = w_t / sum_i w_i,  w_t = t^r gamma_t^weight_lr_power
    gamma_t = lr min(1, t / warmup_steps)
    ```

    Matches ``schedulefree.AdamWScheduleFree`` (1.4.1) except for the departures listed in the
    module docstring. The second moment keeps accumulating on steps with learning rate 0 (as in
    the package); nothing else moves on them.

    Args:
        params: parameters or parameter groups.
        lr: base step size ``gamma`` (the package's default 0.0025).
        betas: ``(beta1, beta2)``: the interpolation constant in (0, 1) and the second-moment decay.
        eps: added to the preconditioner's square root.
        weight_decay: decoupled weight decay, applied at ``y`` after preconditioning.
        warmup_steps: length of the linear warmup of ``gamma_t``.
        r: power of the polynomial weighting ``t^r`` of the average.
        weight_lr_power: power of ``gamma_t`` in the averaging weights (2 in the paper).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = ScheduleFreeAdamW(model.parameters(), lr=1e-2, warmup_steps=5, weight_decay=1e-4)
        >>> opt.train()
        >>> for _ in range(10):
        ...     opt.zero_grad()
        ...     model(torch.randn(8, 3)).pow(2).mean().backward()
        ...     opt.step()
        >>> opt.eval()
    """

    def __init__(self, params: Params, lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0) -> None:
        _check(0.0 < betas[0] < 1.0, f"betas[0] must be in (0, 1), got {betas[0]}")
        _check(0.0 <= betas[1] < 1.0, f"betas[1] must be in [0, 1), got {betas[1]}")
        _check(eps >= 0.0, f"eps must be >= 0, got {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power))

    def _beta(self, group: dict[str, Any]) -> float:
        return group["betas"][0]

    def _init_state(self, p: Tensor, state: dict[str, Any]) -> None:
        super()._init_state(p, state)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, group, ys, zs, grads, states, k, lr, ckp1):
        beta1, beta2 = group["betas"]
        vs = [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)  # v_t
        if lr == 0.0:
            return
        # The bias correction is folded into the scalars: with s = sqrt(1 - beta2^t),
        # g / (sqrt(v / s^2) + eps) = s g / (sqrt(v) + s eps), so one temporary (the denominator) and
        # no pass to divide v or to materialise d.
        s = (1.0 - beta2 ** (k + 1)) ** 0.5
        denom = torch._foreach_sqrt(vs)
        torch._foreach_add_(denom, s * group["eps"])
        a = lr * (beta1 * (1.0 - ckp1) - 1.0)
        decay = group["weight_decay"]
        if decay == 0.0:
            torch._foreach_lerp_(ys, zs, weight=ckp1)  # (1 - c) y_t + c z_t
            torch._foreach_addcdiv_(ys, grads, denom, value=a * s)
            torch._foreach_addcdiv_(zs, grads, denom, value=-lr * s)  # z_{t+1} = z_t - gamma_t d_t
            return
        # Decay at y, after preconditioning: d / s = g / denom + (lambda / s) y, built in the temporary.
        for g, dn in zip(grads, denom):
            torch.div(g, dn, out=dn)
        torch._foreach_add_(denom, ys, alpha=decay / s)
        torch._foreach_lerp_(ys, zs, weight=ckp1)
        torch._foreach_add_(ys, denom, alpha=a * s)
        torch._foreach_add_(zs, denom, alpha=-lr * s)


def bn_recalibrate(model: nn.Module, batches: Iterable[Any], optimizer: _ScheduleFree | None = None,
                   num_batches: int | None = 50, forward: Callable[[nn.Module, Any], Any] | None = None) -> nn.Module:
    """Recompute the BatchNorm running statistics at the averaged point ``x``.

    During training the running means and variances are accumulated at ``y``, not at ``x``; the
    authors recommend recomputing them at ``x`` before evaluating a BatchNorm model. This resets
    every BatchNorm layer's statistics, runs ``num_batches`` forward passes in train mode without
    gradients with cumulative averaging (``momentum=None``), and restores the layers' momenta and
    the model's mode. The weights are not changed.

    Args:
        model: the model; its parameters must hold ``x`` (pass ``optimizer`` to make sure).
        batches: an iterable of batches (a DataLoader); a tuple/list batch feeds its first element.
        optimizer: optional Schedule-Free optimizer; it is put in eval mode first (weights at ``x``).
        num_batches: how many batches to use (None: all of them).
        forward: optional ``forward(model, batch)`` to use instead of ``model(batch[0])``.

    Returns:
        The model, its BatchNorm statistics recomputed and its train/eval mode as before.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> opt = ScheduleFreeSGD(model.parameters(), lr=0.1)
        >>> batches = [torch.randn(16, 3) for _ in range(4)]
        >>> _ = bn_recalibrate(model, batches, optimizer=opt)
    """
    if optimizer is not None:
        optimizer.eval()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return model
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative (equal-weight) average over the batches
    model.train()
    try:
        with torch.no_grad():
            for batch in itertools.islice(batches, num_batches):
                if forward is not None:
                    forward(model, batch)
                else:
                    model(batch[0] if isinstance(batch, tuple | list) else batch)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return model


def _register() -> None:
    from zoo.optim.registry import OptimizerInfo, register_optimizer

    for name, cls, ref, kwargs in (
        ("schedule_free_sgd", ScheduleFreeSGD, "schedulefree:SGDScheduleFree", {"lr": 0.1, "warmup_steps": 5}),
        ("schedule_free_adamw", ScheduleFreeAdamW, "schedulefree:AdamWScheduleFree", {"lr": 0.05, "warmup_steps": 5}),
    ):
        register_optimizer(OptimizerInfo(name=name, cls=cls, paper="schedule_free_optimization", reference=ref,
                                         test_kwargs=kwargs, description=(cls.__doc__ or "").strip().splitlines()[0]))


_register()
