"""Classifier guidance with a noise-conditional classifier, and the flow-matching post-step (Zhao & Schwing 2025).

Reference: Xiaoming Zhao, Alexander G. Schwing, "Studying Classifier(-Free) Guidance From a
Classifier-Centric Perspective", arXiv 2503.10638 (2025); classifier guidance itself is Dhariwal &
Nichol 2021 ("Diffusion Models Beat GANs", Alg. 2 / eq. 14 for DDIM).

Notation: ``x`` -> x_t, ``abar`` -> alpha-bar_t, ``classifier(x, t)`` -> logits of p_phi(c | x_t),
``s`` -> the classifier-guidance scale, ``eps_u`` -> the unconditional epsilon prediction.

Classifier guidance (Dhariwal & Nichol eq. 14)::

    eps_hat(x_t, c) = eps_u(x_t) - s sqrt(1 - abar_t) grad_x log p_phi(c | x_t)

At ``s = 1`` this is Bayes' rule for the conditional epsilon (``grad log p(x_t|c) = grad log p(x_t) +
grad log p(c|x_t)``). :func:`classifier_guidance_model_fn` returns the pair
``(eps_u - sqrt(1 - abar) grad log p(c|x_t), eps_u)``, i.e. the classifier-implied conditional and the
unconditional prediction, so classifier guidance is any :class:`~zoo.diffusion.guidance.Guider` on
that pair: :class:`~zoo.diffusion.guidance.CFGGuider` ``(w)`` gives
``eps_u - (1 + w) sqrt(1 - abar) grad log p(c|x_t)``, classifier guidance with scale ``s = 1 + w``
(schedules of normalised progress apply unchanged), under any scheduler (DDPM, DDIM).

The paper's finding (its Sec. 3.2-3.3, on 1-D/2-D mixtures): both classifier guidance and CFG act by
pushing the denoising trajectories away from the classifier's decision boundary, more so for larger
guidance; generation is worst near the boundary, where conditional information is entangled.

The flow-matching post-step (its Sec. 3.4): learn a class-conditional flow from the pretrained
model's generated distribution to the real data distribution and push the generated samples through
it. With ``x_0 ~ q_gen(. | c)`` (generated), ``x_1 ~ p_data(. | c)`` (real, same class), paired at
random, ``x_s = (1 - s) x_0 + s x_1`` and the conditional flow-matching loss (Lipman et al. 2023)::

    L(theta) = E_{s ~ U[0,1]} || v_theta(x_s, s, c) - (x_1 - x_0) ||^2

then ``dx/ds = v_theta(x, s, c)`` is integrated from ``s = 0`` to 1 (:func:`postprocess`, Euler). The
paper reports that the post-step mostly moves samples near the decision boundaries, where the
pretrained model's distribution departs most from the data.

Departures: an MLP classifier and velocity field (the paper uses U-Nets on images); random
(independent) same-class pairing (no minibatch-OT coupling); Euler integration with ``steps`` steps.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = [
    "FlowVelocity",
    "NoisyClassifier",
    "classifier_guidance_model_fn",
    "classifier_log_prob_grad",
    "flow_matching_loss",
    "noisy_classifier_loss",
    "pair_by_class",
    "postprocess",
]


def _embed(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of a scalar in [0, 1] per row, ``(N, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=s.device, dtype=torch.float32) / half)
    args = (s.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class NoisyClassifier(nn.Module):
    """An MLP p_phi(c | x_t, t): logits from x_t and a sinusoidal embedding of t / T.

    Args:
        data_dim: dimension of x.
        num_classes: number of classes.
        num_timesteps: T (t is an integer in [0, T)).
        hidden: width; depth: number of hidden layers.
    """

    def __init__(self, data_dim: int, num_classes: int, num_timesteps: int, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.data_dim, self.num_classes, self.num_timesteps = data_dim, num_classes, num_timesteps
        self.temb = 32
        layers: list[nn.Module] = [nn.Linear(data_dim + self.temb, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, _embed(t.float() / self.num_timesteps, self.temb)], dim=1))


def noisy_classifier_loss(classifier: nn.Module, scheduler, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of p_phi(y | x_t, t) on x_t = add_noise(x0, eps, t), t ~ U{0..T-1} (Dhariwal & Nichol)."""
    t = torch.randint(0, scheduler.num_train_timesteps, (x0.shape[0],), device=x0.device)
    xt = scheduler.add_noise(x0, torch.randn_like(x0), t)
    return nn.functional.cross_entropy(classifier(xt, t), y)


