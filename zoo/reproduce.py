"""``python -m zoo.reproduce ID [overrides]``: run a paper's scaled-down experiment, compare it with the record.

The spec's ``reproduction.config`` is registered with Hydra as the option ``entry=<id>`` of a
config group (package ``_global_``), so Hydra's override grammar applies to it directly
(``epochs=5``, ``seeds=[0,1]``), multirun sweeps work (``-m seeds=[0],[1]``) and Hydra's
launchers run them (``hydra/launcher=joblib`` locally, ``hydra/launcher=submitit_slurm`` on a
cluster); the jobs of a seed sweep are merged into one result with verdicts. ``--all`` is a
multirun over every reproducible entry.

Where results go (never into the record unless asked):

* the spec's full budget -> a fresh ``runs/<id>/full-<UTC time>/``, then a table comparing it
  with the recorded result in ``reproductions/<id>/`` (``--strict``: exit 1 when a verdict differs);
* ``--record`` -> ``reproductions/<id>/`` and that stage's entry of ``dvc.lock``: only the spec's
  own budget (no overrides, no ``--quick``) from a clean checkout whose claims pass the
  append-only check;
* ``--quick`` -> ``runs/<id>/quick/``: a smoke run; metrics but no verdicts (one seed decides nothing);
* any override -> ``runs/<id>/<overrides>/``; ``--out DIR`` -> ``DIR``.

Every write is atomic (:func:`zoo.results.write_run_dir`): a crashed run leaves every previous
result as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata as md
import io
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zoo.catalogue import Entry, SpecError, get, load_all, repo_root, resolve
from zoo.results import Metrics, Provenance, ResultsError, Verdicts, evaluate_claims, read_json_model, write_run_dir

__all__ = ["main", "run_entry", "compose_config", "OverrideError", "destination", "compare", "merge_runs"]

_RUNNER_KEYS = ("seeds",)
_PACKAGES = ("numpy", "pydantic", "hydra-core", "omegaconf", "scikit-learn", "mlxtend", "mnist1d", "matplotlib")
QUICK_NOTE = "quick budget: a smoke run, so no verdicts (a verdict needs the spec's seeds; run without --quick)"


class OverrideError(Exception):
    """A Hydra override or flag that does not apply; one line naming the spec field and the fix."""


# ----------------------------------------------------------------------------- config
def base_config(entry: Entry, quick: bool) -> dict[str, Any]:
    """The spec's config (with the quick overrides under ``--quick``) plus ``seeds``."""
    r = entry.spec.reproduction
    assert r is not None
    cfg = dict(r.config)
    seeds = list(r.seeds)
    if quick:
        cfg.update(r.quick.config)
        seeds = list(r.quick.seeds or seeds)
    cfg["seeds"] = seeds
    return cfg


def _register(entries: list[Entry], quick: bool) -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for e in entries:
        cs.store(group="entry", name=e.id, node=base_config(e, quick), package="_global_")
    cs.store(name="zoo_reproduce", node={"defaults": ["_self_", {"entry": entries[0].id}]})


def _check_types(entry: Entry, default: dict[str, Any], composed: dict[str, Any], overrides: list[str]) -> None:
    for key, old in default.items():
        new = composed.get(key)
        if old is None or new is None or type(old) is type(new):
            continue
        if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
            continue
        shown = next((o for o in overrides if o.split("=")[0].lstrip("+~") == key), f"{key}={new}")
        raise OverrideError(
            f"specs/{entry.id}.yaml: reproduction.config.{key}: override {shown!r} gives a "
            f"{type(new).__name__}, expected {type(old).__name__} (default {old!r}); pass e.g. {key}={old!r}"
        )


