"""The diffusion family's shared harness: data with splits, denoisers, samplers, guiders and scoring.

Every diffusion/guidance entry builds on these pieces instead of writing its own loop:

* **Domains** (:func:`load_domain`): ``gmm``, a labelled 2-D mixture of three overlapping
  Gaussians on a circle (Bayes accuracy about 77%; the CFG entry's mixture), generated from
  :data:`DATA_SEED` with train / val / test splits; ``digits``, the 8x8 digits in [0, 1] with 20% of
  the training split moved to validation (seeded). The denoisers work in ``x * scale + shift``
  (digits: [-1, 1], as DDPM does for images); :meth:`Domain.from_diffusion` maps samples back.
* **Recipes** (:data:`RECIPES`): how one conditional denoiser (:class:`~zoo.diffusion.ConditionalDenoiser`)
  is trained, with label dropout ``p_uncond``. :func:`train_denoiser` runs a recipe (optionally with
  another loss: the loss-variant papers plug theirs in) through :func:`zoo.training.train`.
* **Shared denoisers** (:func:`shared_denoiser`): the recipes several papers sample from are trained
  ONCE per seed by the ``baselines_diffusion`` stage (``python -m zoo.baselines diffusion --record``,
  :mod:`zoo.experiments._diffusion_models`) and stored in ``reproductions/_baselines/diffusion/``;
  an entry whose config names ``shared_denoiser`` depends on those files, so a re-training makes it
  stale. A recipe edited since its recording is refused (its key no longer matches).
* **Sampling** (:func:`draw`): any scheduler (DDPM ancestral, DDIM with ``eta``), any guider
  (``guide(eps_cond, eps_uncond, progress)``, its scale a function of normalised progress), an
  optional Langevin corrector, every class at once; the initial and per-step noise come from the
  generator alone, so two arms with the same generator differ only in their method.
* **Scoring** (:class:`Scorer`): the FIXED evaluation classifier (an MLP trained once on the real
  training split, seeded by :data:`DATA_SEED`) and the CFG entry's metrics: ``class_acc`` (%),
  ``diversity`` (per-class spread relative to the real split) and ``fd`` (per-class Frechet distance
  of Gaussian fits, over the real class variance), in the classifier's penultimate features for
  digits and raw coordinates for the mixture. ``reference`` picks the real split compared against:
  ``val`` for tuning, ``test`` for reported results.

Headroom: the fully trained CFG digits model's unguided samples already score above real test
digits, so class consistency had no room left to rise there. The shared ``digits`` recipe is the
short-trained model (30 epochs) whose unguided class accuracy sits about 25 points below the real
test split's; entries state ``real.class_acc - <unguided arm>.class_acc >= margin`` as a precondition.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.diffusion import ConditionalDenoiser, DDIMScheduler, DDPMScheduler, classifier_free_guidance_loss, sample
from zoo.experiments.classifier_free_guidance import make_gmm, sample_metrics
from zoo.training import MLP, TensorData, load_dataset, seed_everything, train

__all__ = [
    "DATA_SEED",
    "DENOISERS_FILE",
    "DENOISERS_PT",
    "Domain",
    "GMM",
    "RECIPES",
    "Recipe",
    "Scorer",
    "CLASSIFIER",
    "cfg_model_fn",
    "denoising_loss",
    "draw",
    "fit_scorer",
    "flat_state",
    "load_domain",
    "make_scheduler",
    "sample_noise",
    "sample_series",
    "shared_denoiser",
    "state_from_flat",
    "train_denoiser",
]

DATA_SEED = 0
GMM = {"num_classes": 3, "radius": 1.25, "std": 1.0, "n_train": 6000, "n_val": 1500, "n_test": 3000, "clip": 8.0}
DENOISERS_DIR = "reproductions/_baselines/diffusion"
DENOISERS_FILE = f"{DENOISERS_DIR}/denoisers.json"
DENOISERS_PT = f"{DENOISERS_DIR}/denoisers.pt"


# ----------------------------------------------------------------------------- data
@dataclass
class Domain:
    """Real data in classifier space (train / val / test) and the affine map to diffusion space.

    ``x_diffusion = x * scale + shift``; ``clip`` bounds the sampler's x_0 estimate (diffusion space).
    """

    data: TensorData
    scale: float
    shift: float
    clip: float | None

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def dim(self) -> int:
        return int(self.data.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def to_diffusion(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift

    def from_diffusion(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.shift) / self.scale
        if self.name == "digits":
            x = x.clamp(0.0, 1.0)  # the clipped x_0 range, back in pixel units
        return x

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``train``, ``val`` or ``test`` (classifier space)."""
        d = self.data
        if which == "train":
            return d.x_train, d.y_train
        if which == "val":
            assert d.x_val is not None and d.y_val is not None
            return d.x_val, d.y_val
        if which == "test":
            return d.x_test, d.y_test
        raise ValueError(f"unknown split {which!r}; use train, val or test")