def classifier_log_prob_grad(classifier: nn.Module, x: torch.Tensor, t: int, labels: torch.Tensor) -> torch.Tensor:
    """grad_x log p_phi(c | x_t) per row (the classifier's weights are not differentiated)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        logp = torch.log_softmax(classifier(xg, tt), dim=1).gather(1, labels[:, None]).sum()
        (g,) = torch.autograd.grad(logp, xg)
    return g


def classifier_guidance_model_fn(
    eps_uncond: Callable[[torch.Tensor, int], torch.Tensor],
    classifier: nn.Module,
    labels: torch.Tensor,
    alphas_cumprod: torch.Tensor,
) -> Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]:
    """``(x, t) -> (eps_u - sqrt(1 - abar_t) grad log p(c|x_t), eps_u)`` for any Guider (see the module doc).

    With :class:`~zoo.diffusion.guidance.CFGGuider` ``(w)`` this is classifier guidance of scale
    ``1 + w``; ``w = -1`` is the unconditional model, ``w = 0`` Bayes' rule with the classifier.
    """

    def fn(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        eu = eps_uncond(x, t)
        abar = float(alphas_cumprod[int(t)])
        g = classifier_log_prob_grad(classifier, x, t, labels)
        return eu - math.sqrt(1.0 - abar) * g, eu

    return fn


class FlowVelocity(nn.Module):
    """A class-conditional velocity field v_theta(x, s, c), s in [0, 1] (the post-step's flow)."""

    def __init__(self, data_dim: int, num_classes: int, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.data_dim, self.num_classes = data_dim, num_classes
        self.semb = 32
        self.cemb = nn.Embedding(num_classes, self.semb)
        layers: list[nn.Module] = [nn.Linear(data_dim + self.semb, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, data_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, _embed(s, self.semb) + self.cemb(c)], dim=1))


def flow_matching_loss(model: nn.Module, x_gen: torch.Tensor, x_real: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """|| v(x_s, s, c) - (x_real - x_gen) ||^2 at x_s = (1 - s) x_gen + s x_real, s ~ U[0, 1] (row-paired)."""
    s = torch.rand(x_gen.shape[0], device=x_gen.device)
    xs = (1 - s[:, None]) * x_gen + s[:, None] * x_real
    return (model(xs, s, c) - (x_real - x_gen)).pow(2).sum(1).mean()


def pair_by_class(x_gen: torch.Tensor, y_gen: torch.Tensor, x_real: torch.Tensor, y_real: torch.Tensor,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each generated sample paired with a random real sample of its class: ``(x_gen, x_real_paired, y)``."""
    out = torch.empty_like(x_gen)
    for k in y_gen.unique().tolist():
        gi = torch.nonzero(y_gen == k).flatten()
        ri = torch.nonzero(y_real == k).flatten()
        pick = torch.randint(len(ri), (len(gi),), generator=generator).to(ri.device)
        out[gi] = x_real[ri[pick]]
    return x_gen, out, y_gen


@torch.no_grad()
def postprocess(model: nn.Module, x: torch.Tensor, c: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Integrate dx/ds = v(x, s, c) from s = 0 to 1 by ``steps`` Euler steps (the post-step)."""
    h = 1.0 / steps
    for i in range(steps):
        s = torch.full((x.shape[0],), i * h, device=x.device)
        x = x + h * model(x, s, c)
    return x