def compose_config(entry: Entry, overrides: list[str], quick: bool = False) -> dict[str, Any]:
    """Compose the run config with Hydra; bad overrides raise :class:`OverrideError` (one line)."""
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    _register([entry], quick)
    GlobalHydra.instance().clear()
    try:
        with initialize(version_base=None, config_path=None):
            cfg = compose(config_name="zoo_reproduce", overrides=[f"entry={entry.id}", *overrides])
    except Exception as e:  # Hydra's override/composition errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        known = ", ".join(sorted(base_config(entry, quick)))
        raise OverrideError(
            f"specs/{entry.id}.yaml: reproduction.config: bad override ({first}); "
            f"known keys: {known}; write key=value"
        ) from None
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    _check_types(entry, base_config(entry, quick), out, overrides)
    seeds = out.get("seeds")
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        raise OverrideError(f"specs/{entry.id}.yaml: reproduction.seeds: seeds must be a non-empty list of ints, e.g. seeds=[0,1,2]")
    return out


# ----------------------------------------------------------------------------- provenance
def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def dirty_files() -> list[str]:
    """Paths ``git status`` lists (modified, staged or untracked): empty for a clean checkout."""
    return [ln.split(maxsplit=1)[-1] for ln in _git("status", "--porcelain").splitlines() if ln.strip()]


def device_name(device: str) -> str:
    """A human-readable name of the device: the GPU model, or the CPU model, cores and torch threads."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (those not installed are left out)."""
    out = {}
    for p in names:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise OverrideError(f"--device {requested}: CUDA is not available on this machine; use --device cpu")
    return requested


# ----------------------------------------------------------------------------- plot
def render_plot(entry: Entry, curves: list[Any]) -> bytes:
    """All curves of a run as panels of one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(curves))
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, c in zip(axes.flat, curves):
        for label, ys in c.series.items():
            fmt = c.style.get(label, "-")
            ax.plot(c.x[: len(ys)], ys, fmt, label=label, lw=1.6, ms=4)
            if label in c.bands:
                lo, hi = c.bands[label]
                ax.fill_between(c.x[: len(lo)], lo, hi, alpha=0.2)
        ax.set_title(c.title, fontsize=10)
        ax.set_xlabel(c.xlabel)
        ax.set_ylabel(c.ylabel)
        if c.logx:
            ax.set_xscale("log")
        if c.logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if len(c.series) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.suptitle(entry.spec.title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# ----------------------------------------------------------------------------- destinations
def _slug(overrides: list[str]) -> str:
    slug = re.sub(r"[^A-Za-z0-9=.,_-]+", "_", "_".join(overrides))[:60]
    return f"{slug}_{hashlib.sha1(chr(0).join(overrides).encode()).hexdigest()[:8]}"


def destination(entry: Entry, quick: bool, overrides: list[str], out: str | None, record: bool = False) -> Path:
    """Where a run's results go (see the module docstring)."""
    if out:
        return Path(out)
    if record:
        return entry.results_dir
    runs = repo_root() / "runs" / entry.id
    if quick:
        return runs / ("quick" if not overrides else f"quick_{_slug(overrides)}")
    if overrides:
        return runs / _slug(overrides)
    return runs / f"full-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}"


# ----------------------------------------------------------------------------- run
def _ensure_data(entry: Entry, data_dir: Path) -> None:
    from zoo.data import prepare

    r = entry.spec.reproduction
    missing = [d for d in (r.data if r else []) if not (data_dir / d / "meta.json").is_file()]
    if missing:
        print(f"preparing missing datasets {missing} into {data_dir} (offline, deterministic)", file=sys.stderr)
        prepare(data_dir, missing)


def _experiment(entry: Entry) -> Any:
    from zoo.harness import Experiment

    r = entry.spec.reproduction
    assert r is not None
    exp = resolve(r.experiment)
    if not isinstance(exp, Experiment):
        raise SpecError(entry.file.name, "reproduction.experiment",
                        f"{r.experiment!r} is a {type(exp).__name__}, not a zoo.harness.Experiment; point it at the module's EXPERIMENT")
    return exp


