"""DiffEnc (Nielsen et al., ICLR 2024): a continuous-time VDM whose forward mean is a learned encoder.

Variational diffusion model (Kingma et al., 2021) in continuous time with a FIXED linear schedule
``gamma(t) = gamma_min + (gamma_max - gamma_min) t`` (``lambda_t = log SNR(t) = -gamma(t)``),
``alpha_t^2 = sigmoid(-gamma)``, ``sigma_t^2 = sigmoid(gamma)``. DiffEnc replaces the data ``x`` in
the forward marginal by a time-dependent encoder,

    q(z_t | x) = N(alpha_t x_phi(x, t), sigma_t^2 I),

with the paper's trainable parameterisation ``x_phi(x, t) = (1 - sigma_t^2) x + sigma_t^2 y_phi(x, t)``
(:class:`LearnedEncoder`; ``x_phi(x, 0) ~ x``), and the identity ``x_phi = x`` for plain VDM
(:class:`IdentityEncoder`). The generative model applies the same encoder to its data prediction
``x_hat = (z_t - sigma_t eps_hat(z_t, t)) / alpha_t``: p(z_s | z_t) = q(z_s | z_t, x = x_hat).
Taking s -> t in the per-step KL gives the paper's continuous-time diffusion loss (their eq. for
``L_infty``, written in t):

    L_diff = -1/2 E_{t, eps} [ lambda'_t e^{lambda_t} || v(x, t) - v(x_hat, t) ||^2 ],
    v(x, t) = x_phi(x, t) + d x_phi(x, t) / d lambda_t = x_phi(x, t) + (d x_phi / dt) / lambda'_t,

where ``d/dt`` is the partial derivative in the time argument (x held fixed; computed exactly
with a forward-mode JVP). For the identity encoder the derivative vanishes and this is VDM's
``1/2 gamma'(t) e^{-gamma(t)} ||x - x_hat||^2``. The ELBO (negative, in nats per example) is

    -ELBO = L_diff + KL(q(z_1 | x) || N(0, I)) + E_{q(z_0|x)}[-log p(x | z_0)],

with VDM's discrete decoder: ``p(x_i | z_0)`` a softmax over the data's K levels ``v_k`` with
logits ``-(z_0,i / alpha_0 - v_k)^2 / (2 sigma_0^2 / alpha_0^2)``. Bits per dimension divide by
``D ln 2``.

Departures: fixed (not learned) noise schedule; MLP denoiser and encoder instead of U-Nets; the
time derivative is taken in t and divided by ``lambda'_t`` (identical for a fixed schedule); an
eps-predicting denoiser, and the generative side applies the encoder exactly to ``x_hat``
(``v(x_hat, t)`` with its own JVP), where the authors' code (``sigma3_v_approx_model.py``)
predicts v and approximates the generative encoder's time derivative. Both are valid ELBOs of the
same forward process; ours is the paper's general form ``p(z_s|z_t) = q(z_s|z_t, x = x_hat)``.

Example:
    >>> import torch
    >>> from zoo.diffusion.diffenc import VDM, LearnedEncoder
    >>> m = VDM(dim=4, levels=17, hidden=8, encoder=LearnedEncoder(4, 8))
    >>> x = torch.linspace(-1, 1, 17)[torch.randint(0, 17, (3, 4))]
    >>> terms = m.loss_terms(x)
    >>> tuple(terms["diffusion"].shape)
    (3,)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import jvp

__all__ = ["LinearSchedule", "IdentityEncoder", "LearnedEncoder", "Denoiser", "VDM", "discrete_levels"]


def discrete_levels(levels: int) -> torch.Tensor:
    """The K data values ``v_k`` in [-1, 1] (bin width ``2 / (K - 1)``)."""
    return torch.linspace(-1.0, 1.0, int(levels))


class LinearSchedule(nn.Module):
    """``gamma(t) = gamma_min + (gamma_max - gamma_min) t`` (fixed; -7 and 5 by default: VDM learns its ends, we fix them so that sigma_0 / alpha_0 ~ 0.03 is a quarter of the 17-level bin half-width)."""

    def __init__(self, gamma_min: float = -7.0, gamma_max: float = 5.0) -> None:
        super().__init__()
        self.gamma_min, self.gamma_max = float(gamma_min), float(gamma_max)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.gamma_min + (self.gamma_max - self.gamma_min) * t

    def dgamma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, self.gamma_max - self.gamma_min)


def _time_features(t: torch.Tensor, n: int = 8) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (smooth, so d/dt exists)."""
    freqs = torch.arange(1, n + 1, device=t.device, dtype=t.dtype) * math.pi
    return torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], 1)


def _mlp(inp: int, hidden: int, out: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = inp
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, out))
    return nn.Sequential(*layers)


class IdentityEncoder(nn.Module):
    """VDM: ``x_phi(x, t) = x``."""

    learned = False

    def forward(self, x: torch.Tensor, t: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
        return x


class LearnedEncoder(nn.Module):
    """DiffEnc's trainable encoder ``x_phi(x, t) = (1 - sigma_t^2) x + sigma_t^2 y_phi(x, t)``.

    ``y_phi(x, t) = x + h(x, t)`` with ``h`` an MLP on ``(x, time features)`` whose last layer starts
    at zero, so the encoder is the identity at initialisation (the authors' ``id_at_zero`` inner
    encoder with a zero-initialised output convolution): DiffEnc starts from the very VDM it is
    compared with. ``sigma2`` is ``sigma_t^2`` of the schedule (passed in so the encoder's time
    derivative includes the schedule's part).
    """

    learned = True

    def __init__(self, dim: int, hidden: int = 128, depth: int = 2) -> None:
        super().__init__()
        self.net = _mlp(dim + 16, hidden, dim, depth)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
        y = x + self.net(torch.cat([x, _time_features(t)], 1))
        s2 = sigma2[:, None]
        return (1.0 - s2) * x + s2 * y


class Denoiser(nn.Module):
    """``eps_hat(z_t, t)``: an MLP on ``(z_t, time features)``."""

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3) -> None:
        super().__init__()
        self.net = _mlp(dim + 16, hidden, dim, depth)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, _time_features(t)], 1))