@functools.lru_cache(maxsize=8)
def _load_domain_cached(name: str, data_dir: str, device: str) -> Domain:
    if name == "gmm":
        g = torch.Generator().manual_seed(DATA_SEED)
        kw = {k: GMM[k] for k in ("num_classes", "radius", "std")}
        xs = [make_gmm(n=int(GMM[f"n_{s}"]), generator=g, **kw) for s in ("train", "test", "val")]
        (xtr, ytr), (xte, yte), (xva, yva) = [(x.to(device), y.to(device)) for x, y in xs]
        # A generous box (never reached by real data) that only stops a strongly guided model's
        # x_0 estimate from running away at the first, noisiest steps.
        return Domain(TensorData(xtr, ytr, xte, yte, int(GMM["num_classes"]), "gmm", xva, yva), 1.0, 0.0,
                      float(GMM["clip"]))
    if name == "digits":
        data = load_dataset("digits", data_dir, device, flatten=True).with_validation(0.2, seed=DATA_SEED)
        return Domain(data, 2.0, -1.0, 1.0)
    raise ValueError(f"unknown domain {name!r}; use gmm or digits")


def load_domain(name: str, data_dir: str | Path, device: str = "cpu") -> Domain:
    """The ``gmm`` or ``digits`` domain (cached per process; treat its tensors as read-only)."""
    return _load_domain_cached(name, str(data_dir), str(device))


# ----------------------------------------------------------------------------- recipes and training
@dataclass(frozen=True)
class Recipe:
    """How one conditional denoiser is trained (label dropout ``p_uncond``; 0: no null token trained)."""

    domain: str
    epochs: int
    hidden: int
    depth: int
    batch_size: int
    p_uncond: float = 0.1
    lr: float = 1e-3
    train_timesteps: int = 1000
    beta_schedule: str = "cosine"
    variance_interp: float = 0.3

    @property
    def key(self) -> str:
        """A hash of the recipe, stored beside its weights: an edited recipe does not load old weights."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **kw: Any) -> "Recipe":
        return Recipe(**{**asdict(self), **kw})


RECIPES: dict[str, Recipe] = {
    # The CFG entry's mixture model.
    "gmm": Recipe("gmm", epochs=125, hidden=64, depth=2, batch_size=256),
    # The CFG entry's short-trained digits model: unguided samples well below the real ceiling.
    "digits": Recipe("digits", epochs=30, hidden=128, depth=2, batch_size=128),
    # Trained with the label always present: no null token (independent condition guidance).
    "gmm_cond": Recipe("gmm", epochs=125, hidden=64, depth=2, batch_size=256, p_uncond=0.0),
    "digits_cond": Recipe("digits", epochs=30, hidden=128, depth=2, batch_size=128, p_uncond=0.0),
}


def make_scheduler(recipe: Recipe, clip: float | None, steps: int = 100, kind: str = "ddpm",
                   eta: float = 0.0) -> DDPMScheduler:
    """The recipe's noise schedule as a DDPM (ancestral) or DDIM (``eta``) sampler of ``steps`` steps."""
    kw = {"beta_schedule": recipe.beta_schedule, "clip_sample": clip}
    if kind == "ddpm":
        sched = DDPMScheduler(recipe.train_timesteps, variance_interp=recipe.variance_interp, **kw)
    elif kind == "ddim":
        sched = DDIMScheduler(recipe.train_timesteps, eta=eta, **kw)
    else:
        raise ValueError(f"unknown sampler {kind!r}; use ddpm or ddim")
    sched.set_timesteps(int(steps))
    return sched


DenoisingLoss = Callable[[nn.Module, DDPMScheduler, torch.Tensor, torch.Tensor], torch.Tensor]


def denoising_loss(model: nn.Module, scheduler: DDPMScheduler, x: torch.Tensor, y: torch.Tensor, *,
                   p_uncond: float) -> torch.Tensor:
    """The standard epsilon-MSE with label dropout (Ho & Salimans Alg. 1)."""
    return classifier_free_guidance_loss(model, scheduler, x, y, p_uncond=p_uncond)


