"""NoProp-DT: blocks trained independently to denoise a noisy label embedding (discrete time).

Qinyu Li, Yee Whye Teh, Razvan Pascanu. *NoProp: Training Neural Networks without
Back-propagation or Forward-propagation*. 2025. https://arxiv.org/abs/2503.24322

Written from the paper (no authors' code was published with it); nothing is copied.

Notation (code name: paper symbol). Time runs from noise (``t = 0``) to the label (``t = T``):

* ``T`` (``len(model.blocks)``): the number of blocks and of denoising steps;
* ``model.embed`` (``C x d``): ``W_Embed``, row ``y`` is the class embedding ``u_y``;
* ``alpha_bar[t]``: ``ᾱ_t = prod_{s=t}^{T} α_s``, so ``q(z_t | y) = N(sqrt(ᾱ_t) u_y, (1 - ᾱ_t) I)``;
* ``snr(t) = ᾱ_t / (1 - ᾱ_t)``: ``SNR(t)``;
* ``a[t], b[t], c[t]``: the coefficients of the posterior ``q(z_t | z_{t-1}, y)`` (below);
* ``model.blocks[t-1]``: ``û_θt(z_{t-1}, x)``, block ``t``'s prediction of ``u_y``;
* ``model.head``: ``p̂_θout(y | z_T)``, a linear layer and a softmax;
* ``eta``: ``η``, the weight of the denoising terms.

The variational posterior is fixed: ``q(z_{t-1} | z_t) = N(sqrt(α_{t-1}) z_t, (1 - α_{t-1}) I)``.
Its Bayes posterior given ``y`` is ``q(z_t | z_{t-1}, y) = N(a_t u_y + b_t z_{t-1}, c_t I)``::

    a_t = sqrt(ᾱ_t) (1 - α_{t-1}) / (1 - ᾱ_{t-1})
    b_t = sqrt(α_{t-1}) (1 - ᾱ_t) / (1 - ᾱ_{t-1})
    c_t = (1 - ᾱ_t) (1 - α_{t-1}) / (1 - ᾱ_{t-1})

and the model's step is ``p(z_t | z_{t-1}, x) = N(a_t û_θt(z_{t-1}, x) + b_t z_{t-1}, c_t I)``.
The ELBO's per-step KL is then ``a_t^2 / (2 c_t) ||û_θt - u_y||^2 = (SNR(t) - SNR(t-1)) / 2 ||û_θt - u_y||^2``,
and the NoProp objective (the paper's Eq. 8) is::

    L = E_{q(z_T|y)}[-log p̂_θout(y | z_T)] + D_KL(q(z_0 | y) || N(0, I))
        + (T / 2) η E_{t ~ U{1..T}} E_{q(z_{t-1}|y)} [(SNR(t) - SNR(t-1)) ||û_θt(z_{t-1}, x) - u_y||^2]

Training (the paper's Algorithm 1, NoProp-DT): for each block ``t = 1..T`` in turn, for every
mini-batch, draw ``z_{t-1} ~ q(z_{t-1} | y)`` and ``z_T ~ q(z_T | y)`` and take one gradient step on
block ``t``'s term plus the classifier and KL terms, updating ``θ_t``, ``θ_out`` and ``W_Embed``
(:func:`train_block_step`). No gradient crosses blocks: block ``t`` sees only ``x`` and a sample of
the fixed posterior, never another block's output. Inference (the paper's Eq. 3)::

    z_0 ~ N(0, I);   z_t = a_t û_θt(z_{t-1}, x) + b_t z_{t-1} + sqrt(c_t) ε_t,  t = 1..T;   ŷ = argmax p̂_θout(y | z_T)

Each block (the paper's Fig. 6, with an MLP in place of the convolutional image path): ``x``
through its own MLP (``hidden``, ReLU) to features ``h_x``; ``z_{t-1}`` through one linear layer and
ReLU to ``h_z``; ``[h_x, h_z]`` through a linear layer and ReLU, then a linear layer to class
logits; ``û = softmax(logits) W_Embed``, a convex combination of the class embeddings.

Departures from the paper (stated, none changes the rule):

* the image path is an MLP (the paper's MNIST/CIFAR blocks are CNNs) and there is no batch norm;
* the noise schedule is the cosine schedule put on ``T + 1`` levels (:func:`cosine_alpha_bar`), so
  ``ᾱ_0 = 0`` (pure noise, hence ``D_KL(q(z_0|y) || N(0, I)) = 0``) and ``ᾱ_T < 1`` (``SNR(T)`` finite);
* each block has its own Adam optimizer, and the classifier with the embedding another one
  (the paper trains with AdamW and does not say how the optimizer state is shared);
* ``W_Embed`` is ``C x d`` with ``d = C`` by default, initialised to the identity (one-hot
  embeddings) and learned (``learn_embedding=False`` keeps it one-hot);
* inference draws its noise from a generator seeded by the caller, so evaluation is repeatable.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["NoPropDT", "DenoisingBlock", "cosine_alpha_bar", "posterior_coefficients", "snr",
           "noprop_block_loss", "train_block_step", "predict", "make_optimizers"]


def cosine_alpha_bar(T: int, s: float = 0.008) -> torch.Tensor:
    """``ᾱ_t`` for ``t = 0..T`` (float64): the cosine schedule on ``T + 1`` levels, noise at ``t = 0``.

    ``ᾱ_t = f(τ_t) / f(0)`` with ``f(τ) = cos^2(π/2 (τ + s) / (1 + s))`` and ``τ_t = (T + 1 - t) / (T + 1)``:
    ``ᾱ_0 = 0`` and ``ᾱ_T = f(1 / (T + 1)) / f(0) < 1``, increasing in ``t``.
    """
    if T < 1:
        raise ValueError(f"NoProp needs at least one block, got T={T}")
    t = torch.arange(T + 1, dtype=torch.float64)
    tau = (T + 1 - t) / (T + 1)
    f = torch.cos(0.5 * math.pi * (tau + s) / (1 + s)) ** 2
    f0 = math.cos(0.5 * math.pi * s / (1 + s)) ** 2
    ab = (f / f0).clamp(0.0, 1.0)
    ab[0] = 0.0  # cos(π/2) rounds to ~1e-33, not 0
    return ab


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """``SNR(t) = ᾱ_t / (1 - ᾱ_t)``."""
    return alpha_bar / (1.0 - alpha_bar)


def posterior_coefficients(alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a, b, c)``, each of length ``T + 1`` (index ``t``; entry 0 unused, NaN), of ``q(z_t | z_{t-1}, y)``.

    ``α_{t-1} = ᾱ_{t-1} / ᾱ_t`` (from ``ᾱ_t = prod_{s=t}^T α_s``).
    """
    ab = alpha_bar
    alpha_prev = ab[:-1] / ab[1:]  # α_{t-1}, t = 1..T
    ab_t, ab_prev = ab[1:], ab[:-1]
    a = ab_t.sqrt() * (1 - alpha_prev) / (1 - ab_prev)
    b = alpha_prev.sqrt() * (1 - ab_t) / (1 - ab_prev)
    c = (1 - ab_t) * (1 - alpha_prev) / (1 - ab_prev)
    nan = torch.full((1,), float("nan"), dtype=ab.dtype)
    return torch.cat([nan, a]), torch.cat([nan, b]), torch.cat([nan, c])


