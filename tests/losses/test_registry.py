"""Every zoo loss, from the registry (zoo.losses.registry): torch's loss conventions and numerical safety.

Parametrized over :func:`zoo.losses.registry.loss_cases`, so a new loss file is tested here as soon
as it declares its ``LOSS_CASES``: float64 gradcheck, reductions that agree, any batch shape,
``-inf`` (masked) logits with finite values and gradients, per-class weights acting per class,
``ignore_index`` dropping elements, and the function and the module agreeing.
"""

from __future__ import annotations

import pytest
import torch

from zoo.losses.registry import LossCase, loss_cases, loss_modules

CASES = loss_cases()
IDS = [c.name for c in CASES]
N, C = 6, 5


def _inputs(case: LossCase, n: int = N, c: int = C, seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = max(c, case.min_classes)
    if case.target == "binary":
        return torch.randn(n, generator=g, dtype=dtype), torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, c, generator=g, dtype=dtype)
    if case.target == "multilabel":
        return x, torch.randint(0, 2, (n, c), generator=g).to(dtype)
    return x, torch.randint(0, c, (n,), generator=g)


def _loss(case: LossCase, **kw):
    return case.module(**{**case.kwargs, **kw})


def test_every_loss_module_registers_its_losses() -> None:
    """A loss file without LOSS_CASES would escape every test below."""
    import importlib

    for name in loss_modules():
        assert getattr(importlib.import_module(name), "LOSS_CASES", None), f"{name} declares no LOSS_CASES"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck_float64(case: LossCase) -> None:
    x, y = _inputs(case)
    x.requires_grad_(True)
    loss = _loss(case, reduction="sum") if case.decomposable else _loss(case)
    if case.smooth:
        assert torch.autograd.gradcheck(lambda z: loss(z, y), (x,), eps=1e-6, atol=1e-5)
    else:
        # piecewise: compare the analytic gradient with central differences at random points,
        # which lie away from the kinks almost surely
        (g,) = torch.autograd.grad(loss(x, y), x)
        num = torch.zeros_like(x)
        h = 1e-6
        with torch.no_grad():
            for i in range(x.numel()):
                e = torch.zeros_like(x).view(-1)
                e[i] = h
                e = e.view_as(x)
                num.view(-1)[i] = (loss(x + e, y) - loss(x - e, y)) / (2 * h)
        torch.testing.assert_close(g, num, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", [c for c in CASES if c.decomposable], ids=[c.name for c in CASES if c.decomposable])
def test_reductions_agree(case: LossCase) -> None:
    x, y = _inputs(case)
    none = _loss(case, reduction="none")(x, y)
    assert none.shape == (y.shape if case.target != "multilabel" else none.shape)
    assert none.shape[0] == N
    torch.testing.assert_close(_loss(case, reduction="sum")(x, y), none.sum())
    torch.testing.assert_close(_loss(case, reduction="mean")(x, y), none.mean())


@pytest.mark.parametrize("case", [c for c in CASES if c.function is not None], ids=[c.name for c in CASES if c.function is not None])
def test_function_and_module_agree(case: LossCase) -> None:
    x, y = _inputs(case, seed=3)
    assert case.function is not None
    torch.testing.assert_close(case.function(x, y, **case.kwargs), _loss(case)(x, y))


SPATIAL = [c for c in CASES if c.spatial and c.decomposable and c.target == "index"]


@pytest.mark.parametrize("case", SPATIAL, ids=[c.name for c in SPATIAL])
def test_any_batch_shape(case: LossCase) -> None:
    """(N, C, d) inputs give the same per-element losses as the flattened (N*d, C) ones; (C,) works too."""
    g = torch.Generator().manual_seed(1)
    c = max(C, case.min_classes)
    x = torch.randn(3, c, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (3, 4), generator=g)
    loss = _loss(case, reduction="none")
    got = loss(x, y)
    assert got.shape == y.shape
    flat = loss(x.movedim(1, -1).reshape(-1, c), y.reshape(-1))
    torch.testing.assert_close(got.reshape(-1), flat)
    single = _loss(case, reduction="sum")(x[0, :, 0], y[0, 0])
    torch.testing.assert_close(single, flat[0])


MASKED = [c for c in CASES if c.masked_logits and c.target in ("index", "multilabel")]


@pytest.mark.parametrize("case", MASKED, ids=[c.name for c in MASKED])
def test_masked_logits_finite(case: LossCase) -> None:
    """-inf logits of non-target classes (masking) give finite losses and finite, zero-on-mask gradients."""
    x, y = _inputs(case)
    mask = torch.zeros_like(x, dtype=torch.bool)
    for i in range(N):
        t = int(y[i]) if case.target == "index" else int(y[i].argmax())
        for j in (((t + 1) % x.shape[1]), ((t + 2) % x.shape[1])):
            if case.target == "multilabel" and y[i, j] > 0:
                continue
            mask[i, j] = True
    xm = x.masked_fill(mask, float("-inf")).requires_grad_(True)
    value = _loss(case)(xm, y)
    assert torch.isfinite(value).all(), value
    (g,) = torch.autograd.grad(value, xm)
    assert torch.isfinite(g).all(), g
    assert (g[mask] == 0).all()


WEIGHTED = [c for c in CASES if c.weight and c.target == "index"]


@pytest.mark.parametrize("case", WEIGHTED, ids=[c.name for c in WEIGHTED])
def test_per_class_weight_acts_per_class(case: LossCase) -> None:
    """weight[c] scales exactly the elements of class c, and "mean" divides by the summed weights."""
    x, y = _inputs(case, n=12)
    c = x.shape[1]
    w = torch.linspace(0.5, 2.0, c, dtype=torch.float64)
    w[int(y[0])] = 0.0  # one class switched off entirely
    if case.decomposable:
        plain = _loss(case, reduction="none")(x, y)
        weighted = _loss(case, reduction="none", weight=w)(x, y)
        torch.testing.assert_close(weighted, w[y] * plain)
        torch.testing.assert_close(_loss(case, weight=w)(x, y), (w[y] * plain).sum() / w[y].sum())
    else:
        # a batch-level loss: a zero-weight class must not move the loss
        x2 = x.clone()
        x2[y == y[0]] += 3.0 * torch.randn_like(x2[y == y[0]])
        torch.testing.assert_close(_loss(case, weight=w)(x, y), _loss(case, weight=w)(x2, y))


IGNORE = [c for c in CASES if c.ignore_index and c.target == "index"]


@pytest.mark.parametrize("case", IGNORE, ids=[c.name for c in IGNORE])
def test_ignore_index_drops_elements(case: LossCase) -> None:
    x, y = _inputs(case, n=10)
    y2 = y.clone()
    y2[::3] = -100
    keep = y2 != -100
    torch.testing.assert_close(_loss(case)(x, y2), _loss(case)(x[keep], y[keep]))
    if case.decomposable:
        none = _loss(case, reduction="none")(x, y2)
        assert (none[~keep] == 0).all()
