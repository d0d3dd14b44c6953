"""One classification comparison on the shared workload suite: the experiment every loss entry builds.

A loss, calibration, noisy-label or regulariser entry declares its *methods* (arms) and gets a
whole :class:`zoo.harness.Experiment` from :func:`classbench`. No entry writes a training loop:
the jobs call :func:`zoo.training.train`, the data come from :func:`zoo.workloads.classification.make_task`.

**Fairness, by construction.** Within a seed every method's model is the job's first random draw
(the same initial weights), the batch order is :func:`zoo.training.seed.generator` of the seed
(the same batches), the task (splits, noisy labels, few-label mask) depends on the seed and the
setting only, and the optimizer, schedule, epochs and batch size come from the shared config.
Methods differ in what they declare and nothing else.

**What a method is** (:class:`Method`): a ``loss(logits, y)`` on the model's outputs (the common
case), or an ``objective`` factory returning an :class:`Objective`, which sees the whole batch
(example indices, inputs, observed labels, progress) and may own extra trainable modules (a second
network, a learned link), keep per-example state (temporal ensembles) and predict differently;
``model`` may transform the freshly initialised shared model (a reparametrisation, a dropout
head) without redrawing its weights.

**Settings.** ``cfg["settings"]`` (optional) maps a setting name to config overrides (dataset,
noise, imbalance, model, epochs...). With settings, job arms are ``<method>__<setting>`` and each
method is a derived arm with metrics ``<setting>_<metric>``; without, the arm is the method.

**Metrics of every job** (the final model, in ``eval()`` mode, on the test split unless named):
``test_acc``, ``test_nll``, ``test_ece`` (15 bins, percent points), ``test_f1`` (macro),
``test_pt`` (mean true-class probability), ``test_aurc`` (area under risk-coverage, percent),
``val_acc``/``val_nll``/``val_ece`` (observed validation labels), ``train_acc`` and ``train_pt``
(observed labels), ``peak_test_acc`` (best epoch) and ``final_drop`` (peak minus final); with
label noise also ``memorised`` (percent of corrupted training labels predicted as their noisy
label), ``train_clean_acc`` and ``val_clean_acc``; for binary tasks ``test_f1_pos`` (F1 of class
1). Series: per-epoch ``test_acc``, ``train_loss`` (and ``memorised``), and the test reliability
diagram (``rel_conf``, ``rel_acc``, ``rel_count`` per confidence bin).

Config keys: ``dataset``, ``model`` (:func:`~zoo.workloads.classification.build_model`),
``epochs``, ``batch_size``, ``optimizer`` (``{name: sgd|adam|adamw, lr, momentum,
weight_decay, nesterov}``), ``schedule`` (``cosine`` (default) or ``constant``), the task keys of
:func:`~zoo.workloads.classification.make_task`, ``settings``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.experiment import Curve
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.metrics.classification import classification_report, f_beta_binary, memorised_share, reliability
from zoo.training import TensorData, train
from zoo.training.seed import generator
from zoo.workloads.classification import UNLABELLED, Task, build_model, load_base, make_task

__all__ = ["Batch", "Objective", "LossObjective", "Method", "classbench", "job_arms", "setting_config",
           "settings_of", "pick_by_validation", "build_optimizer", "RELIABILITY_BINS"]

RELIABILITY_BINS = 15

# A loss on the model's outputs: (logits, observed labels) -> scalar.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Batch:
    """One training step's mini-batch as an :class:`Objective` sees it."""

    idx: torch.Tensor  # indices into task.x_train (for per-example state)
    x: torch.Tensor
    y: torch.Tensor  # observed labels (noisy; UNLABELLED where withheld)
    step: int
    total_steps: int
    epoch: int  # 1-based
    epochs: int

    @property
    def progress(self) -> float:
        """Fraction of training done before this step, in [0, 1)."""
        return self.step / max(self.total_steps, 1)