def _check_metrics(entry: Entry, metrics: dict[str, dict[str, list[float]]], n_seeds: int) -> dict[str, dict[str, list[float]]]:
    """The spec's arms and metrics from what the harness assembled.

    Internal arms (grid points) and metrics the spec does not declare (a shared harness measures
    more than one entry's claims need) are dropped from ``metrics.json``; ``jobs.json`` keeps them.
    """
    r = entry.spec.reproduction
    assert r is not None
    where = r.experiment
    out: dict[str, dict[str, list[float]]] = {}
    for arm, ms in metrics.items():
        if arm not in r.arms:
            continue  # an internal job (e.g. a grid point): kept in jobs.json only
        ms = {m: vals for m, vals in ms.items() if m in r.metrics}
        for m, vals in ms.items():
            if len(vals) != n_seeds:
                raise RuntimeError(f"{where}: {arm}.{m} has {len(vals)} values for {n_seeds} seeds")
        out[arm] = ms
    for c in entry.spec.active_claims():
        for ref in c.refs():
            arm, m = ref.split(".")
            if m not in out.get(arm, {}):
                raise RuntimeError(f"{where} did not produce {ref}, which claim {c.id!r} needs")
    return out


def _provenance(entry: Entry, *, commit: str, dirty: bool, dev: str, seeds: list[int], quick: bool, overrides: list[str],
                cfg: dict[str, Any], started: datetime, wall: float, workers: int, command: str) -> Provenance:
    import torch

    return Provenance(
        entry=entry.id,
        commit=commit,
        dirty=dirty,
        device=dev,
        device_name=device_name(dev),
        python=platform.python_version(),
        torch=torch.__version__,
        packages=package_versions(),
        seeds=seeds,
        quick=quick,
        overrides=overrides,
        config=cfg,
        started=started.isoformat(timespec="seconds"),
        wall_time_s=round(wall, 2),
        host=socket.gethostname(),
        command=command,
        workers=workers,
    )


def result_files(entry: Entry, result: Any, prov: Provenance) -> dict[str, Any]:
    """The files of a run directory for a harness result (verdicts only for a full budget)."""
    seeds = list(prov.seeds)
    metrics = Metrics(entry=entry.id, seeds=seeds, arms=_check_metrics(entry, result.metrics, len(seeds)))
    files: dict[str, Any] = {"metrics.json": metrics}
    if not prov.quick:
        files["verdicts.json"] = evaluate_claims(entry.spec, metrics)
    files["provenance.json"] = prov
    files["curves.json"] = [dataclasses.asdict(c) for c in result.curves]
    # One job per line: compact, yet a diff still shows which job changed.
    files["jobs.json"] = ("[\n" + ",\n".join(json.dumps(dataclasses.asdict(j), sort_keys=True, allow_nan=True)
                                               for j in result.jobs) + "\n]\n").encode()
    files["plot.png"] = render_plot(entry, result.curves)
    return files


def run_entry(
    entry: Entry,
    cfg: dict[str, Any],
    *,
    quick: bool,
    overrides: list[str],
    dest: Path,
    device: str = "auto",
    progress: bool = True,
    workers: int | None = None,
    record: bool = False,
) -> dict[str, Any]:
    """Run one entry on the harness with a composed config and write its results to ``dest`` atomically."""
    from tqdm.auto import tqdm

    from zoo import harness

    dev = resolve_device(device)
    data_dir = repo_root() / "data"
    _ensure_data(entry, data_dir)
    exp_cfg = {k: v for k, v in cfg.items() if k not in _RUNNER_KEYS}
    seeds = list(cfg["seeds"])
    exp = _experiment(entry)
    n_jobs = len(exp.arms(exp_cfg)) * len(seeds)
    n_workers = workers or harness.default_workers(dev, n_jobs)

    def bar(**kw: Any) -> Any:
        return tqdm(leave=False, dynamic_ncols=True, file=sys.stderr, disable=not progress, **kw)

    # The code that runs is the code at the start: read the commit before the experiment.
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    harness._prepare_process(dev)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    result = harness.run(exp, exp_cfg, seeds, harness.Env(dev, data_dir, quick), workers=n_workers,
                         progress=bar if progress else None)
    wall = time.perf_counter() - t0
    command = " ".join(["python -m zoo.reproduce", entry.id, *(["--quick"] if quick else []), *(["--record"] if record else []), *overrides])
    prov = _provenance(entry, commit=commit, dirty=dirty, dev=dev, seeds=seeds, quick=quick, overrides=overrides,
                       cfg=exp_cfg, started=started, wall=wall, workers=n_workers, command=command)
    files = result_files(entry, result, prov)
    write_run_dir(dest, files)
    return {"entry": entry, "metrics": files["metrics.json"], "verdicts": files.get("verdicts.json"), "provenance": prov, "dest": dest}