class DenoisingBlock(nn.Module):
    """``û_θt(z_{t-1}, x)``: predicts the clean label embedding from the input and a noisy embedding."""

    def __init__(self, in_features: int, hidden: Sequence[int], embed_dim: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.x_path = nn.Sequential(*layers)
        self.z_path = nn.Sequential(nn.Linear(embed_dim, width), nn.ReLU())
        self.fuse = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, num_classes))

    def logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.x_path(x.flatten(1)), self.z_path(z)], 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """``û = softmax(logits) W_Embed``."""
        return self.logits(x, z).softmax(1) @ embed


class NoPropDT(nn.Module):
    """A NoProp-DT classifier: ``T`` denoising blocks, a class embedding and a classifier on ``z_T``.

    Args:
        in_features: input size (inputs are flattened).
        hidden: the hidden sizes of each block's image path (an MLP).
        num_classes: ``C``.
        T: the number of blocks (the paper uses 10).
        embed_dim: ``d``; default ``C`` (identity initialisation).
        learn_embedding: learn ``W_Embed`` (else it stays fixed).
        eta: ``η``.

    Example:
        >>> m = NoPropDT(64, [32], 10, T=3)
        >>> predict(m, torch.rand(5, 64), torch.Generator().manual_seed(0)).shape
        torch.Size([5])
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, T: int = 10,
                 embed_dim: int | None = None, learn_embedding: bool = True, eta: float = 0.1) -> None:
        super().__init__()
        d = num_classes if embed_dim is None else embed_dim
        self.num_classes, self.embed_dim, self.eta = num_classes, d, float(eta)
        self.blocks = nn.ModuleList(DenoisingBlock(in_features, hidden, d, num_classes) for _ in range(T))
        w = torch.eye(num_classes, d) if d == num_classes else torch.nn.init.orthogonal_(torch.empty(num_classes, d))
        self.embed = nn.Parameter(w, requires_grad=learn_embedding)
        self.head = nn.Linear(d, num_classes)
        ab = cosine_alpha_bar(T)
        a, b, c = posterior_coefficients(ab)
        for name, v in (("alpha_bar", ab), ("a", a), ("b", b), ("c", c)):
            self.register_buffer(name, v.float(), persistent=False)
        self.register_buffer("snr_diff", torch.cat([torch.zeros(1, dtype=torch.float64), snr(ab)[1:] - snr(ab)[:-1]]).float(),
                             persistent=False)

    @property
    def T(self) -> int:
        return len(self.blocks)

    def sample_q(self, y: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z_t ~ q(z_t | y) = N(sqrt(ᾱ_t) u_y, (1 - ᾱ_t) I)``."""
        u = self.embed[y]
        eps = torch.randn(u.shape, generator=generator, device="cpu").to(u.device, u.dtype)
        return self.alpha_bar[t].sqrt() * u + (1 - self.alpha_bar[t]).sqrt() * eps


