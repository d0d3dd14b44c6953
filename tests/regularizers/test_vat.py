"""VAT: the KL, the power-iteration perturbation (against the Hessian and vat-pytorch), LDS and EntMin."""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.regularizers.vat import VATLoss, conditional_entropy, kl_with_logits, lds, normalise, vat_perturbation


def _net(dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).to(dtype)


def test_normalise_gives_unit_norm_per_example_and_keeps_direction() -> None:
    d = torch.tensor([[3.0, 4.0], [0.0, -2.0]], dtype=torch.float64)
    n = normalise(d)
    assert torch.allclose(n, torch.tensor([[0.6, 0.8], [0.0, -1.0]], dtype=torch.float64), atol=1e-6)
    img = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    assert torch.allclose(normalise(img).flatten(1).norm(dim=1), torch.ones(3, dtype=torch.float64), atol=1e-6)


def test_kl_on_hand_values() -> None:
    p = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    q = torch.tensor([[0.0, 0.0]])  # (1/2, 1/2)
    want = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert float(kl_with_logits(p, q)) == pytest.approx(want, abs=1e-6)
    assert float(kl_with_logits(p, p)) == pytest.approx(0.0, abs=1e-7)
    # direction matters: KL(p || q), the clean distribution first
    assert float(kl_with_logits(q, p)) != pytest.approx(want, abs=1e-3)


def _hessian_at_zero(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    p = model(x).detach()
    return torch.autograd.functional.hessian(lambda r: kl_with_logits(p, model(x + r.view_as(x))),
                                             torch.zeros(x.numel(), dtype=x.dtype))


def test_one_power_iteration_is_eps_times_normalised_hessian_times_d() -> None:
    """r_adv = eps * H d / ||H d|| with H the KL's Hessian at r = 0 (eqs. 10-13), for one example."""
    model = _net()
    x = torch.randn(1, 6, dtype=torch.float64)
    d = torch.randn(1, 6, dtype=torch.float64)
    H = _hessian_at_zero(model, x)
    want = 2.0 * normalise((H @ normalise(d).flatten()).view(1, 6))
    got = vat_perturbation(model, x, eps=2.0, xi=1e-6, d=d)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, 2.0 * normalise(d), atol=1e-2)  # it is not the random direction


def test_many_power_iterations_find_the_top_eigenvector() -> None:
    model = _net()
    x = torch.randn(1, 6, dtype=torch.float64)
    H = _hessian_at_zero(model, x)
    evals, evecs = torch.linalg.eigh(H)
    top = evecs[:, -1]
    r = vat_perturbation(model, x, eps=1.0, xi=1e-6, n_power=60, d=torch.randn(1, 6, dtype=torch.float64))
    assert abs(float(r.flatten() @ top)) == pytest.approx(1.0, abs=1e-4)


def test_adversarial_direction_hurts_more_than_random_ones() -> None:
    model = _net()
    x = torch.randn(16, 6, dtype=torch.float64)
    p = model(x).detach()
    adv = float(lds(model, x, eps=0.5).detach())
    rand = [float(kl_with_logits(p, model(x + 0.5 * normalise(torch.randn_like(x))))) for _ in range(20)]
    assert adv > max(rand)


def test_lds_gradient_flows_through_the_perturbed_branch_only() -> None:
    """The clean distribution is a constant: grad LDS = grad of KL(p_const || p(x + r_adv)) with r_adv fixed."""
    model = _net()
    x = torch.randn(8, 6, dtype=torch.float64)
    d = torch.randn_like(x)
    model.zero_grad()
    lds(model, x, eps=0.5, d=d).backward()
    got = [p.grad.clone() for p in model.parameters()]
    r = vat_perturbation(model, x, eps=0.5, d=d)
    model.zero_grad()
    kl_with_logits(model(x).detach(), model(x + r)).backward()
    want = [p.grad.clone() for p in model.parameters()]
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(got, want, strict=True))
    model.zero_grad()
    kl_with_logits(model(x), model(x + r)).backward()  # with the clean branch differentiated: different
    assert not all(torch.allclose(a, p.grad, atol=1e-8) for a, p in zip(got, model.parameters(), strict=True))


