"""The classifier-free guidance experiment: its wiring (w reaches sampling, label dropout reaches
training, arms share the noise), the ceiling precondition of the digits claim, the harness runs it
identically on one or two workers, and its metric helpers.

The wiring tests sample an EXACT denoiser of the Gaussian mixture (its noise prediction is known in
closed form, conditional and unconditional), so they need no training and are deterministic: at
w = 0 the sampler reproduces the mixture (the Bayes classifier scores about 77%), and guidance
must push the samples towards their class.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo import harness
from zoo.catalogue import get, repo_root
from zoo.diffusion import ConditionalDenoiser
from zoo.harness import Env, JobContext
from zoo.results import Metrics, evaluate_claim, evaluate_claims
from zoo.experiments import classifier_free_guidance as cfg_exp
from zoo.experiments.classifier_free_guidance import (
    EXPERIMENT,
    arm_name,
    draw,
    frechet_distance,
    make_gmm,
    make_scheduler,
    sample_metrics,
    train_denoiser,
)

ENTRY = "classifier_free_guidance"
NEW_CLAIM = "digits_short_guidance_raises_class_consistency"
OLD_CLAIM = "digits_guidance_raises_class_consistency"


def _spec():
    return get(ENTRY).spec


def _full() -> dict:
    r = _spec().reproduction
    assert r is not None
    return dict(r.config)


def _quick() -> tuple[dict, list[int]]:
    r = _spec().reproduction
    assert r is not None
    return {**r.config, **r.quick.config}, list(r.quick.seeds or r.seeds)


def _env(quick: bool = True) -> Env:
    return Env("cpu", repo_root() / "data", quick)


# ----------------------------------------------------------------------------- an exact GMM denoiser
class ExactGMMDenoiser(nn.Module):
    """E[eps | x_t, c] of the mixture, for c a class; the mixture's E[eps | x_t] for the null token.

    Class k is N(mu_k, s^2 I), so x_t | k ~ N(sqrt(abar) mu_k, (abar s^2 + 1 - abar) I) and
    E[eps | x_t, k] = sqrt(1 - abar) (x_t - sqrt(abar) mu_k) / (abar s^2 + 1 - abar); the unconditional
    one weights these by the posterior over classes. ``blind``: every c gets the unconditional
    prediction, so guidance has nothing to act on.
    """

    def __init__(self, cfg: dict, blind: bool = False) -> None:
        super().__init__()
        k = int(cfg["gmm_classes"])
        ang = 2 * math.pi * torch.arange(k, dtype=torch.float32) / k
        self.register_buffer("means", float(cfg["gmm_radius"]) * torch.stack([ang.cos(), ang.sin()], 1))
        self.register_buffer("abar", make_scheduler(cfg, None).alphas_cumprod.float())
        self.std, self.blind = float(cfg["gmm_std"]), blind
        self.num_classes, self.data_dim = k, 2
        self._device_anchor = nn.Parameter(torch.zeros(()))  # samplers read the device from a parameter

    @property
    def null_class(self) -> int:
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        a = self.abar[t][:, None, None]  # (N, 1, 1)
        var = a * self.std**2 + 1 - a
        diff = x[:, None, :] - a.sqrt() * self.means[None]  # (N, K, 2)
        eps_k = (1 - a).sqrt() * diff / var
        post = (-(diff**2).sum(-1) / (2 * var[..., 0])).softmax(1)  # (N, K)
        eps_u = (post[..., None] * eps_k).sum(1)
        if self.blind:
            return eps_u
        eps_c = eps_k[torch.arange(x.shape[0]), c.clamp(max=self.num_classes - 1)]
        return torch.where((c == self.null_class)[:, None], eps_u, eps_c)


class BayesGMMClassifier(nn.Module):
    """The Bayes classifier of the mixture (equal priors, shared isotropic variance): logits."""

    def __init__(self, means: torch.Tensor, std: float) -> None:
        super().__init__()
        self.register_buffer("means", means)
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x, self.means).pow(2) / (2 * self.std**2)


def _gmm_ctx(blind: bool = False, **over) -> tuple[dict, JobContext]:
    """A job context for the gmm arms whose seed state is the exact denoiser (no training)."""
    cfg = {**_full(), "datasets": ["gmm"], "gmm_n_train": 3000, "gmm_n_test": 300, "sample_steps": 50,
           "gmm_samples_per_class": 300, **over}
    env = _env()
    setup = cfg_exp._setup(cfg, env)
    model = ExactGMMDenoiser(cfg, blind=blind)
    shared = {"gmm": {"classifier": BayesGMMClassifier(model.means, model.std), "ref_features": setup["gmm"].data.x_train}}
    return cfg, JobContext(env, setup, shared, {"gmm": {"model": model, "train_loss": [0.0]}})


# ----------------------------------------------------------------------------- w reaches sampling
def test_guidance_weight_reaches_sampling_and_sharpens_classes() -> None:
    cfg, ctx = _gmm_ctx()
    out = {w: EXPERIMENT.job(cfg, arm_name("gmm", w), 0, ctx).metrics for w in (0.0, 1.0, 4.0)}
    # w = 0 is plain conditional sampling of the exact model: the data's Bayes accuracy (about 77%)
    # and its spread.
    assert 70.0 < out[0.0]["class_acc"] < 84.0, out[0.0]
    assert out[0.0]["diversity"] == pytest.approx(1.0, abs=0.1)
    # Guidance moves mass away from the other classes and concentrates it (Figure 2 of the paper).
    assert out[4.0]["class_acc"] >= out[0.0]["class_acc"] + 15.0, out
    assert out[1.0]["class_acc"] > out[0.0]["class_acc"] + 5.0, out
    assert out[4.0]["diversity"] < out[0.0]["diversity"] - 0.1, out


def test_arms_with_different_w_draw_different_samples_from_the_same_model_and_noise() -> None:
    cfg, ctx = _gmm_ctx(sample_steps=20, gmm_samples_per_class=50)
    x0, y0 = draw(cfg, "gmm_w0", 0, ctx)
    x0_again, _ = draw(cfg, "gmm_w0", 0, ctx)
    x4, y4 = draw(cfg, "gmm_w4", 0, ctx)
    assert torch.equal(x0, x0_again)  # a job is a function of (arm, seed)
    assert torch.equal(y0, y4)
    assert (x4 - x0).abs().mean() > 0.1


def test_every_arm_of_a_seed_shares_its_noise() -> None:
    # A class-blind model makes guidance a no-op, so arms that share the initial and per-step noise
    # must draw the same samples (up to rounding); a fresh seed must draw different ones.
    cfg, ctx = _gmm_ctx(blind=True, sample_steps=20, gmm_samples_per_class=50)
    x0, _ = draw(cfg, "gmm_w0", 3, ctx)
    for w in (0.5, 4.0):
        xw, _ = draw(cfg, arm_name("gmm", w), 3, ctx)
        torch.testing.assert_close(xw, x0, atol=2e-3, rtol=0)
    other, _ = draw(cfg, "gmm_w0", 4, ctx)
    assert (other - x0).abs().mean() > 0.1


# ----------------------------------------------------------------------------- label dropout reaches training
def test_label_dropout_reaches_training_through_the_seed_stage() -> None:
    base, _ = _quick()
    base = {**base, "datasets": ["gmm"], "gmm_epochs": 2}
    env = _env()
    setup = cfg_exp._setup(base, env)
    init, _ = train_denoiser(base, 5, "gmm", 0, setup["gmm"], "cpu")  # zero epochs: the initialisation
    null = init.null_class

    def trained(p: float) -> ConditionalDenoiser:
        cfg = {**base, "p_uncond": p}
        return cfg_exp._per_seed(cfg, 5, env, setup, None)["gmm"]["model"]

    never, often = trained(0.0), trained(0.5)
    # Only a dropped label trains the null token's embedding: untouched at p_uncond = 0, moved at 0.5.
    torch.testing.assert_close(never.class_emb.weight[null], init.class_emb.weight[null], atol=0, rtol=0)
    assert not torch.equal(often.class_emb.weight[null], init.class_emb.weight[null])
    assert not torch.equal(never.out.weight, often.out.weight)
    # Real classes are trained either way.
    assert not torch.equal(never.class_emb.weight[0], init.class_emb.weight[0])


# ----------------------------------------------------------------------------- claims
def _claim(cid: str):
    return next(c for c in _spec().claims if c.id == cid)


def _metrics(w0: list[float], w4: list[float]) -> Metrics:
    return Metrics(entry=ENTRY, seeds=list(range(len(w0))),
                   arms={"digits_short_w0": {"class_acc": w0}, "digits_short_w4": {"class_acc": w4}})


def test_the_ceiling_claim_is_superseded_by_one_with_a_precondition() -> None:
    old, new = _claim(OLD_CLAIM), _claim(NEW_CLAIM)
    assert old.superseded is not None and old.superseded.by == NEW_CLAIM and not old.active
    assert new.active and new.verdict_rule.rule == "student_t"
    assert len(_spec().reproduction.seeds) >= 5
    assert [q.metric for q in new.requires] == ["digits_short_w0.class_acc"]
    # The precondition leaves the claimed gain room below 100%.
    (ceiling,) = new.requires
    assert ceiling.op == "<=" and ceiling.threshold + new.condition.threshold < 100.0


def test_precondition_makes_the_claim_untestable_at_the_ceiling() -> None:
    claim = _claim(NEW_CLAIM)
    at_ceiling = evaluate_claim(claim, _metrics([98.1, 98.7, 98.0, 98.4, 98.2], [100.0, 100.0, 99.9, 100.0, 100.0]))
    assert at_ceiling.verdict == "untestable"
    assert at_ceiling.requires[0].verdict == "refuted"
    # Below the ceiling, the condition decides.
    room = [58.5, 61.0, 55.2, 60.3, 57.9]
    assert evaluate_claim(claim, _metrics(room, [v + 12.0 + 0.1 * i for i, v in enumerate(room)])).verdict == "verified"
    assert evaluate_claim(claim, _metrics(room, [v + 0.1 * i for i, v in enumerate(room)])).verdict == "refuted"
    # A baseline straddling the ceiling is not verified below it: untestable, too.
    straddle = [86.0, 93.0, 88.0, 95.0, 84.0]
    assert evaluate_claim(claim, _metrics(straddle, [v + 5.0 for v in straddle])).verdict == "untestable"


# ----------------------------------------------------------------------------- the harness
def _run(workers: int) -> harness.HarnessResult:
    cfg, seeds = _quick()
    return harness.run(EXPERIMENT, cfg, seeds, _env(), workers=workers)


def test_quick_budget_on_one_and_two_workers_gives_identical_jobs() -> None:
    spec = _spec()
    cfg, seeds = _quick()
    one, two = _run(1), _run(2)
    assert one.jobs == two.jobs
    assert one.metrics == two.metrics
    assert set(EXPERIMENT.arms(cfg)) == set(spec.reproduction.arms) == set(EXPERIMENT.arms(_full()))
    for arm in spec.reproduction.arms:
        for metric in spec.reproduction.metrics:
            values = one.metrics[arm][metric]
            assert len(values) == len(seeds) and all(math.isfinite(v) for v in values), (arm, metric, values)
    weights = [float(w) for w in cfg["guidance_weights"]]
    for model in ("gmm", "digits", "digits_short"):
        # Even a barely trained model's arms differ: w reaches every job.
        rows = {tuple(v for vs in one.metrics[arm_name(model, w)].values() for v in vs) for w in weights}
        assert len(rows) == len(weights), model
    # Each model trained for its own epochs (the short one for a tenth of the full budget).
    trained = {j.arm: len(j.series["train_loss"]) for j in one.jobs if "train_loss" in j.series}
    assert trained == {"gmm_w0": cfg["gmm_epochs"], "digits_w0": cfg["digits_epochs"],
                       "digits_short_w0": cfg["digits_short_epochs"]}
    full = {m: epochs for m, _, epochs in cfg_exp.models(_full())}
    assert full["digits_short"] * 10 == full["digits"]
    titles = [c.title for c in one.curves]
    assert any("Class consistency" in t for t in titles) and any("Diversity" in t for t in titles)
    for curve in one.curves[:3]:
        assert curve.x == weights and all(len(v) == len(weights) for v in curve.series.values())
    # The full budget's verdicts can be formed from these metrics' names (every active claim's refs exist).
    fake = Metrics(entry=ENTRY, seeds=[0, 1, 2, 3, 4],
                   arms={a: {m: v * 5 for m, v in ms.items()} for a, ms in one.metrics.items()})
    assert set(evaluate_claims(spec, fake).claims) == {c.id for c in spec.active_claims()}


# ----------------------------------------------------------------------------- metric helpers
def test_frechet_distance_of_diagonal_gaussians() -> None:
    mu1, mu2 = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([2.0, 1.0], dtype=torch.float64)
    c1, c2 = (
        torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64)),
        torch.diag(torch.tensor([9.0, 4.0], dtype=torch.float64)),
    )
    # |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2 = 4 + (1 - 3)^2 + 0
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(8.0, abs=1e-9)
    assert frechet_distance(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-9)


def test_sample_metrics_on_real_and_collapsed_samples() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = make_gmm(3, 1.25, 1.0, 6000, g)
    means = torch.stack([x[y == k].mean(0) for k in range(3)])
    nearest = lambda z: -torch.cdist(z, means)  # a fixed nearest-mean "classifier" (logits)
    ident = lambda z: z
    same = sample_metrics(x, y, nearest, ident, x, y, 3)
    assert same["diversity"] == pytest.approx(1.0) and same["fd"] == pytest.approx(0.0, abs=1e-9)
    assert 70.0 < same["class_acc"] < 85.0  # overlapping classes: about the Bayes accuracy of 77%
    # Samples shrunk halfway to their class mean: half the spread, perfectly class-consistent near the mean.
    shrunk = means[y] + 0.5 * (x - means[y])
    m = sample_metrics(shrunk, y, nearest, ident, x, y, 3)
    assert m["diversity"] == pytest.approx(0.5, rel=1e-6)
    assert m["fd"] > 0.05 and m["class_acc"] > same["class_acc"]