class Objective:
    """What a method trains: by default cross-entropy on the labelled examples of the batch.

    Subclasses override :meth:`loss`; they may also return extra trainable modules
    (:meth:`modules`, optimised with the model under the shared optimizer), update state at the
    end of each epoch (:meth:`on_epoch_end`), predict differently (:meth:`predict`) and report
    extra metrics of the final model (:meth:`metrics`).
    """

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> None:
        self.task, self.cfg = task, cfg

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(model(batch.x), batch.y, ignore_index=UNLABELLED)

    def modules(self) -> list[nn.Module]:
        return []

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        return None

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Logits of the final classifier (called under ``no_grad`` in ``eval()`` mode)."""
        return model(x)

    def metrics(self, model: nn.Module) -> dict[str, float]:
        return {}


class LossObjective(Objective):
    """``loss(model(x), y)`` over the labelled examples of the batch."""

    def __init__(self, task: Task, cfg: dict[str, Any], model: nn.Module, loss: LossFn) -> None:
        super().__init__(task, cfg, model)
        self.loss_fn = loss

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        keep = batch.y != UNLABELLED
        x, y = (batch.x, batch.y) if bool(keep.all()) else (batch.x[keep], batch.y[keep])
        return self.loss_fn(model(x), y)


@dataclass(frozen=True)
class Method:
    """One arm: a ``loss`` on logits, or an ``objective`` factory; optionally a ``model`` transform."""

    loss: LossFn | None = None
    objective: Callable[[Task, dict[str, Any], nn.Module], Objective] | None = None
    model: Callable[[nn.Module, Task, dict[str, Any]], nn.Module] | None = None
    settings: tuple[str, ...] | None = None  # None: every setting of the config

    def __post_init__(self) -> None:
        if self.loss is not None and self.objective is not None:
            raise ValueError("a Method takes loss= or objective=, not both")

    def make(self, task: Task, cfg: dict[str, Any], model: nn.Module) -> Objective:
        if self.objective is not None:
            return self.objective(task, cfg, model)
        if self.loss is not None:
            return LossObjective(task, cfg, model, self.loss)
        return Objective(task, cfg, model)


def settings_of(cfg: dict[str, Any]) -> list[str] | None:
    s = cfg.get("settings")
    return list(s) if s else None


def setting_config(cfg: dict[str, Any], setting: str | None) -> dict[str, Any]:
    """The config a job of ``setting`` runs with: the shared keys, then the setting's overrides."""
    out = {k: v for k, v in cfg.items() if k != "settings"}
    if setting is not None:
        out.update(cfg["settings"][setting] or {})
    return out