def test_perturbation_is_detached_has_norm_eps_and_is_seeded() -> None:
    model = _net(torch.float32)
    x = torch.rand(5, 1, 2, 3)
    r1 = vat_perturbation(model, x, eps=3.0, generator=torch.Generator().manual_seed(1))
    r2 = vat_perturbation(model, x, eps=3.0, generator=torch.Generator().manual_seed(1))
    assert not r1.requires_grad and r1.shape == x.shape
    assert torch.equal(r1, r2)
    assert torch.allclose(r1.flatten(1).norm(dim=1), torch.full((5,), 3.0), atol=1e-3)
    with pytest.raises(ValueError):
        vat_perturbation(model, x, eps=1.0, n_power=0)


def test_conditional_entropy_and_the_entmin_option() -> None:
    assert float(conditional_entropy(torch.zeros(3, 4))) == pytest.approx(math.log(4))
    assert float(conditional_entropy(torch.tensor([[50.0, 0.0, 0.0]]))) == pytest.approx(0.0, abs=1e-6)
    model = _net()
    x = torch.randn(8, 6, dtype=torch.float64)
    d = torch.Generator().manual_seed(3)
    plain = VATLoss(eps=0.5)(model, x, generator=torch.Generator().manual_seed(3))
    ent = VATLoss(eps=0.5, entmin=1.0)(model, x, generator=d)
    assert float(ent - plain) == pytest.approx(float(conditional_entropy(model(x))), abs=1e-8)
    half = VATLoss(eps=0.5, alpha=0.5)(model, x, generator=torch.Generator().manual_seed(3))
    assert float(half) == pytest.approx(0.5 * float(plain), rel=1e-8)


def _vat_pytorch_smart():
    spec = importlib.util.find_spec("vat_pytorch")  # importing the package needs transformers: don't
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    if not (root / "smart.py").is_file():
        return None
    pkg = types.ModuleType("_vat_pytorch_ref")
    pkg.__path__ = [str(root)]
    sys.modules["_vat_pytorch_ref"] = pkg
    mods = {}
    for name in ("utils", "smart"):
        s = importlib.util.spec_from_file_location(f"_vat_pytorch_ref.{name}", root / f"{name}.py")
        m = importlib.util.module_from_spec(s)
        sys.modules[s.name] = m
        s.loader.exec_module(m)
        mods[name] = m
    return mods


def test_perturbation_matches_vat_pytorch_power_iteration() -> None:
    """vat-pytorch's SMARTLoss with one step, L2 norm and KL(clean || perturbed) is VAT's power iteration.

    Its start is ``noise_var * randn`` (not normalised) and its step is ``noise + step_size * grad``
    then L2-normalised: with a huge step size that is ``grad / ||grad||``, the same direction as
    ours from the same random draw (the gradient at xi*d is linear in d's scale for small xi).
    """
    mods = _vat_pytorch_smart()
    if mods is None:
        pytest.skip("vat-pytorch is not installed")
    model = _net()
    x = torch.randn(4, 6, dtype=torch.float64)
    seen: list[torch.Tensor] = []

    def recording(inp: torch.Tensor) -> torch.Tensor:
        seen.append(inp.detach().clone())
        return model(inp)

    l2 = lambda t: t.norm(dim=-1, keepdim=True)  # noqa: E731
    ref = mods["smart"].SMARTLoss(recording, loss_fn=mods["utils"].kl_loss, norm_fn=l2, num_steps=1,
                                  step_size=1e12, epsilon=0.0, noise_var=1e-6)
    torch.manual_seed(5)
    ref(x, model(x).detach())
    theirs = seen[-1] - x  # the input of its final (perturbed) forward pass, minus x: unit norm
    torch.manual_seed(5)
    ours = vat_perturbation(model, x, eps=1.0, xi=1e-6)  # draws d = randn_like(x) from the same state
    assert torch.allclose(ours, theirs, atol=1e-5)
