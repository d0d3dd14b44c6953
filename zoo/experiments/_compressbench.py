"""One compression comparison on the shared workloads: the experiment every compression entry builds.

An entry declares its arms in the spec's config (``arms: {name: {method: <registered>, ...options}}``)
and gets a whole :class:`zoo.harness.Experiment` from :func:`compressbench`; methods are
:class:`Method` subclasses registered by name (:func:`register`), the family's baselines
(:mod:`zoo.experiments._compress_baselines`: ``dense``, ``gmp``, ``l1_channel``, ``ptq``) among
them. No entry writes a training loop: the jobs call :func:`zoo.training.train`.

**A job** (one arm, one seed; the harness has seeded the process):

1. the task (:func:`zoo.workloads.classification.make_task`: train/validation/test splits) and the
   model (:func:`~zoo.workloads.classification.build_model`), the job's first random draw, so
   every arm of a seed starts from the same weights;
2. with ``pretrain_epochs > 0``, the seed's dense model trained once by the harness
   (``per_seed``) with cross-entropy is loaded: every arm starts from the same trained weights;
3. ``method.attach(model)`` (register masks, gates, quantisers; one-shot pruning);
4. ``epochs`` of training (may be 0) with the method's ``loss``, ``before_step``,
   ``after_backward`` (gradients in place, before the optimizer step), ``after_step`` and
   ``on_epoch_end`` hooks, the shared optimizer and schedule (``finetune_optimizer`` if given, else
   ``optimizer``) and the seed's batch order;
5. ``method.compress(model)`` (harden masks, post-training quantisation or compensation);
6. :func:`zoo.compress.export` and :func:`zoo.compress.measure`: **every reported accuracy and
   size is the exported model's** (``test_acc``, ``val_acc``, ``params``, ``nonzero``,
   ``payload_bytes``, ``bytes``, ``entropy_bytes``, ``macs``, ``latency_ms``), plus
   ``kept_params`` (non-zero parameters over the uncompressed architecture's count),
   ``bits_per_param`` (stored payload bits over that count), ``masked_test_acc`` (the compressed
   model before export) and ``export_gap`` (largest absolute logit difference between the two on
   the test split, which a test keeps at float rounding).

**Derived, per seed** (when the config's ``reference`` arm, default ``dense``, is present): every
arm also gets ``compression`` (reference ``bytes`` over the arm's), ``entropy_compression``
(reference ``bytes`` over the arm's ``entropy_bytes``), ``speedup`` (reference latency over the
arm's), ``macs_ratio`` (arm's MACs over the reference's) and ``acc_drop`` (reference test
accuracy minus the arm's).

**Settings.** ``cfg["settings"]`` (optional) maps a setting name to config overrides (dataset,
model, epochs...); jobs are then ``<arm>__<setting>`` and each arm reports ``<setting>_<metric>``.

Config keys: ``dataset``, ``model``, ``epochs``, ``pretrain_epochs``, ``batch_size``,
``optimizer``/``finetune_optimizer`` (:func:`zoo.experiments._classbench.build_optimizer`; ``lr:
tuned`` takes the family's tuned learning rate of the workload from
``reproductions/_baselines/compress/tuned.json``), ``schedule``, the task keys of ``make_task``,
``latency_batch`` (default 256), ``latency_repeats`` (default 30), ``reference``, ``arms``,
``settings``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from zoo.compress import export, measure
from zoo.experiment import Curve
from zoo.experiments._classbench import build_optimizer
from zoo.harness import Env, Experiment, JobContext, JobOutput, Table, mean_band
from zoo.training import TensorData, train
from zoo.training.seed import generator
from zoo.workloads.classification import Task, build_model, load_base, make_task

__all__ = ["WORKLOADS", "Batch", "Method", "register", "METHODS", "compressbench", "job_arms", "setting_config", "fit",
           "pretrain", "tuned_lr", "arm_specs", "SIZE_METRICS", "DERIVED_METRICS"]

# The family's shared workloads: a config naming ``workload`` gets its dataset and model (keys the
# config sets itself win), and ``lr: tuned`` looks up the learning rate tuned for it.
WORKLOADS: dict[str, dict[str, Any]] = {
    "lenet300_mnist5k": {"dataset": "mnist5k", "model": {"kind": "mlp", "hidden": [300, 100]}},
    "lenet300_digits": {"dataset": "digits", "model": {"kind": "mlp", "hidden": [300, 100]}},
    "cnn_digits": {"dataset": "digits", "model": {"kind": "cnn", "width": 16}},
    "cnn_mnist5k": {"dataset": "mnist5k", "model": {"kind": "cnn", "width": 16}},
}

SIZE_METRICS = ("params", "nonzero", "payload_bytes", "bytes", "entropy_bytes", "macs", "latency_ms")
DERIVED_METRICS = ("compression", "entropy_compression", "speedup", "macs_ratio", "acc_drop")


@dataclass
class Batch:
    """One training step's mini-batch, as a :class:`Method` sees it."""

    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    step: int
    total_steps: int
    epoch: int
    epochs: int

    @property
    def progress(self) -> float:
        """Fraction of this phase's training done before this step, in [0, 1)."""
        return self.step / max(self.total_steps, 1)


