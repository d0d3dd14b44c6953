"""The torch.optim.Optimizer contract, for every optimizer in the registry (timm's and torch's test matrices).

A new optimizer registered with :func:`zoo.optim.registry.register_optimizer` is tested here
without editing this file: progress on a small problem, param groups with their own options,
``step(closure)``, parameters without gradients, ``zero_grad``, a learning-rate scheduler,
float32 and float64, bit-exact resume from ``state_dict``, and CUDA when present.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.optim.closures import mse_closure
from zoo.optim.registry import OptimizerInfo, get_optimizer, list_optimizers

OPTIMIZERS = list_optimizers()
IDS = [o.name for o in OPTIMIZERS]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _problem(dtype=torch.float64, device="cpu", seed=0):
    """A small least-squares model with two parameter tensors, and its data."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=g, dtype=dtype)
    y = x @ torch.randn(5, 1, generator=g, dtype=dtype) + 0.1 * torch.randn(64, 1, generator=g, dtype=dtype)
    model = torch.nn.Linear(5, 1).to(dtype)
    torch.manual_seed(seed)
    torch.nn.init.normal_(model.weight)
    return model.to(device), x.to(device), y.to(device)


def _make(info: OptimizerInfo, params, **kw):
    return info.cls(params, **{**info.test_kwargs, **kw})


def _step(opt, model, x, y):
    closure = mse_closure(opt, model, x, y)
    if opt_needs_closure(opt):
        return opt.step(closure)
    loss = closure()
    opt.step()
    return loss


def opt_needs_closure(opt) -> bool:
    return any(o.needs_closure for o in OPTIMIZERS if isinstance(opt, o.cls))


def test_the_registry_holds_the_zoo_optimizers():
    assert {"dadapt_sgd", "dadapt_adam", "dadapt_adagrad"} <= set(IDS)
    with pytest.raises(KeyError, match="registered"):
        get_optimizer("no_such_optimizer")
    for o in OPTIMIZERS:
        assert issubclass(o.cls, torch.optim.Optimizer), o.name


@pytest.mark.parametrize("info", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_makes_progress_and_keeps_the_dtype(info, device, dtype):
    model, x, y = _problem(dtype, device)
    opt = _make(info, model.parameters())
    first = float(_step(opt, model, x, y).detach())
    for _ in range(200):
        last = float(_step(opt, model, x, y).detach())
    assert last < 0.5 * first, f"{info.name}: loss {first:.3g} -> {last:.3g}"
    assert all(p.dtype == dtype and p.device.type == device for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("info", OPTIMIZERS, ids=IDS)
def test_step_with_closure_returns_the_loss(info):
    model, x, y = _problem()
    opt = _make(info, model.parameters())
    loss = opt.step(mse_closure(opt, model, x, y))
    assert loss is not None and torch.isfinite(torch.as_tensor(loss))


@pytest.mark.parametrize("info", OPTIMIZERS, ids=IDS)
def test_parameters_without_gradients_are_left_alone(info):
    model, x, y = _problem()
    frozen = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = _make(info, [*model.parameters(), frozen])
    for _ in range(3):
        _step(opt, model, x, y)
    assert torch.equal(frozen.detach(), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("info", OPTIMIZERS, ids=IDS)
def test_param_groups_keep_their_own_options(info):
    """A group with lr 0 does not move, while the other group does."""
    model, x, y = _problem()
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    opt = _make(info, [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.0}])
    for _ in range(5):
        _step(opt, model, x, y)
    assert not torch.equal(model.weight.detach(), w0)
    assert torch.equal(model.bias.detach(), b0)


@pytest.mark.parametrize("info", OPTIMIZERS, ids=IDS)
def test_zero_grad_clears_gradients(info):
    model, x, y = _problem()
    opt = _make(info, model.parameters())
    _step(opt, model, x, y)
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("info", OPTIMIZERS, ids=IDS)
def test_a_scheduler_drives_the_learning_rate(info):
    model, x, y = _problem()
    opt = _make(info, model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.0 if step >= 2 else 1.0)
    for _ in range(2):
        _step(opt, model, x, y)
        sched.step()
    frozen = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        _step(opt, model, x, y)
    assert all(torch.equal(a, p.detach()) for a, p in zip(frozen, model.parameters())), "lr 0 from the scheduler stops it"


@pytest.mark.parametrize("info", OPTIMIZERS, ids=IDS)
def test_resume_from_state_dict_is_bit_exact(info):
    model, x, y = _problem()
    opt = _make(info, model.parameters())
    for _ in range(7):
        _step(opt, model, x, y)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    for _ in range(5):
        _step(opt, model, x, y)
    expected = [p.detach().clone() for p in model.parameters()]

    model2, _, _ = _problem()
    model2.load_state_dict(saved_model)
    opt2 = _make(info, model2.parameters())
    opt2.load_state_dict(saved_opt)
    for _ in range(5):
        _step(opt2, model2, x, y)
    for a, b in zip(expected, model2.parameters()):
        assert torch.equal(a, b.detach()), f"{info.name}: resumed run differs"
