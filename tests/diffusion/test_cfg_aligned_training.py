"""cfg_aligned_loss (our reading of Patel et al. 2023): w = 0 is the CFG training loss; conditional rows fit the
guided combination; the unconditional branch gets gradient only from its own rows when detached."""

import torch

from zoo.diffusion.cfg_aligned_training import cfg_aligned_loss
from zoo.diffusion.classifier_free_guidance import ConditionalDenoiser, classifier_free_guidance_loss
from zoo.diffusion.ddpm import DDPMScheduler


def _setup():
    torch.manual_seed(0)
    model = ConditionalDenoiser(3, 2, 100, hidden=16, depth=1)
    sched = DDPMScheduler(100)
    x0 = torch.randn(32, 3)
    c = torch.randint(0, 2, (32,))
    return model, sched, x0, c


def _g():
    return torch.Generator().manual_seed(5)


def test_w_zero_is_the_cfg_training_loss():
    model, sched, x0, c = _setup()
    a = cfg_aligned_loss(model, sched, x0, c, w=0.0, p_uncond=0.2, generator=_g())
    b = classifier_free_guidance_loss(model, sched, x0, c, p_uncond=0.2, generator=_g())
    torch.testing.assert_close(a, b)


class _Stub(torch.nn.Module):
    """eps_theta = a for a class label, b for the null token (so the loss is known in closed form)."""

    null_class = 2

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.3))
        self.b = torch.nn.Parameter(torch.tensor(-0.2))

    def forward(self, x, t, c):
        return torch.where((c == self.null_class)[:, None], self.b, self.a).expand_as(x)


def test_conditional_rows_fit_the_guided_combination_and_dropped_rows_the_unconditional():
    _, sched, x0, c = _setup()
    stub, w = _Stub(), 2.0
    g = _g()
    loss = cfg_aligned_loss(stub, sched, x0, c, w=w, p_uncond=0.25, generator=g)
    # replay the same draws
    g = _g()
    drop = torch.rand(c.shape, generator=g) < 0.25
    sched.sample_timesteps(32, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    guided = (1 + w) * 0.3 - w * (-0.2)
    pred = torch.where(drop[:, None], torch.tensor(-0.2), torch.tensor(guided))
    torch.testing.assert_close(loss, ((pred - eps) ** 2).mean())


def test_unconditional_branch_is_fitted_only_by_its_own_rows_when_detached():
    _, sched, x0, c = _setup()
    for detach, expect_zero in ((True, True), (False, False)):
        stub = _Stub()
        cfg_aligned_loss(stub, sched, x0, c, w=3.0, p_uncond=0.0, detach_uncond=detach, generator=_g()).backward()
        assert (stub.b.grad is None or float(stub.b.grad) == 0.0) == expect_zero
        assert float(stub.a.grad) != 0.0
