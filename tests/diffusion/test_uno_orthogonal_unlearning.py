"""UNO library (zoo.unlearning.uno): the uniformity term, squared cosine and surgery projection against
hand values; the ELBO's reductions; the orthogonality penalty is differentiated through the gradients
(double backward); each method's update is the one its docstring names and options are honoured."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.unlearning.uno import (VAE, UnlearnWeights, flat_grad, orthogonality, retain_loss, surgery_direction,
                                uniformity_loss, unlearn_step, uno_loss, vae_loss)


def test_uniformity_loss_hand_value():
    p = torch.tensor([[0.5, 0.25, 0.25]])
    e = 1e-8
    want = 0.5 * math.log((0.5 + e) / (0.5 + e)) + 0.25 * math.log((0.25 + e) / e) + 0.25 * math.log((0.25 + e) / (0.5 + e))
    assert uniformity_loss(p.log(), forget_class=1).item() == pytest.approx(want, rel=1e-5)
    # the batch-mean histogram, not the mean of per-sample terms; zero at the retained uniform target
    two = torch.tensor([[1.0, 1e-12, 1e-12], [1e-12, 1e-12, 1.0]]).log()
    assert uniformity_loss(two, forget_class=1).item() == pytest.approx(0.0, abs=1e-6)


def test_orthogonality_and_surgery_hand_values():
    gf, gr = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    assert orthogonality(gf, gr).item() == pytest.approx(0.5)
    assert orthogonality(gf, torch.tensor([0.0, 3.0])).item() == 0.0
    assert torch.allclose(surgery_direction(gf, gr), torch.tensor([0.0, 1.0]))
    assert torch.allclose(surgery_direction(gf, gr, only_conflict=True), gr)  # no conflict: untouched
    neg = torch.tensor([-2.0, 1.0])
    assert torch.allclose(surgery_direction(gf, neg, only_conflict=True), torch.tensor([0.0, 1.0]))
    g = torch.randn(50, generator=torch.Generator().manual_seed(0))
    h = torch.randn(50, generator=torch.Generator().manual_seed(1))
    assert (surgery_direction(g, h) @ g).abs().item() < 1e-5


def _zero_vae(latent: int = 3, mu: float = 0.0) -> VAE:
    vae = VAE(64, [16], latent)
    for p in vae.parameters():
        nn.init.zeros_(p)
    with torch.no_grad():
        vae.to_stats.bias[:latent] = mu
    return vae


def test_vae_loss_hand_value_and_reductions():
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    vae = _zero_vae(3, mu=1.0)  # decoder logits 0, mu = 1, logvar = 0: BCE = 64 log 2, KL = 3/2 per image
    g = torch.Generator().manual_seed(0)
    per = 64 * math.log(2) + 0.7 * 1.5
    assert vae_loss(vae, x, 0.7, g).item() == pytest.approx(per, rel=1e-5)
    assert vae_loss(vae, x, 0.7, g, "sum").item() == pytest.approx(5 * per, rel=1e-5)
    with pytest.raises(ValueError):
        vae_loss(vae, x, 1.0, g, "max")


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    vae = VAE(64, [16], 3)
    ident = nn.Linear(64, 10)
    g = torch.Generator().manual_seed(seed)
    xr, xf = torch.rand(8, 64, generator=g), torch.rand(8, 64, generator=g)
    z = torch.randn(16, 3, generator=g)
    return vae, ident, xr, xf, z


def _grads(vae):
    return torch.cat([p.grad.reshape(-1) for p in vae.parameters()])


def test_uno_loss_is_its_equation_and_the_penalty_is_differentiated_through_the_gradients():
    vae, ident, xr, xf, z = _setup()
    params = list(vae.parameters())
    w = UnlearnWeights(kl=1.0, forget=0.3, orth=50.0, unif=2.0)
    loss, orth = uno_loss(vae, xr, xf, z, ident, 1, w, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    lf, lr = vae_loss(vae, xf, 1.0, g, "sum"), vae_loss(vae, xr, 1.0, g, "sum")
    u = uniformity_loss(ident(vae.decode(z)), 1)
    gf, gr = flat_grad(lf + 2.0 * u, params), flat_grad(lr + 2.0 * u, params)
    assert orth.item() == pytest.approx(orthogonality(gf, gr).item(), rel=1e-5)
    assert loss.item() == pytest.approx((0.3 * lf + lr + 50.0 * orth + 2.0 * u).item(), rel=1e-5)
    # the gradient of the loss carries the penalty's Hessian-vector term: it differs from the gradient
    # of the same loss with the penalty's value held fixed
    assert flat_grad(50.0 * orth, params).norm() > 0
    # ... and through both gradients: the penalty's gradient with g_f and g_r both kept differentiable
    gf2, gr2 = flat_grad(lf + 2.0 * u, params, create_graph=True), flat_grad(lr + 2.0 * u, params, create_graph=True)
    want = flat_grad(0.3 * lf + lr + 2.0 * u + 50.0 * orthogonality(gf2, gr2), params)
    assert torch.allclose(flat_grad(loss, params), want, rtol=1e-3, atol=1e-4)
    loss.backward()
    full = _grads(vae)
    vae.zero_grad()
    (0.3 * lf + lr + 2.0 * u).backward()
    assert not torch.allclose(full, _grads(vae), atol=1e-4)


@pytest.mark.parametrize("method", ["uno", "retain", "finetune", "surgery"])
def test_unlearn_step_updates_are_the_named_directions(method):
    vae, ident, xr, xf, z = _setup(1)
    w = UnlearnWeights(kl=1.0, forget=0.0, orth=10.0, unif=3.0)
    ref = VAE(64, [16], 3)
    ref.load_state_dict(vae.state_dict())
    params = list(ref.parameters())
    g = torch.Generator().manual_seed(9)
    if method == "uno":
        want = flat_grad(uno_loss(ref, xr, xf, z, ident, 1, w, g)[0], params)
    elif method == "retain":
        want = flat_grad(retain_loss(ref, xr, z, ident, 1, w, g), params)
    elif method == "finetune":
        want = flat_grad(vae_loss(ref, xr, 1.0, g, "sum"), params)
    else:
        lf, lr = vae_loss(ref, xf, 1.0, g, "sum"), vae_loss(ref, xr, 1.0, g, "sum")
        u = uniformity_loss(ident(ref.decode(z)), 1)
        want = surgery_direction(flat_grad(lf + 3.0 * u, params), flat_grad(lr + 3.0 * u, params))
    before = torch.cat([p.detach().reshape(-1) for p in vae.parameters()])
    opt = torch.optim.SGD(vae.parameters(), lr=1e-3)
    unlearn_step(method, vae, opt, xr, xf, z, ident, 1, w, torch.Generator().manual_seed(9))
    after = torch.cat([p.detach().reshape(-1) for p in vae.parameters()])
    assert torch.allclose((before - after) / 1e-3, want, rtol=1e-3, atol=1e-3)


def test_retain_is_uno_without_the_penalty_and_options_are_honoured():
    vae, ident, xr, xf, z = _setup(2)
    w0 = UnlearnWeights(kl=1.0, forget=0.0, orth=0.0, unif=3.0)
    a = uno_loss(vae, xr, xf, z, ident, 1, w0, torch.Generator().manual_seed(3))[0]
    g = torch.Generator().manual_seed(3)
    torch.randn(8, 3, generator=g)  # uno_loss draws the forget batch's eps first
    b = retain_loss(vae, xr, z, ident, 1, w0, g)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    wf = UnlearnWeights(kl=1.0, forget=1.0, orth=0.0, unif=3.0)
    c = uno_loss(vae, xr, xf, z, ident, 1, wf, torch.Generator().manual_seed(3))[0]
    assert c.item() > a.item() + 1.0  # w_f adds L_f
    wk = UnlearnWeights(kl=0.0, forget=0.0, orth=0.0, unif=0.0)
    g = torch.Generator().manual_seed(3)
    torch.randn(8, 3, generator=g)
    d = retain_loss(vae, xr, z, ident, 1, wk, g)
    assert d.item() < b.item()  # no KL, no U
    with pytest.raises(ValueError):
        unlearn_step("nope", vae, torch.optim.SGD(vae.parameters(), lr=0.1), xr, xf, z, ident, 1, w0)