class Method:
    """One arm's compression method. Subclass it, set ``defaults`` (its options) and register it.

    Every hook has a neutral default, so ``Method`` itself is the dense baseline. The arm's options
    (the spec's ``arms.<name>`` minus ``method``) are checked against ``defaults`` and read as
    ``self.opt[...]``. ``self.task`` holds the splits (post-training methods calibrate on
    ``task.x_train``, never on the test split).
    """

    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, task: Task, cfg: dict[str, Any], options: dict[str, Any], arm: str = "") -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(f"arms.{arm}: unknown option(s) {unknown} for method {type(self).__name__}; "
                             f"it takes {sorted(self.defaults)}")
        self.task, self.cfg, self.arm = task, cfg, arm
        self.opt = {**self.defaults, **options}

    def attach(self, model: nn.Module) -> nn.Module:
        return model

    def modules(self) -> list[nn.Module]:
        """Extra trainable modules (gates, predictors), optimised with the model."""
        return []

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(model(batch.x), batch.y)

    def before_step(self, model: nn.Module, step: int, total: int) -> None:
        return None

    def after_backward(self, model: nn.Module) -> None:
        return None

    def after_step(self, model: nn.Module) -> None:
        return None

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        return None

    def compress(self, model: nn.Module) -> nn.Module:
        """The model to export (hardened masks, quantisers attached); default: as trained."""
        return model

    def metrics(self, model: nn.Module, exported: nn.Module) -> dict[str, float]:
        return {}


METHODS: dict[str, type[Method]] = {"dense": Method}


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Register a :class:`Method` under ``name`` (the spec's ``arms.<arm>.method``)."""

    def deco(cls: type[Method]) -> type[Method]:
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"method name {name!r} is already registered by {METHODS[name].__name__}")
        METHODS[name] = cls
        return cls

    return deco