class VDM(nn.Module):
    """Continuous-time VDM with an encoder (identity: VDM; :class:`LearnedEncoder`: DiffEnc).

    :meth:`loss_terms` returns per-example ``diffusion``, ``prior`` and ``recon`` (nats) and their sum
    ``nelbo``; :meth:`bpd` divides by ``D ln 2``.
    """

    def __init__(self, dim: int, levels: int, hidden: int = 256, depth: int = 3, encoder: nn.Module | None = None,
                 schedule: LinearSchedule | None = None) -> None:
        super().__init__()
        self.dim, self.levels = int(dim), int(levels)
        self.denoiser = Denoiser(dim, hidden, depth)
        self.encoder = encoder if encoder is not None else IdentityEncoder()
        self.schedule = schedule if schedule is not None else LinearSchedule()
        self.register_buffer("values", discrete_levels(levels))

    # -- the encoder and its derivative in t (x fixed)
    def encode(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, t, torch.sigmoid(self.schedule(t)))

    def encode_with_dt(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_phi(x, t), d x_phi(x, t) / dt)``; exact forward-mode JVP (zero for the identity)."""
        if not getattr(self.encoder, "learned", True):
            return x, torch.zeros_like(x)
        return jvp(lambda tt: self.encode(x, tt), (t,), (torch.ones_like(t),))

    def v_target(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_phi + d x_phi / d lambda`` with ``lambda = -gamma``, so ``d/d lambda = -(d/dt) / gamma'``."""
        m, dm = self.encode_with_dt(x, t)
        return m - dm / self.schedule.dgamma(t)[:, None]

    def loss_terms(self, x: torch.Tensor, t: torch.Tensor | None = None, generator: torch.Generator | None = None,
                   eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-example terms of -ELBO (nats) for data ``x`` on the K levels in [-1, 1].

        ``t`` defaults to VDM's low-discrepancy sampler ``(u + i / B) mod 1``.
        """
        b = x.shape[0]
        dev = x.device
        if t is None:
            u = torch.rand((), generator=generator, device=dev) if generator is None or generator.device == dev \
                else torch.rand((), generator=generator).to(dev)
            t = torch.remainder(u + torch.arange(b, device=dev, dtype=x.dtype) / b, 1.0)
        if eps is None:
            eps = torch.randn(x.shape, generator=generator).to(dev) if generator is not None else torch.randn_like(x)
        g = self.schedule(t)
        alpha, sigma = torch.sqrt(torch.sigmoid(-g))[:, None], torch.sqrt(torch.sigmoid(g))[:, None]
        m = self.encode(x, t)
        z = alpha * m + sigma * eps
        x_hat = (z - sigma * self.denoiser(z, t)) / alpha
        diff = self.v_target(x, t) - self.v_target(x_hat, t)
        # -1/2 lambda' e^lambda = 1/2 gamma' e^{-gamma}
        diffusion = 0.5 * self.schedule.dgamma(t) * torch.exp(-g) * diff.pow(2).sum(1)

        # prior: KL(N(alpha_1 m_1, sigma_1^2) || N(0, 1)) per dim
        one = torch.ones(b, device=dev, dtype=x.dtype)
        g1 = self.schedule(one)
        a1sq, s1sq = torch.sigmoid(-g1)[:, None], torch.sigmoid(g1)[:, None]
        mean1 = a1sq.sqrt() * self.encode(x, one)
        prior = 0.5 * (s1sq + mean1.pow(2) - 1.0 - torch.log(s1sq)).sum(1)

        # reconstruction: discrete decoder at t = 0
        zero = torch.zeros(b, device=dev, dtype=x.dtype)
        g0 = self.schedule(zero)
        a0, s0 = torch.sqrt(torch.sigmoid(-g0))[:, None], torch.sqrt(torch.sigmoid(g0))[:, None]
        eps0 = torch.randn(x.shape, generator=generator).to(dev) if generator is not None else torch.randn_like(x)
        z0 = a0 * self.encode(x, zero) + s0 * eps0
        recon = -self.log_decoder(x, z0, a0, s0).sum(1)
        return {"diffusion": diffusion, "prior": prior, "recon": recon, "nelbo": diffusion + prior + recon}

    def log_decoder(self, x: torch.Tensor, z0: torch.Tensor, a0: torch.Tensor, s0: torch.Tensor) -> torch.Tensor:
        """``log p(x_i | z_0)``: softmax over the K levels, logits ``-(z_0/alpha_0 - v_k)^2 / (2 (sigma_0/alpha_0)^2)``."""
        var = (s0 / a0).pow(2)[..., None]
        logits = -((z0 / a0)[..., None] - self.values).pow(2) / (2.0 * var)
        logp = torch.log_softmax(logits, -1)
        idx = torch.round((x + 1.0) * (self.levels - 1) / 2.0).long().clamp(0, self.levels - 1)
        return logp.gather(-1, idx[..., None]).squeeze(-1)

    def bpd(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """Each term's mean over the batch in bits per dimension."""
        c = self.dim * math.log(2.0)
        return {k: float(v.mean()) / c for k, v in terms.items()}