# ----------------------------------------------------------------------------- tables
def _rel(dest: Path) -> str:
    try:
        return str(dest.resolve().relative_to(repo_root().resolve()))
    except ValueError:
        return str(dest)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])]


def _value(v: Any) -> str:
    """``mean [low, high]`` of a ClaimVerdict or ConditionResult."""
    if math.isnan(v.mean):
        return "nan"
    return f"{v.mean:+.3g} [{v.low:+.3g}, {v.high:+.3g}]"


def _head(entry: Entry, prov: Provenance) -> str:
    return (f"{entry.id}: {'quick' if prov.quick else 'full'} budget, seeds {prov.seeds}, "
            f"{prov.device} ({prov.device_name}), {prov.workers} worker(s), {prov.wall_time_s:.1f} s")


def verdict_table(entry: Entry, verdicts: Verdicts, prov: Provenance, dest: Path) -> str:
    rows = [("claim", "condition", "rule", "value [interval]", "n", "verdict")]
    for cid, v in verdicts.claims.items():
        rows.append((cid, v.condition, v.rule, _value(v), str(v.n), v.verdict.upper()))
        for q in v.requires:
            if q.verdict != "verified":
                rows.append(("", f"  requires {q.condition}", "", _value(q), str(q.n), f"precondition {q.verdict}"))
    return "\n".join([_head(entry, prov), *_table(rows), f"results: {_rel(dest)}/"])


def metrics_table(entry: Entry, metrics: Metrics, prov: Provenance, dest: Path) -> str:
    rows = [("metric", "per seed")]
    for arm, ms in metrics.arms.items():
        for m, vals in ms.items():
            rows.append((f"{arm}.{m}", ", ".join(f"{v:.4g}" for v in vals)))
    return "\n".join([_head(entry, prov), *_table(rows), QUICK_NOTE, f"results: {_rel(dest)}/"])


def _device_class(prov: Provenance) -> str:
    return "cuda" if prov.device.startswith("cuda") else prov.device


def compare(entry: Entry, run_dir: Path) -> tuple[str, bool]:
    """A side-by-side table of a run against the recorded result, and whether every verdict agrees.

    Per claim: the recorded verdict and value, this run's, and whether the verdicts agree. Per
    metric: identical values (expected for the same seeds on the same device class) or the
    largest difference over seeds.
    """
    recorded_dir = entry.results_dir
    try:
        rec_v = read_json_model(recorded_dir / "verdicts.json", Verdicts)
        rec_m = read_json_model(recorded_dir / "metrics.json", Metrics)
        rec_p = read_json_model(recorded_dir / "provenance.json", Provenance)
    except ResultsError as e:
        return f"no recorded result to compare with ({str(e).replace(str(repo_root()) + '/', '')})", True
    new_v = read_json_model(run_dir / "verdicts.json", Verdicts)
    new_m = read_json_model(run_dir / "metrics.json", Metrics)
    new_p = read_json_model(run_dir / "provenance.json", Provenance)
    rows = [("claim", "recorded", "this run", "agree")]
    agree_all = True
    # This run's claims in spec order, then those retired since the record.
    for cid in [*new_v.claims, *(c for c in rec_v.claims if c not in new_v.claims)]:
        a, b = rec_v.claims.get(cid), new_v.claims.get(cid)
        ok = a is not None and b is not None and a.verdict == b.verdict
        # A claim registered or retired since the record has nothing to agree with.
        agree_all &= ok or a is None or b is None
        rows.append((cid, f"{a.verdict.upper()} {_value(a)}" if a else "(new since the record)",
                     f"{b.verdict.upper()} {_value(b)}" if b else "(not run: superseded)",
                     "yes" if ok else ("-" if a is None or b is None else "NO")))
    same_seeds = rec_m.seeds == new_m.seeds
    same_class = _device_class(rec_p) == _device_class(new_p)
    mrows = [("metric", "recorded mean", "this run mean", "difference")]
    n_identical = n_rounding = 0
    for arm, ms in new_m.arms.items():
        for m, vals in ms.items():
            old = rec_m.arms.get(arm, {}).get(m)
            if old is None:
                mrows.append((f"{arm}.{m}", "-", f"{sum(vals) / len(vals):.4g}", "new metric"))
                continue
            if same_seeds and old == vals:
                n_identical += 1
                continue
            if same_seeds and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(old, vals)):
                n_rounding += 1  # another CPU's floating-point rounding, not another result
                continue
            diff = (f"max |Δ| over seeds {max(abs(x - y) for x, y in zip(old, vals)):.3g}" if same_seeds
                    else f"Δ mean {sum(vals) / len(vals) - sum(old) / len(old):+.3g}")
            mrows.append((f"{arm}.{m}", f"{sum(old) / len(old):.4g}", f"{sum(vals) / len(vals):.4g}", diff))
    out = [
        f"compared with the record: reproductions/{entry.id}/ (run {rec_p.started}, commit {rec_p.commit[:10]}, "
        f"{rec_p.device_name}, seeds {rec_p.seeds})",
        *_table(rows),
        f"metrics: {n_identical} identical"
        + (f", {n_rounding} equal up to rounding (relative 1e-9)" if n_rounding else "")
        + ("" if len(mrows) == 1 else f", {len(mrows) - 1} differ")
        + ("" if same_seeds else " (different seeds)")
        + ("" if same_class else f" (recorded on {_device_class(rec_p)}, this run on {_device_class(new_p)}: small differences are expected)"),
    ]
    if len(mrows) > 1:
        out.extend(_table(mrows))
    out.append("every verdict agrees with the record" if agree_all else "VERDICTS DIFFER from the record")
    return "\n".join(out), agree_all