def noprop_block_loss(model: NoPropDT, t: int, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Block ``t``'s NoProp-DT loss on a mini-batch (``1 <= t <= T``), means over the batch::

        -log p̂_θout(y | z_T) + D_KL(q(z_0|y) || N(0,I)) + (T/2) η (SNR(t) - SNR(t-1)) ||û_θt(z_{t-1}, x) - u_y||^2

    with ``z_{t-1}, z_T ~ q(· | y)`` drawn from ``generator`` (``z_{t-1}`` first). Gradients reach
    ``θ_t``, ``θ_out`` and ``W_Embed`` only: the sampled ``z``'s carry the embedding's gradient (the
    reparameterisation), no other block is involved.
    """
    if not 1 <= t <= model.T:
        raise ValueError(f"block index t must be in 1..{model.T}, got {t}")
    u = model.embed[y]
    z_prev = model.sample_q(y, t - 1, generator)
    u_hat = model.blocks[t - 1](x, z_prev, model.embed)
    denoise = 0.5 * model.T * model.eta * model.snr_diff[t] * ((u_hat - u) ** 2).sum(1).mean()
    z_T = model.sample_q(y, model.T, generator)
    ce = F.cross_entropy(model.head(z_T), y)
    ab0 = model.alpha_bar[0]
    # KL(N(m, s I) || N(0, I)) = 1/2 (||m||^2 + d s - d - d log s), m = sqrt(ᾱ_0) u_y, s = 1 - ᾱ_0
    d = model.embed_dim
    s0 = (1 - ab0).clamp_min(1e-12)
    kl = 0.5 * (ab0 * (u ** 2).sum(1) + d * s0 - d - d * torch.log(s0)).mean()
    loss = ce + kl + denoise
    return loss, {"ce": float(ce.detach()), "kl": float(kl.detach()), "denoise": float(denoise.detach())}


def make_optimizers(model: NoPropDT, lr: float, weight_decay: float = 0.0) -> list[torch.optim.Optimizer]:
    """One Adam per block (index ``t - 1``) and, last, one for the classifier and the embedding."""
    opts: list[torch.optim.Optimizer] = [torch.optim.Adam(b.parameters(), lr=lr, weight_decay=weight_decay)
                                         for b in model.blocks]
    shared = list(model.head.parameters()) + ([model.embed] if model.embed.requires_grad else [])
    opts.append(torch.optim.Adam(shared, lr=lr, weight_decay=weight_decay))
    return opts


def train_block_step(model: NoPropDT, opts: list[torch.optim.Optimizer], t: int, x: torch.Tensor, y: torch.Tensor,
                     generator: torch.Generator | None = None) -> float:
    """One step of Algorithm 1 on block ``t``: update ``θ_t``, ``θ_out`` and ``W_Embed``; returns the loss."""
    block_opt, shared_opt = opts[t - 1], opts[-1]
    block_opt.zero_grad(set_to_none=True)
    shared_opt.zero_grad(set_to_none=True)
    loss, _ = noprop_block_loss(model, t, x, y, generator)
    loss.backward()
    block_opt.step()
    shared_opt.step()
    return float(loss.detach())


@torch.no_grad()
def predict(model: NoPropDT, x: torch.Tensor, generator: torch.Generator | None = None,
            return_logits: bool = False) -> torch.Tensor:
    """The paper's inference (Eq. 3): ``z_0 ~ N(0, I)``, ``T`` denoising steps, ``argmax p̂_θout(y | z_T)``."""
    n = x.shape[0]
    z = torch.randn((n, model.embed_dim), generator=generator, device="cpu").to(x.device, model.embed.dtype)
    for t in range(1, model.T + 1):
        u_hat = model.blocks[t - 1](x, z, model.embed)
        eps = torch.randn(z.shape, generator=generator, device="cpu").to(z.device, z.dtype)
        z = model.a[t] * u_hat + model.b[t] * z + model.c[t].sqrt() * eps
    logits = model.head(z)
    return logits if return_logits else logits.argmax(1)