def train_denoiser(recipe: Recipe, domain: Domain, seed: int, device: str = "cpu",
                   loss: DenoisingLoss | None = None, x_train: torch.Tensor | None = None,
                   y_train: torch.Tensor | None = None) -> tuple[ConditionalDenoiser, list[float]]:
    """Train one denoiser by ``recipe`` on the domain's training split; returns it (frozen) and its loss per epoch.

    Seeded by ``seed`` alone: two recipes of the same architecture start from the same weights and
    data order. ``loss(model, scheduler, x0, y)`` replaces the epsilon-MSE (a loss-variant arm);
    ``x_train``/``y_train`` (classifier space) replace the training split (a corrupted copy).
    """
    xtr = domain.data.x_train if x_train is None else x_train
    ytr = domain.data.y_train if y_train is None else y_train
    diff = TensorData(domain.to_diffusion(xtr), ytr, domain.to_diffusion(domain.data.x_test), domain.data.y_test,
                      domain.num_classes, domain.name)
    g = seed_everything(seed)
    sched = make_scheduler(recipe, domain.clip)
    model = ConditionalDenoiser(domain.dim, domain.num_classes, recipe.train_timesteps, hidden=recipe.hidden,
                                depth=recipe.depth).to(device)
    steps = recipe.epochs * math.ceil(diff.n_train / recipe.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    fn = loss or functools.partial(denoising_loss, p_uncond=recipe.p_uncond)
    hist = train(model, diff, opt, epochs=recipe.epochs, batch_size=recipe.batch_size, generator=g,
                 loss=lambda m, x, y: fn(m, sched, x, y), scheduler=lr_sched, eval_every=0)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, list(hist.train_loss)


def flat_state(model: nn.Module) -> list[float]:
    """The model's parameters and buffers as one list of floats (exact for float32), in state-dict order."""
    return torch.cat([v.detach().float().reshape(-1).cpu() for v in model.state_dict().values()]).tolist()


def state_from_flat(model: nn.Module, flat: list[float]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`flat_state` for a model of the same architecture."""
    vec = torch.tensor(flat, dtype=torch.float32)
    out, i = {}, 0
    for k, v in model.state_dict().items():
        out[k] = vec[i:i + v.numel()].reshape(v.shape).to(v.dtype)
        i += v.numel()
    if i != vec.numel():
        raise ValueError(f"flat state has {vec.numel()} values, the model {i}")
    return out


def _architecture(recipe: Recipe, domain: Domain) -> ConditionalDenoiser:
    return ConditionalDenoiser(domain.dim, domain.num_classes, recipe.train_timesteps, hidden=recipe.hidden,
                               depth=recipe.depth)


@functools.lru_cache(maxsize=2)
def _stored(root: str) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    meta_path, pt_path = Path(root) / DENOISERS_FILE, Path(root) / DENOISERS_PT
    if not meta_path.is_file() or not pt_path.is_file():
        raise FileNotFoundError(f"{DENOISERS_FILE}: the shared denoisers are not recorded; "
                                "run `python -m zoo.baselines diffusion --record`")
    meta = json.loads(meta_path.read_text())
    states = torch.load(io.BytesIO(pt_path.read_bytes()), map_location="cpu", weights_only=True)
    return meta, states


def shared_denoiser(name: str, seed: int, domain: Domain, device: str = "cpu",
                    root: str | Path | None = None) -> ConditionalDenoiser:
    """The recorded denoiser of recipe ``name`` for ``seed`` (see the module doc), frozen, on ``device``."""
    from zoo.catalogue import repo_root

    if name not in RECIPES:
        raise ValueError(f"shared_denoiser: unknown recipe {name!r}; use one of {sorted(RECIPES)}")
    recipe = RECIPES[name]
    meta, states = _stored(str(root or repo_root()))
    rec = meta.get("baselines", {}).get(name)
    fix = "re-record with `python -m zoo.baselines diffusion --record`"
    if rec is None or rec.get("key") != recipe.key:
        raise ValueError(f"{DENOISERS_FILE}: recipe {name!r} is not recorded as it is now defined; {fix}")
    key = f"{name}/{seed}"
    if key not in states:
        raise ValueError(f"{DENOISERS_FILE}: no {name!r} denoiser for seed {seed} (seeds {rec.get('seeds')}); {fix}")
    model = _architecture(recipe, domain)
    model.load_state_dict(states[key])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


# ----------------------------------------------------------------------------- sampling
def sample_noise(seed: int, stream: int = 0) -> torch.Generator:
    """The sampling noise of a seed: the same for every arm. ``stream`` 1 is the tuning (validation) stream."""
    return torch.Generator().manual_seed(10_000 + 1_000 * stream + seed)


def cfg_model_fn(model: ConditionalDenoiser, labels: torch.Tensor,
                 uncond_labels: torch.Tensor | None = None) -> Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]:
    """``(x, t) -> (eps(x, t, c), eps(x, t, c'))`` in one batched call; ``c'`` is the null token by default."""
    if uncond_labels is None:
        uncond_labels = torch.full_like(labels, model.null_class)
    both = torch.cat([labels, uncond_labels])

    def fn(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        tt = torch.full((2 * x.shape[0],), t, device=x.device, dtype=torch.long)
        eps = model(torch.cat([x, x]), tt, both)
        return eps[: x.shape[0]], eps[x.shape[0]:]

    return fn


@torch.no_grad()
def draw(model: ConditionalDenoiser, recipe: Recipe, domain: Domain, guider: Any, samples_per_class: int,
         generator: torch.Generator, *, steps: int = 100, sampler: str = "ddpm", eta: float = 0.0,
         corrector: Any = None, model_fn: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples_per_class`` guided samples of every class, in classifier space, and their labels.

    ``guider`` None samples the conditional model unguided. ``model_fn`` (built from the labels by
    the caller) replaces :func:`cfg_model_fn`, e.g. to feed another unconditional prediction.
    """
    device = next(model.parameters()).device
    labels = torch.arange(domain.num_classes, device=device).repeat_interleave(samples_per_class)
    x = torch.randn(labels.shape[0], domain.dim, generator=generator, device=generator.device).to(device)
    sched = make_scheduler(recipe, domain.clip, steps, sampler, eta)
    if model_fn is None:
        if guider is None:
            def model_fn(x_: torch.Tensor, t: int) -> torch.Tensor:
                return model(x_, torch.full((x_.shape[0],), t, device=device, dtype=torch.long), labels)
        else:
            model_fn = cfg_model_fn(model, labels)
    out = sample(sched, model_fn, x, guider=guider, corrector=corrector, progress=False, generator=generator)
    return domain.from_diffusion(out), labels


def sample_series(x: torch.Tensor, labels: torch.Tensor, per_class: int) -> dict[str, list[float]]:
    """The first ``per_class`` samples of each class as job series, for the family pages' pictures.

    ``samples`` is the flattened ``(n, dim)`` block (classifier space: pixels in [0, 1] for digits),
    ``sample_labels`` their labels. Store them from ONE seed's job (seed 0) to keep jobs.json small.
    """
    keep = torch.cat([torch.nonzero(labels == k).flatten()[:per_class] for k in labels.unique().sort().values])
    return {"samples": [round(v, 4) for v in x[keep].reshape(-1).tolist()],
            "sample_labels": [float(v) for v in labels[keep].tolist()]}


# ----------------------------------------------------------------------------- scoring
@dataclass
class Scorer:
    """The fixed evaluation classifier of a domain and the reference features of its real splits."""

    domain: Domain
    classifier: nn.Module
    reference: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.domain.name == "gmm":
            return x
        return nn.Sequential(*list(self.classifier.children())[:-1])(x)

    @torch.no_grad()
    def score(self, x: torch.Tensor, labels: torch.Tensor, reference: str = "test") -> dict[str, float]:
        """``class_acc``, ``diversity`` and ``fd`` of samples against the real ``reference`` split."""
        if reference not in self.reference:
            rx, ry = self.domain.split(reference)
            self.reference[reference] = (self.features(rx), ry)
        rf, ry = self.reference[reference]
        return sample_metrics(x, labels, self.classifier, self.features, rf, ry, self.domain.num_classes)

    @torch.no_grad()
    def log_prob_correct(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """Mean log-probability the fixed classifier gives the conditioning label."""
        return float(torch.log_softmax(self.classifier(x), 1).gather(1, labels[:, None]).mean())


CLASSIFIER = {"hidden": [128, 64], "lr": 1e-3, "epochs": 40, "batch_size": 128}


def fit_scorer(domain: Domain, device: str = "cpu", epochs: int | None = None) -> Scorer:
    """Train the fixed evaluation classifier on the real training split (seeded by :data:`DATA_SEED`).

    ``epochs`` (default ``CLASSIFIER["epochs"]``) shortens the training for ``--quick`` smoke runs only: a
    recorded run always scores with the full classifier.
    """
    d = domain.data
    g = seed_everything(DATA_SEED)
    clf = MLP(domain.dim, list(CLASSIFIER["hidden"]), domain.num_classes).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=float(CLASSIFIER["lr"]))
    train(clf, TensorData(d.x_train, d.y_train, d.x_test, d.y_test, d.num_classes, d.name), opt,
          epochs=int(CLASSIFIER["epochs"] if epochs is None else epochs), batch_size=int(CLASSIFIER["batch_size"]), generator=g, eval_every=0)
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    return Scorer(domain, clf)