# ----------------------------------------------------------------------------- record
def _check_recordable(entry: Entry, overrides: list[str], quick: bool, out: str | None) -> None:
    """--record writes the spec's own budget from a clean checkout whose claims pass the history check."""
    from zoo.history import claim_edit_problems, is_git_checkout

    f = f"specs/{entry.id}.yaml"
    if quick or overrides or out:
        what = ", ".join([*(["--quick"] if quick else []), *overrides, *([f"--out {out}"] if out else [])])
        raise OverrideError(f"{f}: reproduction: --record runs the spec's own budget only; drop {what} (or run without --record)")
    if not is_git_checkout(repo_root()):
        raise OverrideError(f"{repo_root()}: --record needs a git checkout (the record names its commit); run it in a clone")
    dirty = dirty_files()
    if dirty:
        shown = ", ".join(dirty[:4]) + (" ..." if len(dirty) > 4 else "")
        raise OverrideError(f"{f}: --record needs a clean checkout, but git status lists {shown}; commit or stash them first")
    problems = claim_edit_problems(entry)
    if problems:
        raise OverrideError(problems[0])


def record(entry: Entry, run_dir: Path) -> None:
    """Make ``run_dir`` the recorded result: swap it in atomically, then lock the stage in ``dvc.lock``."""
    import shutil

    from zoo.pipeline import write_lock_stage

    files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    write_run_dir(entry.results_dir, files)
    write_lock_stage(entry)
    shutil.rmtree(run_dir, ignore_errors=True)


