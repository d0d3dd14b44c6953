"""Analytic references for diffusion and guidance: exact Gaussian-mixture scores, tilted targets, distances.

Training-free guidance claims need ground truth, not another model. For a Gaussian mixture every
quantity a denoiser learns is available in closed form at every noise level, so a sampler or a
guider can be run on the *exact* epsilon and compared with the *exact* target. Conventions follow
:mod:`zoo.diffusion.ddpm` (VP forward process, diffusers' discrete timesteps; ``abar`` is
alpha-bar_t, e.g. ``DDPMScheduler.alphas_cumprod[t]``).

Notation (code name -> symbol): ``means[k]`` -> mu_k, ``covs[k]`` -> Sigma_k, ``weights[k]`` -> pi_k,
``labels[k]`` -> the class of component k, ``abar`` -> alpha-bar_t, ``w`` -> the tilt / guidance
weight.

Equations:

* mixture: ``p(x) = sum_k pi_k N(x; mu_k, Sigma_k)``;
  responsibilities ``r_k(x) = pi_k N(x; mu_k, Sigma_k) / p(x)``;
  score ``grad log p(x) = -sum_k r_k(x) Sigma_k^{-1} (x - mu_k)``.
* VP-noised marginal (DDPM eq. 4, ``x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps``): Gaussians stay
  Gaussian under an affine map plus independent Gaussian noise, so
  ``p_t(x) = sum_k pi_k N(x; sqrt(abar) mu_k, abar Sigma_k + (1 - abar) I)`` (:meth:`GaussianMixture.noised`).
* optimal epsilon-prediction (the minimiser of ``E||eps_theta(x_t) - eps||^2``, i.e.
  ``E[eps | x_t]``; Tweedie): ``eps*(x_t) = -sqrt(1 - abar) grad log p_t(x_t)``
  (:meth:`GaussianMixture.eps`); equivalently ``E[x_0 | x_t] = (x_t - sqrt(1 - abar) eps*) / sqrt(abar)``.
  As ``abar -> 1``, ``eps* / sqrt(1 - abar) -> -grad log p(x)``, the clean score.
* class-conditional ``p(x | c)``: the same mixture restricted to the components with
  ``labels == c``, weights renormalised (:meth:`GaussianMixture.conditional`; or pass ``c=`` to
  :meth:`~GaussianMixture.log_prob` / :meth:`~GaussianMixture.score` / :meth:`~GaussianMixture.eps`
  for one class per row). The noised conditional is the conditional of the noised mixture.
* tilted target (the distribution classifier-free guidance is often said to sample):
  ``p_w(x | c) ∝ p(x | c)^w p(x)^(1 - w)``, unnormalised
  ``log p_w = w log p(x | c) + (1 - w) log p(x)``, score
  ``grad log p_w = w grad log p(x | c) + (1 - w) grad log p(x)`` (exact: the normaliser does not
  depend on x) (:class:`TiltedTarget`). ``w = 1`` is the conditional, ``w = 0`` the unconditional.
* CFG's guided epsilon at time t from the exact noised marginals (:func:`guided_eps`):
  ``eps_w(x_t) = w eps*_c(x_t) + (1 - w) eps*_u(x_t) = -sqrt(1 - abar) grad log [p_t(x_t | c)^w p_t(x_t)^(1 - w)]``.

.. warning::
   The noised tilted target is **not** the tilt of the noised marginals:
   ``(p(. | c)^w p^(1-w))_t != p_t(. | c)^w p_t^(1-w)`` for ``w`` not in {0, 1}, because noising
   (a convolution) does not commute with taking powers and products of densities. So a DDPM/DDIM
   sampler driven by :func:`guided_eps` does *not*, in general, sample :class:`TiltedTarget`; the two
   agree only as ``abar -> 1``. This is the point of Bradley & Nakkiran, "Classifier-Free Guidance
   is a Predictor-Corrector" (2024, https://arxiv.org/abs/2408.09000), which shows CFG corresponds to
   a predictor-corrector scheme whose Langevin corrector targets the tilt of each noised marginal.

.. note::
   ``w`` here is the *tilt exponent* (diffusers' "guidance scale" ``s``). Ho & Salimans' weight in
   :func:`zoo.diffusion.classifier_free_guidance.guided_epsilon` is ``w_HS = w - 1``:
   ``(1 + w_HS) eps_c - w_HS eps_u == w eps_c + (1 - w) eps_u``.

Distances between samples (small, batched, for tests and claims): :func:`wasserstein_1d` (exact
W1 between empirical distributions via their CDFs, any sizes), :func:`energy_distance` (the
V-statistic ``sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)``, as ``scipy.stats.energy_distance``, in d dims)
and :func:`sliced_wasserstein` (mean 1-D W1 over projections; evenly spaced angles in 2-D).

Everything is float64 by default (inputs are cast), batched over samples, no Python loop over
samples.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

__all__ = [
    "GaussianMixture",
    "TiltedTarget",
    "energy_distance",
    "guided_eps",
    "sliced_wasserstein",
    "wasserstein_1d",
]

_DTYPE = torch.float64


class _Density(Protocol):
    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...

    def score(self, x: torch.Tensor) -> torch.Tensor: ...


def _as_abar(abar: float | torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(abar, dtype=_DTYPE)
    if torch.any(a <= 0) or torch.any(a > 1):
        raise ValueError(f"abar must lie in (0, 1], got {abar}")
    return a


class GaussianMixture:
    """A (labelled) Gaussian mixture with exact density, sampler, score and VP-noised marginals.

    Args:
        means: mu_k, shape ``(K, d)``.
        covs: Sigma_k, shape ``(K, d, d)`` (full covariances, symmetric positive definite); or
            ``None`` with ``stds`` given.
        stds: isotropic standard deviations instead of ``covs``: a number or shape ``(K,)``
            (Sigma_k = stds[k]^2 I).
        weights: pi_k, shape ``(K,)``, non-negative (normalised here); uniform when ``None``.
        labels: the class of each component, integer shape ``(K,)``; needed for
            :meth:`conditional` and ``c=``.

    Example::

        gm = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), stds=0.5, labels=torch.tensor([0, 1]))
        x = gm.sample(1000, torch.Generator().manual_seed(0))
        eps = gm.eps(x, abar=0.5, c=1)          # exact E[eps | x_t] of class 1's noised marginal
    """

    def __init__(
        self,
        means: torch.Tensor,
        covs: torch.Tensor | None = None,
        *,
        stds: float | torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> None:
        means = torch.as_tensor(means, dtype=_DTYPE)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        k, d = means.shape
        if (covs is None) == (stds is None):
            raise ValueError("give exactly one of covs and stds")
        if covs is None:
            s = torch.as_tensor(stds, dtype=_DTYPE).expand(k)
            if torch.any(s <= 0):
                raise ValueError("stds must be positive")
            covs = s[:, None, None] ** 2 * torch.eye(d, dtype=_DTYPE)
        covs = torch.as_tensor(covs, dtype=_DTYPE)
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape {(k, d, d)}, got {tuple(covs.shape)}")
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=_DTYPE)
        weights = torch.as_tensor(weights, dtype=_DTYPE)
        if weights.shape != (k,) or torch.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("weights must be non-negative with shape (K,) and a positive sum")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long)
            if labels.shape != (k,):
                raise ValueError(f"labels must have shape ({k},), got {tuple(labels.shape)}")
        self.means = means
        self.covs = covs
        self.weights = weights / weights.sum()
        self.labels = labels
        self.chol = torch.linalg.cholesky(covs)  # raises on a covariance that is not SPD

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    # ------------------------------------------------------------------ internals

    def _log_weights(self, c: int | torch.Tensor | None, n: int) -> torch.Tensor:
        """log pi_k, shape ``(K,)``; or per row ``(n, K)`` restricted to class ``c`` (-inf elsewhere)."""
        logw = self.weights.log()
        if c is None:
            return logw
        if self.labels is None:
            raise ValueError("this mixture has no labels; pass labels= to condition on a class")
        c = torch.as_tensor(c, dtype=torch.long)
        mask = self.labels[None, :] == c.reshape(-1, 1)  # (1 or n, K)
        if not torch.all(mask.any(dim=1)):
            raise ValueError(f"some class in c has no component (labels: {self.labels.tolist()})")
        logw = torch.where(mask, logw, torch.tensor(-math.inf, dtype=_DTYPE))
        return logw - torch.logsumexp(logw, dim=1, keepdim=True)

    @staticmethod
    def _joint(
        x: torch.Tensor, means: torch.Tensor, chol: torch.Tensor, logw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log pi_k + log N(x; mu_k, Sigma_k) of shape ``(N, K)``, x - mu_k of shape ``(N, K, d)``).

        ``means``/``chol`` may carry a leading row dimension (``(N, K, d)``/``(N, K, d, d)``), one
        mixture per row (a per-row ``abar``).
        """
        d = x.shape[-1]
        diff = x[:, None, :] - means  # (N, K, d)
        z = torch.linalg.solve_triangular(chol, diff[..., None], upper=False)[..., 0]
        maha = (z**2).sum(-1)
        logdet = 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)  # (K,) or (N, K)
        return logw - 0.5 * (maha + logdet + d * math.log(2 * math.pi)), diff

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x).to(_DTYPE)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {tuple(x.shape)}")
        return x

    def _log_prob_and_score(
        self, x: torch.Tensor, means: torch.Tensor, covs: torch.Tensor, c: int | torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        chol = torch.linalg.cholesky(covs) if covs is not self.covs else self.chol
        joint, diff = self._joint(x, means, chol, self._log_weights(c, x.shape[0]))
        r = torch.softmax(joint, dim=1)  # responsibilities (N, K)
        prec_diff = torch.cholesky_solve(diff[..., None], chol)[..., 0]  # Sigma_k^{-1} (x - mu_k)
        return torch.logsumexp(joint, dim=1), -(r[..., None] * prec_diff).sum(1)

    # ------------------------------------------------------------------ the clean mixture

    def log_prob(self, x: torch.Tensor, c: int | torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (or log p(x | c), ``c`` an int or one class per row), x ``(N, d)`` -> ``(N,)``."""
        x = self._check_x(x)
        joint, _ = self._joint(x, self.means, self.chol, self._log_weights(c, x.shape[0]))
        return torch.logsumexp(joint, dim=1)

    def score(self, x: torch.Tensor, c: int | torch.Tensor | None = None) -> torch.Tensor:
        """grad_x log p(x) = -sum_k r_k(x) Sigma_k^{-1} (x - mu_k) (or of p(x | c)), shape ``(N, d)``."""
        x = self._check_x(x)
        return self._log_prob_and_score(x, self.means, self.covs, c)[1]

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        c: int | None = None,
        return_components: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """n exact draws ``mu_k + L_k z`` with ``k ~ pi`` (restricted to class ``c``), ``z ~ N(0, I)``.

        Returns ``(n, d)`` samples, and their component indices ``(n,)`` if ``return_components``.
        """
        probs = self._log_weights(c, 1).reshape(-1).exp()
        comp = torch.multinomial(probs, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=_DTYPE)
        x = self.means[comp] + (self.chol[comp] @ z[..., None])[..., 0]
        return (x, comp) if return_components else x

    def conditional(self, c: int) -> GaussianMixture:
        """p(x | c): the mixture of class ``c``'s components, weights renormalised."""
        if self.labels is None:
            raise ValueError("this mixture has no labels")
        keep = self.labels == int(c)
        if not keep.any():
            raise ValueError(f"no component has label {c}")
        return GaussianMixture(
            self.means[keep], self.covs[keep], weights=self.weights[keep], labels=self.labels[keep]
        )

    # ------------------------------------------------------------------ the noised marginals

    def noised(self, abar: float | torch.Tensor) -> GaussianMixture:
        """p_t, the exact law of ``sqrt(abar) x_0 + sqrt(1 - abar) eps``: means ``sqrt(abar) mu_k``,
        covariances ``abar Sigma_k + (1 - abar) I``, same weights and labels (``abar`` a scalar)."""
        a = _as_abar(abar)
        if a.ndim:
            raise ValueError("noised() takes one abar; eps()/score_t() take one per row")
        eye = torch.eye(self.dim, dtype=_DTYPE)
        return GaussianMixture(
            a.sqrt() * self.means, a * self.covs + (1 - a) * eye, weights=self.weights, labels=self.labels
        )

    def score_t(
        self, x: torch.Tensor, abar: float | torch.Tensor, c: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """grad log p_t(x) (or p_t(x | c)); ``abar`` a scalar or one per row ``(N,)``."""
        x = self._check_x(x)
        a = _as_abar(abar)
        if a.ndim:
            if a.shape != (x.shape[0],):
                raise ValueError(f"abar must be a scalar or have shape ({x.shape[0]},)")
            a = a[:, None, None]  # a mixture per row: means (N, K, d), covs (N, K, d, d)
            means = a.sqrt() * self.means
            covs = a[..., None] * self.covs + (1 - a[..., None]) * torch.eye(self.dim, dtype=_DTYPE)
        else:
            means = a.sqrt() * self.means
            covs = a * self.covs + (1 - a) * torch.eye(self.dim, dtype=_DTYPE)
        return self._log_prob_and_score(x, means, covs, c)[1]

    def eps(self, x: torch.Tensor, abar: float | torch.Tensor, c: int | torch.Tensor | None = None) -> torch.Tensor:
        """The optimal epsilon-prediction ``E[eps | x_t] = -sqrt(1 - abar) grad log p_t(x_t)`` (or given c)."""
        a = _as_abar(abar)
        s = self.score_t(x, a, c)
        return -(1 - a).sqrt().reshape(-1, 1) * s if a.ndim else -(1 - a).sqrt() * s

    def predict_x0(
        self, x: torch.Tensor, abar: float | torch.Tensor, c: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Tweedie's E[x_0 | x_t] = (x_t - sqrt(1 - abar) eps*) / sqrt(abar)."""
        a = _as_abar(abar)
        a = a.reshape(-1, 1) if a.ndim else a
        return (self._check_x(x) - (1 - a).sqrt() * self.eps(x, abar, c)) / a.sqrt()

    def bounds(self, n_std: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
        """A box ``(lo, hi)`` of shape ``(d,)`` holding each component's mean +- n_std marginal stds."""
        sd = torch.diagonal(self.covs, dim1=-2, dim2=-1).sqrt()
        return (self.means - n_std * sd).min(0).values, (self.means + n_std * sd).max(0).values

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.num_components}, d={self.dim}, labelled={self.labels is not None})"


def guided_eps(
    mixture: GaussianMixture,
    x: torch.Tensor,
    abar: float | torch.Tensor,
    c: int | torch.Tensor,
    w: float | torch.Tensor,
) -> torch.Tensor:
    """CFG's guided epsilon from the exact noised marginals: ``w eps*_c(x_t) + (1 - w) eps*_u(x_t)``.

    ``w`` is the tilt exponent (``w = 1`` conditional, ``w = 0`` unconditional; Ho & Salimans'
    weight is ``w - 1``); a number or a tensor broadcasting against ``(N, 1)``. This is the exact
    epsilon of the *tilt of the noised marginals*, not of the noised tilted target (see the module
    warning).
    """
    w = torch.as_tensor(w, dtype=_DTYPE)
    return w * mixture.eps(x, abar, c) + (1 - w) * mixture.eps(x, abar)


class TiltedTarget:
    """The tilted target ``p_w(x) ∝ p_c(x)^w p_u(x)^(1 - w)``, with exact unnormalised log density and score.

    Args:
        cond: p(x | c), anything with ``log_prob``/``score`` on ``(N, d)`` (e.g.
            ``GaussianMixture.conditional(c)``).
        uncond: p(x), the same.
        w: the tilt exponent. For ``w > 1`` the target is normalisable only when ``p_c`` has the
            lighter tails (for Gaussian mixtures: ``w / s_c^2 > (w - 1) / s_u^2`` along every
            direction, s the widest component's std), which holds when both share component widths.

    :meth:`sample` (d = 1 or 2) draws from the piecewise-constant density that equals ``p_w`` at the
    midpoints of a regular grid on a box (cells picked by their mass, then a uniform point in the
    cell; in 1-D this is inverse-CDF sampling of the linearly interpolated CDF). Accuracy: the mass
    outside the box is dropped (the default box is every component's mean +- 8 marginal stds, so
    for Gaussian components and 0 <= w <= 1 the lost mass is ~1e-15 per component; w > 1 only thins
    the tails further, w < 0 can fatten them: pass a wider ``lo``/``hi``); means are off by O(h^2)
    and each variance by ``h^2 / 12 + O(h^2)``, h the cell width (defaults: 2^16 cells in 1-D,
    1024^2 in 2-D; for a box 20 wide, h^2/12 is ~8e-9 in 1-D and ~3e-5 in 2-D). Checked in the tests:
    the 1-D grid moments agree with scipy quadrature to 1e-8 (mean) and 1e-6 (variance).
    :meth:`grid_moments` gives the same grid's mean and covariance for checks. Cost: one density
    evaluation per cell (K components each).
    """

    def __init__(self, cond: _Density, uncond: _Density, w: float) -> None:
        self.cond = cond
        self.uncond = uncond
        self.w = float(w)

    def log_prob_unnormalized(self, x: torch.Tensor) -> torch.Tensor:
        """w log p_c(x) + (1 - w) log p_u(x), shape ``(N,)``."""
        return self.w * self.cond.log_prob(x) + (1 - self.w) * self.uncond.log_prob(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """w grad log p_c(x) + (1 - w) grad log p_u(x), shape ``(N, d)`` (exact)."""
        return self.w * self.cond.score(x) + (1 - self.w) * self.uncond.score(x)

    # ------------------------------------------------------------------ grid sampling (d <= 2)

    def _default_box(self) -> tuple[torch.Tensor, torch.Tensor]:
        boxes = [m.bounds() for m in (self.cond, self.uncond) if isinstance(m, GaussianMixture)]
        if not boxes:
            raise ValueError("give lo= and hi= when cond/uncond are not GaussianMixture")
        return torch.stack([b[0] for b in boxes]).min(0).values, torch.stack([b[1] for b in boxes]).max(0).values

    def _grid(
        self, lo: torch.Tensor | None, hi: torch.Tensor | None, cells: int | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cell midpoints ``(M, d)``, cell probabilities ``(M,)``, cell widths ``(d,)``)."""
        if lo is None or hi is None:
            dlo, dhi = self._default_box()
            lo = dlo if lo is None else lo
            hi = dhi if hi is None else hi
        lo = torch.as_tensor(lo, dtype=_DTYPE).reshape(-1)
        hi = torch.as_tensor(hi, dtype=_DTYPE).reshape(-1)
        d = lo.numel()
        if d not in (1, 2):
            raise ValueError(f"grid sampling is for d = 1 or 2, got d = {d}")
        cells = cells or (2**16 if d == 1 else 1024)
        h = (hi - lo) / cells
        axes = [lo[i] + h[i] * (torch.arange(cells, dtype=_DTYPE) + 0.5) for i in range(d)]
        mids = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, d)
        logp = self.log_prob_unnormalized(mids)
        return mids, torch.softmax(logp, dim=0), h

    def grid_moments(
        self, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None, cells: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(d,)`` and covariance ``(d, d)`` of the midpoint-rule grid density (no jitter term)."""
        mids, p, _ = self._grid(lo, hi, cells)
        mean = p @ mids
        cen = mids - mean
        return mean, (p[:, None] * cen).T @ cen

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        lo: torch.Tensor | None = None,
        hi: torch.Tensor | None = None,
        cells: int | None = None,
    ) -> torch.Tensor:
        """n near-exact draws from p_w (d = 1 or 2; grid method, accuracy in the class docstring), ``(n, d)``."""
        mids, p, h = self._grid(lo, hi, cells)
        idx = torch.multinomial(p, n, replacement=True, generator=generator)
        u = torch.rand(n, mids.shape[1], generator=generator, dtype=_DTYPE) - 0.5
        return mids[idx] + u * h


# ---------------------------------------------------------------------- distances between samples


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact W1 between the empirical distributions of ``x (..., n)`` and ``y (..., m)``, shape ``(...)``.

    ``W1 = integral |F_x(t) - F_y(t)| dt`` over the merged sorted sample (as
    ``scipy.stats.wasserstein_distance``); for n = m it equals ``mean |sort(x) - sort(y)|``.
    Leading dimensions are batch dimensions (one distance each).
    """
    x = torch.as_tensor(x).to(_DTYPE)
    y = torch.as_tensor(y).to(_DTYPE)
    xs = x.sort(-1).values
    ys = y.sort(-1).values
    allv = torch.cat([xs, ys], -1).sort(-1).values
    deltas = allv[..., 1:] - allv[..., :-1]
    at = allv[..., :-1].contiguous()
    fx = torch.searchsorted(xs.contiguous(), at, right=True).to(_DTYPE) / xs.shape[-1]
    fy = torch.searchsorted(ys.contiguous(), at, right=True).to(_DTYPE) / ys.shape[-1]
    return ((fx - fy).abs() * deltas).sum(-1)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energy distance ``sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` between samples ``(n, d)`` and ``(m, d)``.

    V-statistics (the diagonal zeros included), which is what ``scipy.stats.energy_distance``
    computes in 1-D (there as ``sqrt(2)`` times the Cramér distance); 1-D inputs ``(n,)`` are
    accepted. Costs O(n m) memory (``torch.cdist``).
    """
    x = torch.as_tensor(x).to(_DTYPE)
    y = torch.as_tensor(y).to(_DTYPE)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    exy = torch.cdist(x, y).mean()
    exx = torch.cdist(x, x).mean()
    eyy = torch.cdist(y, y).mean()
    return (2 * exy - exx - eyy).clamp(min=0).sqrt()


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, n_projections: int = 64, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sliced W1: the mean over unit directions theta of ``W1(<x, theta>, <y, theta>)``.

    In 2-D the directions are ``n_projections`` evenly spaced angles on [0, pi) (a deterministic
    quadrature of the uniform average); in other dimensions they are random (``generator``).
    """
    x = torch.as_tensor(x).to(_DTYPE)
    y = torch.as_tensor(y).to(_DTYPE)
    d = x.shape[1]
    if d == 2:
        ang = torch.arange(n_projections, dtype=_DTYPE) * math.pi / n_projections
        theta = torch.stack([ang.cos(), ang.sin()], 1)
    else:
        theta = torch.randn(n_projections, d, generator=generator, dtype=_DTYPE)
        theta = theta / theta.norm(dim=1, keepdim=True)
    return wasserstein_1d((x @ theta.T).T, (y @ theta.T).T).mean()
