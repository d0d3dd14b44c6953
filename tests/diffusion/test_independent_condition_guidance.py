"""ICG and TSG (Sadat et al. 2024): what makes each the method.

* ICG's second prediction is the conditional network at a uniformly random REAL class (never the
  null token), drawn afresh per step (``"step"``) or once per sample (``"once"``); its first is the
  plain conditional prediction, so ``w = 0`` is conditional sampling under DDPM and DDIM.
* TSG's second prediction is the network at the time embedding plus ``s n``; the copied forward
  with the embedding given is the model's forward exactly; ``s = 0`` makes guidance a no-op.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.diffusion.classifier_free_guidance import ConditionalDenoiser, _timestep_embedding
from zoo.diffusion.ddim import DDIMScheduler
from zoo.diffusion.ddpm import DDPMScheduler
from zoo.diffusion.guidance import CFGGuider, sample
from zoo.diffusion.independent_condition_guidance import (
    denoise_with_time_embedding,
    independent_condition_model_fn,
    time_step_guidance_model_fn,
)

K = 4


class LabelEcho(nn.Module):
    """eps(x, t, c) = c (as a float, in every coordinate): shows which condition each branch got."""

    num_classes = K
    null_class = K

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return c.to(x.dtype)[:, None].expand_as(x).clone()


def _model(seed: int = 0) -> ConditionalDenoiser:
    torch.manual_seed(seed)
    m = ConditionalDenoiser(3, K, 50, hidden=16, depth=2)
    for p in m.parameters():  # a non-trivial class/time dependence
        p.data.normal_(0, 0.5)
    return m.eval()


def _schedulers() -> list[DDPMScheduler]:
    out = []
    for s in (DDPMScheduler(50, beta_schedule="cosine"), DDIMScheduler(50, eta=0.0, beta_schedule="cosine")):
        s.set_timesteps(10)
        out.append(s)
    return out


def test_icg_first_branch_is_the_condition_second_a_random_real_class():
    labels = torch.arange(K).repeat(250)
    fn = independent_condition_model_fn(LabelEcho(), labels, torch.Generator().manual_seed(0))
    cond, rnd = fn(torch.zeros(len(labels), 2), 7)
    assert torch.equal(cond[:, 0], labels.float())
    c_hat = rnd[:, 0]
    assert c_hat.min() >= 0 and c_hat.max() <= K - 1  # never the null token
    counts = torch.bincount(c_hat.long(), minlength=K).float()
    assert (counts / counts.sum() - 1 / K).abs().max() < 0.05  # uniform over the classes
    # independent of the sample's own class: as often equal as chance
    assert abs(float((c_hat == labels.float()).float().mean()) - 1 / K) < 0.05


def test_icg_resampling_per_step_and_once():
    labels = torch.arange(K).repeat(50)
    x = torch.zeros(len(labels), 2)
    step = independent_condition_model_fn(LabelEcho(), labels, torch.Generator().manual_seed(0), "step")
    once = independent_condition_model_fn(LabelEcho(), labels, torch.Generator().manual_seed(0), "once")
    assert not torch.equal(step(x, 5)[1], step(x, 4)[1])
    assert torch.equal(once(x, 5)[1], once(x, 4)[1])
    with pytest.raises(ValueError):
        independent_condition_model_fn(LabelEcho(), labels, torch.Generator(), "never")


def test_icg_matches_the_model_at_the_drawn_classes():
    m = _model()
    labels = torch.tensor([0, 1, 2, 3, 1])
    x = torch.randn(5, 3)
    fn = independent_condition_model_fn(m, labels, torch.Generator().manual_seed(3))
    c_hat = torch.randint(0, K, labels.shape, generator=torch.Generator().manual_seed(3))
    cond, unc = fn(x, 20)
    t = torch.full((5,), 20)
    torch.testing.assert_close(cond, m(x, t, labels))
    torch.testing.assert_close(unc, m(x, t, c_hat))


@pytest.mark.parametrize("which", [0, 1], ids=["ddpm", "ddim"])
def test_icg_w0_is_conditional_sampling_and_w_changes_it(which):
    m = _model()
    labels = torch.arange(K).repeat(3)
    x0 = torch.randn(len(labels), 3, generator=torch.Generator().manual_seed(1))

    def run(guider, fn):
        return sample(_schedulers()[which], fn, x0.clone(), guider=guider, progress=False,
                      generator=torch.Generator().manual_seed(2))

    plain = run(None, lambda x, t: m(x, torch.full((x.shape[0],), t), labels))
    icg0 = run(CFGGuider(0.0), independent_condition_model_fn(m, labels, torch.Generator().manual_seed(0)))
    icg2 = run(CFGGuider(2.0), independent_condition_model_fn(m, labels, torch.Generator().manual_seed(0)))
    torch.testing.assert_close(icg0, plain)
    assert torch.isfinite(icg2).all() and (icg2 - plain).abs().max() > 1e-3


def test_time_embedding_forward_is_the_model_forward():
    m = _model()
    x, c = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 4, 0])  # the null token included
    t = torch.tensor([0, 3, 17, 17, 30, 49])
    emb = _timestep_embedding(t, m.hidden, m.num_timesteps)
    torch.testing.assert_close(denoise_with_time_embedding(m, x, emb, c), m(x, t, c), rtol=0, atol=1e-6)


def test_tsg_branches():
    m = _model()
    labels = torch.tensor([0, 1, 2, K])
    x = torch.randn(4, 3)
    s = 1.5
    cond, pert = time_step_guidance_model_fn(m, labels, s, torch.Generator().manual_seed(4))(x, 25)
    t = torch.full((4,), 25)
    torch.testing.assert_close(cond, m(x, t, labels))  # the unperturbed branch is the model
    emb = _timestep_embedding(t, m.hidden, m.num_timesteps)
    n = torch.randn(emb.shape, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(pert, denoise_with_time_embedding(m, x, emb + s * n, labels))
    assert (pert - cond).abs().max() > 1e-3
    # s = 0: both branches coincide, whatever the noise
    c0, p0 = time_step_guidance_model_fn(m, labels, 0.0, torch.Generator().manual_seed(4))(x, 25)
    torch.testing.assert_close(c0, p0)
    with pytest.raises(ValueError):
        time_step_guidance_model_fn(m, labels, -1.0, torch.Generator())


@pytest.mark.parametrize("which", [0, 1], ids=["ddpm", "ddim"])
def test_tsg_zero_scale_is_a_no_op_and_positive_scale_guides(which):
    m = _model(1)
    labels = torch.arange(K).repeat(3)
    x0 = torch.randn(len(labels), 3, generator=torch.Generator().manual_seed(1))

    def run(guider, fn):
        return sample(_schedulers()[which], fn, x0.clone(), guider=guider, progress=False,
                      generator=torch.Generator().manual_seed(2))

    plain = run(None, lambda x, t: m(x, torch.full((x.shape[0],), t), labels))
    off = run(CFGGuider(3.0), time_step_guidance_model_fn(m, labels, 0.0, torch.Generator().manual_seed(0)))
    on = run(CFGGuider(3.0), time_step_guidance_model_fn(m, labels, 2.0, torch.Generator().manual_seed(0)))
    torch.testing.assert_close(off, plain, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(on).all() and (on - plain).abs().max() > 1e-3