# ----------------------------------------------------------------------------- multirun
def merge_runs(entry: Entry, run_dirs: list[Path], dest: Path) -> dict[str, Any]:
    """Merge the run directories of one entry's seed sweep into one result with verdicts.

    The jobs of every part are assembled by the harness exactly as one process would have done
    for the union of their seeds (a test compares the two); the parts must share their config
    apart from the seeds.
    """
    from zoo.harness import JobRecord, assemble

    provs = [read_json_model(d / "provenance.json", Provenance) for d in run_dirs]
    base = provs[0]
    for d, p in zip(run_dirs, provs):
        if p.config != base.config or p.quick != base.quick:
            raise ValueError(f"{d}: its config differs from {run_dirs[0]} beyond the seeds; merge only a seed sweep")
    seeds: list[int] = []
    jobs: list[JobRecord] = []
    for d, p in zip(run_dirs, provs):
        dup = set(seeds) & set(p.seeds)
        if dup:
            raise ValueError(f"{d}: seeds {sorted(dup)} appear in two parts of the sweep; give each job its own seeds")
        seeds.extend(p.seeds)
        jobs.extend(JobRecord(**j) for j in json.loads((d / "jobs.json").read_text()))
    exp = _experiment(entry)
    result = assemble(exp, base.config, seeds, jobs)
    seed_overrides = [f"seeds=[{','.join(map(str, seeds))}]"]
    prov = base.model_copy(update={
        "seeds": seeds,
        "overrides": [o for o in base.overrides if not o.startswith("seeds=")] + seed_overrides,
        "wall_time_s": round(sum(p.wall_time_s for p in provs), 2),
        "dirty": any(p.dirty for p in provs),
        "command": f"{base.command.split(' -m')[0]} (merged from {len(run_dirs)} sweep jobs)",
        "workers": len(run_dirs),
    })
    files = result_files(entry, result, prov)
    write_run_dir(dest, files)
    return {"entry": entry, "metrics": files["metrics.json"], "verdicts": files.get("verdicts.json"), "provenance": prov, "dest": dest}


