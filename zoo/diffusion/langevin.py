"""A Langevin corrector step, usable after any scheduler step (predictor-corrector sampling).

Yang Song, Jascha Sohl-Dickstein, Diederik P. Kingma, Abhishek Kumar, Stefano Ermon, Ben Poole,
"Score-Based Generative Modeling through Stochastic Differential Equations", ICLR 2021,
https://arxiv.org/abs/2011.13456 (Algorithm 5, the VP-SDE corrector, and its released code
``LangevinCorrector`` in ``sampling.py``).

Notation (code name -> paper symbol): ``alphas_cumprod[t]`` -> alpha-bar_t;
``1 - betas[t]`` -> alpha_i (Algorithm 5); ``snr`` -> r; ``step_size`` -> epsilon.

Equations, for each of ``n_steps`` corrector iterations at timestep t::

    score   = -eps_theta(x, t) / sqrt(1 - abar_t)          # grad_x log p_t(x) from an epsilon prediction
    z       ~ N(0, I)
    epsilon = 2 alpha_i (r ||z|| / ||score||)^2              # the SNR step-size rule
    x      <- x + epsilon score + sqrt(2 epsilon) z

Note:
    As in the authors' code, ``||z||`` and ``||score||`` are per-sample norms averaged over the
    batch, so one step size serves the whole batch. A per-sample step size is not offered: it
    depends on the sample itself, so the chain no longer targets p_t (in 2-D it blew a N(0, I)
    target's variance up to about 20).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["LangevinCorrector", "score_from_epsilon"]


def score_from_epsilon(eps_pred: torch.Tensor, alpha_cumprod: torch.Tensor | float) -> torch.Tensor:
    """score = -eps_theta / sqrt(1 - abar_t), the score of the noised marginal p_t."""
    abar = torch.as_tensor(alpha_cumprod, dtype=torch.float64)
    return -eps_pred / (1 - abar).sqrt().to(eps_pred.dtype)


class LangevinCorrector:
    """Langevin MCMC at a fixed noise level with Song et al.'s SNR step-size rule.

    Args:
        snr: r, the target signal-to-noise ratio of the step (0.16 for CIFAR-10 in the paper).
        n_steps: corrector iterations per call.

    Example:
        >>> import torch
        >>> from zoo.diffusion.ddpm import DDPMScheduler
        >>> sched = DDPMScheduler(100)
        >>> corr = LangevinCorrector(snr=0.16)
        >>> x = torch.randn(8, 2)
        >>> eps_fn = lambda x, t: (1 - sched.alphas_cumprod[t]).sqrt().float() * x  # N(0, I) target
        >>> corr.step(eps_fn, 50, x, sched).shape
        torch.Size([8, 2])
    """

    def __init__(self, snr: float = 0.16, n_steps: int = 1) -> None:
        if snr <= 0:
            raise ValueError(f"snr must be positive, got {snr}")
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        self.snr = float(snr)
        self.n_steps = int(n_steps)

    def step(
        self,
        eps_fn: Callable[[torch.Tensor, int], torch.Tensor],
        t: int,
        x: torch.Tensor,
        scheduler,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Run ``n_steps`` Langevin iterations on x at timestep ``t`` (Algorithm 5, inner loop).

        Args:
            eps_fn: ``eps_fn(x, t) -> eps_theta`` (for guidance: the guided epsilon).
            t: the timestep whose marginal p_t the corrector targets, in ``[0, T)``.
            x: the current sample (usually a scheduler step's ``prev_sample`` at ``t``).
            scheduler: any scheduler with ``alphas_cumprod`` and ``betas`` (DDPM, DDIM).
            generator: random source for z.

        Returns:
            The corrected sample, shape of ``x``.
        """
        t = int(t)
        abar = scheduler.alphas_cumprod[t]
        alpha = float(1 - scheduler.betas[t])  # alpha_i of Algorithm 5
        for _ in range(self.n_steps):
            score = score_from_epsilon(eps_fn(x, t), abar)
            gen_device = generator.device if generator is not None else x.device
            z = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
            g_norm = score.reshape(len(x), -1).norm(dim=-1).mean()
            z_norm = z.reshape(len(x), -1).norm(dim=-1).mean()
            step_size = 2 * alpha * (self.snr * z_norm / g_norm.clamp(min=1e-12)) ** 2  # SNR rule
            x = x + step_size * score + (2 * step_size).sqrt() * z
        return x

    def __repr__(self) -> str:
        return f"LangevinCorrector(snr={self.snr}, n_steps={self.n_steps})"