def arm_specs(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{arm: {method: name, **options}}`` from the config, every method checked to be registered."""
    _register_baselines()
    arms = cfg.get("arms")
    if not isinstance(arms, dict) or not arms:
        raise ValueError("config.arms: give a mapping {arm: {method: <name>, ...options}}")
    out = {}
    for a, spec in arms.items():
        spec = dict(spec or {"method": "dense"})
        m = spec.pop("method", None)
        if m not in METHODS:
            raise ValueError(f"config.arms.{a}.method: unknown {m!r}; registered: {sorted(METHODS)}")
        out[a] = {"method": m, **spec}
    return out


def settings_of(cfg: dict[str, Any]) -> list[str] | None:
    s = cfg.get("settings")
    return list(s) if s else None


def setting_config(cfg: dict[str, Any], setting: str | None) -> dict[str, Any]:
    """The config a job of ``setting`` runs with: workload defaults, the shared keys, the setting's overrides."""
    out = {k: v for k, v in cfg.items() if k != "settings"}
    if setting is not None:
        out.update(cfg["settings"][setting] or {})
    w = out.get("workload")
    if w is not None:
        if w not in WORKLOADS:
            raise ValueError(f"config.workload: unknown {w!r}; use one of {sorted(WORKLOADS)}")
        out = {**WORKLOADS[w], **{k: v for k, v in out.items() if v is not None or k not in WORKLOADS[w]}}
    return out


def job_arms(cfg: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Every job arm: ``name -> (arm, setting)``, in run order."""
    arms = list(arm_specs(cfg))
    sets = settings_of(cfg)
    if sets is None:
        return {a: (a, None) for a in arms}
    return {f"{a}__{s}": (a, s) for s in sets for a in arms}


def tuned_lr(workload: str) -> float:
    """The family's tuned learning rate of ``workload`` (``reproductions/_baselines/compress/tuned.json``)."""
    from zoo.catalogue import repo_root

    path = repo_root() / "reproductions" / "_baselines" / "compress" / "tuned.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tuned baselines; run `python -m zoo.baselines compress --record`")
    tuned = json.loads(path.read_text())["baselines"]
    if workload not in tuned:
        raise KeyError(f"{path}: no tuned learning rate for workload {workload!r}; tuned: {sorted(tuned)}")
    return float(tuned[workload]["dense"]["lr"])


def _optimizer_cfg(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    o = dict(cfg.get(key) or cfg.get("optimizer") or {"name": "adam", "lr": 1e-3})
    if o.get("lr") == "tuned":
        if "workload" not in cfg:
            raise ValueError(f"config.{key}.lr is 'tuned' but the config names no `workload` to look it up")
        o["lr"] = tuned_lr(str(cfg["workload"]))
    return o


def _phase(model: nn.Module, method: Method, task: Task, cfg: dict[str, Any], seed: int, epochs: int,
           optimizer_key: str, on_epoch: Callable[[int], None] | None = None) -> list[float]:
    """``epochs`` of training of ``model`` under ``method``'s hooks; returns the per-epoch training loss."""
    if epochs <= 0:
        return []
    batch_size = int(cfg["batch_size"])
    steps_per_epoch = math.ceil(task.n_train / batch_size)
    total = epochs * steps_per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    extra = [p for m in method.modules() for p in m.parameters() if p.requires_grad]
    opt, sched = build_optimizer([*params, *extra], {**cfg, "optimizer": _optimizer_cfg(cfg, optimizer_key)}, total)
    index_data = TensorData(torch.arange(task.n_train, device=task.x_train.device), task.y_train,
                            task.x_test, task.y_test, task.num_classes, task.name)
    step_now = [0]

    class _Hooked(torch.optim.Optimizer):
        """The shared optimizer, with the method's hooks around its step."""

        def __init__(self) -> None:  # noqa: D401 - a thin wrapper, not a new optimizer
            self.inner = opt
            self.param_groups = opt.param_groups
            self.defaults = opt.defaults
            self.state = opt.state

        def zero_grad(self, set_to_none: bool = True) -> None:
            opt.zero_grad(set_to_none=set_to_none)

        def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
            def hooked() -> torch.Tensor:
                value = closure()
                method.after_backward(model)
                return value

            value = opt.step(hooked)
            method.after_step(model)
            return value

    def before_step(step: int, total_steps: int) -> None:
        step_now[0] = step
        method.before_step(model, step, total_steps)

    def loss(m: nn.Module, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = step_now[0]
        return method.loss(m, Batch(idx, task.x_train[idx], y, s, total, s // steps_per_epoch + 1, epochs))

    def epoch_end(epoch: int, hist: Any) -> None:
        method.on_epoch_end(model, epoch)
        if on_epoch is not None:
            on_epoch(epoch)

    hist = train(model, index_data, _Hooked(), epochs=epochs, batch_size=batch_size, generator=generator(seed),
                 loss=loss, before_step=before_step, scheduler=sched, eval_every=0, on_epoch=epoch_end)
    return list(hist.train_loss)


def pretrain(task: Task, cfg: dict[str, Any], seed: int, device: str) -> nn.Module:
    """The seed's dense model after ``pretrain_epochs`` of cross-entropy (the first random draw is its init)."""
    model = build_model(dict(cfg.get("model") or {"kind": "mlp"}), task).to(device)
    method = Method(task, cfg, {}, "pretrain")
    _phase(model, method, task, cfg, seed, int(cfg.get("pretrain_epochs", 0)), "optimizer")
    return model


@torch.no_grad()
def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    if x.shape[0] == 0:
        return float("nan")
    logits = torch.cat([model(x[i : i + 2048]) for i in range(0, x.shape[0], 2048)])
    return 100.0 * float((logits.argmax(-1) == y).double().mean())


def fit(method_name: str, options: dict[str, Any], task: Task, cfg: dict[str, Any], seed: int, device: str,
        pretrained: dict[str, torch.Tensor] | None = None, arm: str = "") -> JobOutput:
    """One arm on one seed (see the module docstring); the caller has seeded the process by ``seed``."""
    model = build_model(dict(cfg.get("model") or {"kind": "mlp"}), task).to(device)
    dense_params = sum(p.numel() for p in model.parameters())
    if pretrained is not None:
        model.load_state_dict(pretrained)
    method = METHODS[method_name](task, cfg, options, arm)
    model = method.attach(model)
    for m in method.modules():
        m.to(device)
    test_acc: list[float] = []

    def on_epoch(epoch: int) -> None:
        was = model.training
        model.eval()
        test_acc.append(_acc(model, task.x_test, task.y_test))
        model.train(was)

    train_loss = _phase(model, method, task, cfg, seed, int(cfg["epochs"]), "finetune_optimizer", on_epoch)
    model.eval()
    compressed = method.compress(model).eval()
    with torch.no_grad():
        masked_logits = compressed(task.x_test)
        exported = export(compressed)
        exported_logits = exported(task.x_test)
    metrics: dict[str, float] = {
        "test_acc": _acc(exported, task.x_test, task.y_test),
        "val_acc": _acc(exported, task.x_val, task.y_val),
        "masked_test_acc": 100.0 * float((masked_logits.argmax(-1) == task.y_test).double().mean()),
        "export_gap": float((masked_logits - exported_logits).abs().max()),
    }
    example = task.x_test[: int(cfg.get("latency_batch", 256))]
    report = measure(exported, example, repeats=int(cfg.get("latency_repeats", 30))).as_dict()
    metrics.update(report)
    metrics["kept_params"] = report["nonzero"] / dense_params
    metrics["bits_per_param"] = 8.0 * report["payload_bytes"] / dense_params
    metrics.update(method.metrics(compressed, exported))
    series = {"test_acc": test_acc, "train_loss": train_loss}
    return JobOutput(metrics, series)


def _key(cfg: dict[str, Any]) -> str:
    d = cfg["dataset"]
    return d if isinstance(d, str) else repr(sorted(dict(d).items()))


def compressbench(name: str, extra_derive: Callable[[dict[str, Any], Table, dict[str, dict[str, list[float]]]], None] | None = None,
                  extra_curves: Callable[[dict[str, Any], Table], list[Curve]] | None = None) -> Experiment:
    """The :class:`Experiment` comparing the config's arms; assign it to a module-level name."""

    def setup(cfg: dict[str, Any], env: Env) -> dict[str, TensorData]:
        arm_specs(cfg)  # fail on a bad arm before any job runs
        out = {}
        for s in settings_of(cfg) or [None]:
            scfg = setting_config(cfg, s)
            out.setdefault(_key(scfg), load_base(scfg["dataset"], env.data_dir, env.device))
        return out

    def per_seed(cfg: dict[str, Any], seed: int, env: Env, setup: Any, shared: Any) -> dict[str | None, Any]:
        out: dict[str | None, Any] = {}
        for s in settings_of(cfg) or [None]:
            scfg = setting_config(cfg, s)
            if int(scfg.get("pretrain_epochs", 0)) > 0:
                torch.manual_seed(seed)  # the pretrained model's init is the seed's first draw, as in a job
                task = make_task(scfg, setup[_key(scfg)], seed)
                model = pretrain(task, scfg, seed, env.device)
                out[s] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return out

    def arms(cfg: dict[str, Any]) -> list[str]:
        return list(job_arms(cfg))

    def job(cfg: dict[str, Any], arm: str, seed: int, ctx: JobContext) -> JobOutput:
        a, s = job_arms(cfg)[arm]
        scfg = setting_config(cfg, s)
        task = make_task(scfg, ctx.setup[_key(scfg)], seed)
        spec = dict(arm_specs(cfg)[a])
        m = spec.pop("method")
        return fit(m, spec, task, scfg, seed, ctx.device, (ctx.seed_state or {}).get(s), arm=a)

    def derive(cfg: dict[str, Any], table: Table) -> dict[str, dict[str, list[float]]]:
        out: dict[str, dict[str, list[float]]] = {}
        ref = cfg.get("reference", "dense")
        for ja, (a, s) in job_arms(cfg).items():
            ref_job = ref if s is None else f"{ref}__{s}"
            mets = table.metrics_of(ja)
            if ref_job in table:
                r = table.metrics_of(ref_job)
                mets = {**mets,
                        "compression": [x / y for x, y in zip(r["bytes"], mets["bytes"])],
                        "entropy_compression": [x / y for x, y in zip(r["bytes"], mets["entropy_bytes"])],
                        "speedup": [x / y for x, y in zip(r["latency_ms"], mets["latency_ms"])],
                        "macs_ratio": [x / y for x, y in zip(mets["macs"], r["macs"])],
                        "acc_drop": [x - y for x, y in zip(r["test_acc"], mets["test_acc"])]}
            if s is None:
                out[a] = mets
            else:
                for k, v in mets.items():
                    out.setdefault(a, {})[f"{s}_{k}"] = v
        if extra_derive is not None:
            extra_derive(cfg, table, out)
        return out

    def curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
        out: list[Curve] = []
        n = len(table.seeds)
        for s in settings_of(cfg) or [None]:
            where = f" [{s}]" if s is not None else ""
            mine = {a: ja for ja, (a, ss) in job_arms(cfg).items() if ss == s}
            series, bands = {}, {}
            for a, ja in mine.items():
                rows = table.series(ja, "test_acc")
                if rows and rows[0]:
                    series[a], bands[a] = mean_band(rows)
            if series:
                k = len(next(iter(series.values())))
                out.append(Curve(title=f"test accuracy per epoch{where} (mean, min-max, {n} seeds)",
                                 x=[float(e) for e in range(1, k + 1)], series=series, bands=bands,
                                 xlabel="epoch", ylabel="test accuracy (%)"))
            out.append(pareto_curve(table, mine, f"Accuracy vs stored size{where} (exported models, mean of {n} seeds)"))
        if extra_curves is not None:
            out.extend(extra_curves(cfg, table))
        return out

    return Experiment(name=name, arms=arms, job=job, setup=setup, per_seed=per_seed, derive=derive, curves=curves)


def pareto_curve(table: Table, arms: dict[str, str], title: str, size: str = "bytes") -> Curve:
    """Test accuracy against stored size (log scale), one point per arm (mean over seeds)."""
    series: dict[str, list[float]] = {}
    xs: list[float] = []
    style: dict[str, str] = {}
    pts = []
    for a, ja in arms.items():
        sz = table.metric(ja, size)
        acc = table.metric(ja, "test_acc")
        pts.append((a, sum(sz) / len(sz), sum(acc) / len(acc)))
    xs = [p[1] / 1024 for p in pts]
    for i, (a, _, acc) in enumerate(pts):
        series[a] = [acc if j == i else float("nan") for j in range(len(pts))]
        style[a] = "o"
    return Curve(title=title, x=xs, series=series, style=style, xlabel=f"stored size ({size}, KiB)",
                 ylabel="test accuracy (%)", logx=True)


def _register_baselines() -> None:
    import zoo.experiments._compress_baselines  # noqa: F401  (registers gmp, l1_channel, ptq)