def _multirun(entries: list[Entry], overrides: list[str], quick: bool, device: str, out: str | None) -> int:
    """Hand the sweep to Hydra: its launcher (basic, joblib, submitit) runs one job per config.

    Afterwards the jobs of each entry that differ only in their seeds are merged into one result.
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    _register(entries, quick)
    user = [o for o in overrides if not o.startswith(("hydra.", "hydra/", "entry="))]
    ids = ",".join(e.id for e in entries)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    sweep_dir = Path(out) if out else repo_root() / "runs" / "multirun" / stamp

    def job(cfg: DictConfig) -> None:
        eid = HydraConfig.get().runtime.choices["entry"]
        entry = get(eid)
        job_over = [o for o in HydraConfig.get().overrides.task if not o.startswith("entry=")]
        c = OmegaConf.to_container(cfg, resolve=True)
        dest = sweep_dir / eid / "jobs" / str(HydraConfig.get().job.num)
        # The launcher provides the parallelism: one worker per job.
        res = run_entry(entry, c, quick=True if quick else False, overrides=job_over, dest=dest, device=device,
                        progress=False, workers=1)
        if res["verdicts"] is None or len(entries) == 1:
            print(metrics_table(entry, res["metrics"], res["provenance"], dest).replace(QUICK_NOTE, "(one job of a sweep)"), flush=True)
        else:
            print(verdict_table(entry, res["verdicts"], res["provenance"], dest), flush=True)

    argv = [
        "zoo.reproduce",
        "--multirun",
        f"entry={ids}",
        *user,
        *[o for o in overrides if o.startswith(("hydra.", "hydra/"))],
        f"hydra.sweep.dir={sweep_dir / '_hydra'}",
        "hydra.job.chdir=False",
    ]
    old = sys.argv
    sys.argv = argv
    try:
        hydra.main(version_base=None, config_path=None, config_name="zoo_reproduce")(job)()
    finally:
        sys.argv = old
    for entry in entries:
        parts = sorted((sweep_dir / entry.id / "jobs").glob("*/provenance.json"), key=lambda p: int(p.parent.name))
        groups: dict[str, list[Path]] = {}
        for p in parts:
            prov = read_json_model(p, Provenance)
            key = json.dumps([o for o in prov.overrides if not o.startswith("seeds=")])
            groups.setdefault(key, []).append(p.parent)
        for i, (key, dirs) in enumerate(groups.items()):
            if len(dirs) < 2:
                continue
            dest = sweep_dir / entry.id / ("merged" if len(groups) == 1 else f"merged_{i}")
            res = merge_runs(entry, dirs, dest)
            print(f"merged {len(dirs)} jobs of {entry.id} ({', '.join(json.loads(key)) or 'spec config'}):")
            if res["verdicts"] is None:
                print(metrics_table(entry, res["metrics"], res["provenance"], dest))
            else:
                print(verdict_table(entry, res["verdicts"], res["provenance"], dest))
    return 0


# ----------------------------------------------------------------------------- CLI
def _list() -> int:
    for e in load_all().values():
        if e.spec.reproduction is not None:
            r = e.spec.reproduction
            print(f"{e.id:<32} {e.status:<12} seeds={r.seeds} arms={len(r.arms)} claims={len(e.spec.claims)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m zoo.reproduce",
        description="Run a paper's scaled-down reproduction and compare it with the recorded result.",
        epilog="Hydra overrides follow the id: `epochs=5 seeds=[0,1]`; sweep with -m: `-m seeds=[0],[1] hydra/launcher=joblib`.",
    )
    ap.add_argument("id", nargs="?", help="catalogue id, e.g. pdp_pruning")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides key=value")
    ap.add_argument("--quick", action="store_true", help="the spec's quick budget: a smoke run, metrics but no verdicts")
    ap.add_argument("--record", action="store_true",
                    help="write the result into reproductions/<id>/ and dvc.lock (spec budget, clean checkout only)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a verdict differs from the recorded one")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1")
    ap.add_argument("--workers", type=int, default=None, help="parallel job processes (default: every core on a CPU, 1 on a GPU)")
    ap.add_argument("--list", action="store_true", help="list reproducible entries")
    ap.add_argument("--all", action="store_true", help="run every reproducible entry (a Hydra multirun)")
    ap.add_argument("-m", "--multirun", action="store_true", help="Hydra multirun: sweep overrides with a launcher")
    ap.add_argument("--out", default=None, help="write results here instead of the default place")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_intermixed_args(argv)  # flags may come after overrides
    # argparse takes "key=value" words as overrides only after the id; with --all there is no id.
    overrides = list(args.overrides)
    if args.all and args.id:
        overrides.insert(0, args.id)
        args.id = None
    try:
        if args.list:
            return _list()
        if args.workers is not None and args.workers < 1:
            raise OverrideError(f"--workers {args.workers}: give at least 1")
        if args.all:
            if args.record:
                raise OverrideError("--all --record: record one entry at a time, e.g. `python -m zoo.reproduce pdp_pruning --record`")
            entries = [e for e in load_all().values() if e.spec.reproduction is not None]
            return _multirun(entries, overrides, args.quick, args.device, args.out)
        if not args.id:
            ap.error("give a catalogue id (see --list), or --all")
        entry = get(args.id)
        if entry.spec.reproduction is None:
            raise SpecError(entry.file.name, "reproduction", f"{entry.id!r} is catalogued but has no reproduction yet")
        if args.multirun:
            if args.record:
                raise OverrideError(f"specs/{entry.id}.yaml: reproduction: --record takes no sweep; drop -m")
            return _multirun([entry], overrides, args.quick, args.device, args.out)
        if args.record:
            _check_recordable(entry, overrides, args.quick, args.out)
        cfg = compose_config(entry, overrides, args.quick)
        resolve_device(args.device)
        _experiment(entry)
        dest = destination(entry, args.quick, overrides, args.out)
        res = run_entry(entry, cfg, quick=args.quick, overrides=overrides, dest=dest, device=args.device,
                        progress=not args.no_progress, workers=args.workers, record=args.record)
    except (SpecError, OverrideError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if res["verdicts"] is None:
        print(metrics_table(entry, res["metrics"], res["provenance"], dest))
        return 0
    print(verdict_table(entry, res["verdicts"], res["provenance"], dest))
    # Compared before a --record swaps the run in, so the old record needs no copy.
    had_record = (entry.results_dir / "verdicts.json").is_file()
    table, agree = compare(entry, dest)
    if args.record:
        record(entry, dest)
        print(f"recorded: reproductions/{entry.id}/ and its dvc.lock stage; commit them with "
              f"`git add reproductions/{entry.id} dvc.lock`")
        if had_record:
            print(table.replace("compared with the record", "compared with the previous record"))
        return 0
    print(table)
    return 1 if args.strict and not agree else 0


if __name__ == "__main__":
    sys.exit(main())