def job_arms(methods: dict[str, Method], cfg: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Every job arm: ``name -> (method, setting)``, in run order."""
    sets = settings_of(cfg)
    if sets is None:
        return {m: (m, None) for m in methods}
    return {f"{m}__{s}": (m, s) for s in sets for m, meth in methods.items()
            if meth.settings is None or s in meth.settings}


def build_optimizer(params: Iterable[nn.Parameter], cfg: dict[str, Any], total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """The shared optimizer and per-step schedule of the config."""
    o = dict(cfg.get("optimizer") or {"name": "sgd", "lr": 0.05, "momentum": 0.9})
    name, lr, wd = str(o.get("name", "sgd")), float(o["lr"]), float(o.get("weight_decay", 0.0))
    params = list(params)
    if name == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=float(o.get("momentum", 0.0)),
                                                     weight_decay=wd, nesterov=bool(o.get("nesterov", False)))
    elif name == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=wd)
    elif name == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    else:
        raise ValueError(f"optimizer.name: unknown {name!r}; use sgd, adam or adamw")
    schedule = cfg.get("schedule", "cosine")
    if schedule == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    if schedule == "constant":
        return opt, None
    raise ValueError(f"schedule: unknown {schedule!r}; use cosine or constant")


@torch.no_grad()
def _logits(objective: Objective, model: nn.Module, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    if x.shape[0] == 0:
        return torch.zeros(0, objective.task.num_classes, device=x.device)
    return torch.cat([objective.predict(model, x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def _eval_mode(model: nn.Module, objective: Objective) -> list[tuple[nn.Module, bool]]:
    mods = [model, *objective.modules()]
    was = [(m, m.training) for m in mods]
    for m in mods:
        m.eval()
    return was


def _restore(was: list[tuple[nn.Module, bool]]) -> None:
    for m, t in was:
        m.train(t)


def fit(method: Method, task: Task, cfg: dict[str, Any], seed: int, device: str) -> JobOutput:
    """Train ``method`` on ``task`` under ``cfg`` for ``seed`` and measure it (see the module docstring).

    The caller has seeded the process by ``seed``; the model is the first draw.
    """
    model = build_model(dict(cfg.get("model") or {"kind": "mlp"}), task).to(device)
    if method.model is not None:
        model = method.model(model, task, cfg).to(device)
    objective = method.make(task, cfg, model)
    extra = [p for m in objective.modules() for p in m.parameters()]
    for m in objective.modules():
        m.to(device)
    epochs, batch_size = int(cfg["epochs"]), int(cfg["batch_size"])
    steps_per_epoch = math.ceil(task.n_train / batch_size)
    total = epochs * steps_per_epoch
    opt, sched = build_optimizer([*model.parameters(), *extra], cfg, total)
    # The loop batches example *indices*: an objective can keep per-example state (ELR, PS-KD).
    index_data = TensorData(torch.arange(task.n_train, device=task.x_train.device), task.y_train,
                            task.x_test, task.y_test, task.num_classes, task.name)
    step_now = [0]

    def before_step(step: int, total_steps: int) -> None:
        step_now[0] = step

    def loss(m: nn.Module, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = step_now[0]
        return objective.loss(m, Batch(idx, task.x_train[idx], y, s, total, s // steps_per_epoch + 1, epochs))

    test_acc: list[float] = []
    memorised: list[float] = []
    has_noise = bool(task.noisy.any())

    def on_epoch(epoch: int, hist: Any) -> None:
        objective.on_epoch_end(model, epoch)
        was = _eval_mode(model, objective)
        test_acc.append(100.0 * float((_logits(objective, model, task.x_test).argmax(-1) == task.y_test).double().mean()))
        if has_noise:
            pred = _logits(objective, model, task.x_train).argmax(-1)
            memorised.append(memorised_share(pred, task.y_train, task.noisy))
        _restore(was)

    hist = train(model, index_data, opt, epochs=epochs, batch_size=batch_size, generator=generator(seed),
                 loss=loss, before_step=before_step, scheduler=sched, eval_every=0, on_epoch=on_epoch)
    was = _eval_mode(model, objective)
    test_logits = _logits(objective, model, task.x_test)
    metrics = {f"test_{k}": v for k, v in classification_report(test_logits, task.y_test).items()}
    if task.x_val.shape[0]:
        val = classification_report(_logits(objective, model, task.x_val), task.y_val)
        metrics.update(val_acc=val["acc"], val_nll=val["nll"], val_ece=val["ece"])
    lab = task.labelled
    train_logits = _logits(objective, model, task.x_train)
    tr = classification_report(train_logits[lab], task.y_train[lab])
    metrics.update(train_acc=tr["acc"], train_pt=tr["pt"])
    metrics["peak_test_acc"] = max(test_acc)
    metrics["final_drop"] = max(test_acc) - test_acc[-1]
    if has_noise:
        pred = train_logits.argmax(-1)
        metrics["memorised"] = memorised_share(pred, task.y_train, task.noisy)
        metrics["train_clean_acc"] = 100.0 * float((pred == task.y_train_clean).double().mean())
        if task.x_val.shape[0]:
            vpred = _logits(objective, model, task.x_val).argmax(-1)
            metrics["val_clean_acc"] = 100.0 * float((vpred == task.y_val_clean).double().mean())
    if task.num_classes == 2:
        metrics["test_f1_pos"] = f_beta_binary(test_logits.argmax(-1), task.y_test)
    metrics.update(objective.metrics(model))
    _restore(was)
    rel = reliability(test_logits.double().softmax(-1), task.y_test, RELIABILITY_BINS)
    series = {"test_acc": test_acc, "train_loss": list(hist.train_loss),
              "rel_conf": rel["confidence"], "rel_acc": rel["accuracy"], "rel_count": rel["count"]}
    if has_noise:
        series["memorised"] = memorised
    return JobOutput(metrics, series)


def pick_by_validation(table: Table, arms: list[str], metric: str = "val_acc", higher: bool = True) -> str:
    """The arm with the best mean validation ``metric`` over seeds (ties: the first listed)."""
    def key(a: str) -> float:
        m = statistics.fmean(table.metric(a, metric))
        m = m if math.isfinite(m) else (-math.inf if higher else math.inf)
        return -float(f"{m:.9g}") if higher else float(f"{m:.9g}")

    return min(arms, key=key)


def _datasets(cfg: dict[str, Any]) -> list[Any]:
    sets = settings_of(cfg) or [None]
    out: list[Any] = []
    for s in sets:
        d = setting_config(cfg, s)["dataset"]
        if d not in out:
            out.append(d)
    return out


def _key(dataset: Any) -> str:
    return dataset if isinstance(dataset, str) else repr(sorted(dict(dataset).items()))


def classbench(name: str, methods: Callable[[dict[str, Any]], dict[str, Method]],
               extra_derive: Callable[[dict[str, Any], Table, dict[str, dict[str, list[float]]]], None] | None = None,
               plot_methods: Callable[[dict[str, Any]], list[str]] | None = None,
               extra_curves: Callable[[dict[str, Any], Table], list[Curve]] | None = None) -> Experiment:
    """The :class:`Experiment` comparing ``methods(cfg)`` on the config's setting(s).

    ``extra_derive(cfg, table, derived)`` may add arms or metrics (e.g. a validation-picked
    hyper-parameter); ``plot_methods(cfg)`` picks the methods drawn (default: all). Assign the
    result to a module-level name (the harness pickles experiments by name).
    """

    def setup(cfg: dict[str, Any], env: Env) -> dict[str, TensorData]:
        return {_key(d): load_base(d, env.data_dir, env.device) for d in _datasets(cfg)}

    def arms(cfg: dict[str, Any]) -> list[str]:
        return list(job_arms(methods(cfg), cfg))

    def job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
        m, s = job_arms(methods(cfg), cfg)[arm]
        scfg = setting_config(cfg, s)
        task = make_task(scfg, ctx.setup[_key(scfg["dataset"])], seed)
        return fit(methods(cfg)[m], task, scfg, seed, ctx.device)

    def derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
        out: dict[str, dict[str, list[float]]] = {}
        if settings_of(cfg) is not None:
            for a, (m, s) in job_arms(methods(cfg), cfg).items():
                for k, v in table.metrics_of(a).items():
                    out.setdefault(m, {})[f"{s}_{k}"] = v
        if extra_derive is not None:
            extra_derive(cfg, table, out)
        return out

    def curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
        ms = methods(cfg)
        shown = plot_methods(cfg) if plot_methods else list(ms)
        jobs = job_arms(ms, cfg)
        n = len(table.seeds)
        out: list[Curve] = []
        for s in settings_of(cfg) or [None]:
            mine = {m: a for a, (m, ss) in jobs.items() if ss == s and m in shown}
            if not mine:
                continue
            where = f" [{s}]" if s is not None else ""
            for key, what, ylabel in (("test_acc", "test accuracy", "test accuracy (%)"),
                                      ("memorised", "memorised noisy labels", "corrupted labels fitted (%)")):
                series, bands = {}, {}
                for m, a in mine.items():
                    rows = _series_or_empty(table, a, key)
                    if rows:
                        series[m], bands[m] = mean_band(rows)
                if series:
                    k = len(next(iter(series.values())))
                    out.append(Curve(title=f"{what} per epoch{where} (mean, min-max, {n} seeds)",
                                     x=[float(e) for e in range(1, k + 1)], series=series, bands=bands,
                                     xlabel="epoch", ylabel=ylabel))
            out.append(reliability_curve(table, mine, f"Reliability diagram, test split{where} ({n} seeds pooled)"))
        if extra_curves is not None:
            out.extend(extra_curves(cfg, table))
        return out

    return Experiment(name=name, arms=arms, job=job, setup=setup, derive=derive, curves=curves)


def _series_or_empty(table: Table, arm: str, name: str) -> list[list[float]]:
    try:
        return table.series(arm, name)
    except KeyError:  # e.g. no "memorised" series without label noise
        return []


def reliability_curve(table: Table, arms: dict[str, str], title: str) -> Curve:
    """Accuracy against confidence per bin, pooled over seeds, with the diagonal of perfect calibration."""
    centers = [(b + 0.5) / RELIABILITY_BINS for b in range(RELIABILITY_BINS)]
    series: dict[str, list[float]] = {"perfect calibration": centers}
    style: dict[str, str] = {"perfect calibration": "k:"}
    for label, a in arms.items():
        accs, counts = table.series(a, "rel_acc"), table.series(a, "rel_count")
        pooled = []
        for b in range(RELIABILITY_BINS):
            n = sum(c[b] for c in counts)
            s = sum(acc[b] * c[b] for acc, c in zip(accs, counts) if c[b] > 0)
            pooled.append(s / n if n > 0 else float("nan"))
        series[label], style[label] = pooled, "o-"
    return Curve(title=title, x=centers, series=series, style=style, xlabel="confidence (bin centre)",
                 ylabel="accuracy in bin")


__all__ += ["fit", "reliability_curve"]
