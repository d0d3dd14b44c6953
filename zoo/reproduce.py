"""``python -m zoo.reproduce ID [overrides]``: run a paper's scaled-down experiment and record it.

The spec's ``reproduction.config`` is registered with Hydra as the option ``entry=<id>`` of a
config group (package ``_global_``), so Hydra's override grammar applies to it directly
(``epochs=5``, ``seeds=[0,1]``), multirun sweeps work (``-m seeds=[0],[1]``) and Hydra's
launchers run them (``hydra/launcher=joblib`` locally, ``hydra/launcher=submitit_slurm`` on a
cluster). ``--all`` is a multirun over every reproducible entry.

Where results go:

* the spec's own full run (no ``--quick``, no overrides) -> ``reproductions/<id>/`` (recorded);
* ``--quick`` or any override -> ``runs/<id>/<quick|overrides>/`` (never the recorded result);
* ``--out DIR`` -> ``DIR``.

Every write is atomic (:func:`zoo.results.write_run_dir`): a crashed run leaves the previous
results as they were.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata as md
import io
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
from zoo.results import Metrics, Provenance, evaluate_claims, write_run_dir

__all__ = ["main", "run_entry", "compose_config", "OverrideError", "destination"]

_RUNNER_KEYS = ("seeds",)
_PACKAGES = ("numpy", "pydantic", "hydra-core", "omegaconf", "scikit-learn", "mlxtend", "mnist1d", "matplotlib")


class OverrideError(Exception):
    """A Hydra override that does not apply; one line naming the spec field and the fix."""


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


def destination(entry: Entry, quick: bool, overrides: list[str], out: str | None) -> Path:
    """Where a run's results go (see the module docstring)."""
    if out:
        return Path(out)
    if not quick and not overrides:
        return entry.results_dir
    runs = repo_root() / "runs" / entry.id
    if not overrides:
        return runs / "quick"
    slug = re.sub(r"[^A-Za-z0-9=.,_-]+", "_", "_".join(overrides))[:60]
    digest = hashlib.sha1("\0".join(overrides).encode()).hexdigest()[:8]
    return runs / f"{'quick_' if quick else ''}{slug}_{digest}"


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


# ----------------------------------------------------------------------------- run
def _ensure_data(entry: Entry, data_dir: Path) -> None:
    from zoo.data import prepare

    r = entry.spec.reproduction
    missing = [d for d in (r.data if r else []) if not (data_dir / d / "meta.json").is_file()]
    if missing:
        print(f"preparing missing datasets {missing} into {data_dir} (offline, deterministic)", file=sys.stderr)
        prepare(data_dir, missing)


def _check_metrics(entry: Entry, metrics: dict[str, dict[str, list[float]]], n_seeds: int) -> None:
    r = entry.spec.reproduction
    assert r is not None
    where = r.experiment
    for arm, ms in metrics.items():
        if arm not in r.arms:
            raise RuntimeError(f"{where} produced arm {arm!r} that specs/{entry.id}.yaml reproduction.arms does not declare")
        for m, vals in ms.items():
            if m not in r.metrics:
                raise RuntimeError(f"{where} produced metric {m!r} that specs/{entry.id}.yaml reproduction.metrics does not declare")
            if len(vals) != n_seeds:
                raise RuntimeError(f"{where}: {arm}.{m} has {len(vals)} values for {n_seeds} seeds")
    for c in entry.spec.claims:
        for ref in c.condition.refs():
            arm, m = ref.split(".")
            if m not in metrics.get(arm, {}):
                raise RuntimeError(f"{where} did not produce {ref}, which claim {c.id!r} needs")


def run_entry(
    entry: Entry,
    cfg: dict[str, Any],
    *,
    quick: bool,
    overrides: list[str],
    dest: Path,
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> dict[str, Any]:
    """Run one entry with a composed config and write its results to ``dest`` atomically."""
    from tqdm.auto import tqdm

    from zoo.experiment import RunContext

    import torch

    dev = resolve_device(device)
    if dev == "cpu":
        # The zoo's models are tiny: intra-op threads buy little, and on a shared or small machine
        # spinning OpenMP workers can slow a run tenfold. One thread also makes CPU results
        # independent of the core count. Recorded in the provenance's device name.
        torch.set_num_threads(threads)
    data_dir = repo_root() / "data"
    _ensure_data(entry, data_dir)
    exp_cfg = {k: v for k, v in cfg.items() if k not in _RUNNER_KEYS}
    seeds = list(cfg["seeds"])
    run = resolve(entry.spec.reproduction.experiment)

    def bar(**kw: Any) -> Any:
        return tqdm(leave=False, dynamic_ncols=True, file=sys.stderr, disable=not progress, **kw)

    ctx = RunContext(device=dev, seeds=seeds, data_dir=data_dir, quick=quick, progress=bar)
    # The code that runs is the code at the start: read the commit before the experiment.
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    result = run(exp_cfg, ctx)
    wall = time.perf_counter() - t0
    _check_metrics(entry, result.metrics, len(seeds))
    metrics = Metrics(entry=entry.id, seeds=seeds, arms=result.metrics)
    verdicts = evaluate_claims(entry.spec, metrics)

    prov = Provenance(
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
        config=exp_cfg,
        started=started.isoformat(timespec="seconds"),
        wall_time_s=round(wall, 2),
        host=socket.gethostname(),
        command=" ".join(["python -m zoo.reproduce", entry.id, *(["--quick"] if quick else []), *overrides]),
    )
    curves = [dataclasses.asdict(c) for c in result.curves]
    write_run_dir(
        dest,
        {
            "metrics.json": metrics,
            "verdicts.json": verdicts,
            "provenance.json": prov,
            "curves.json": curves,
            "plot.png": render_plot(entry, result.curves),
        },
    )
    return {"entry": entry, "verdicts": verdicts, "provenance": prov, "dest": dest}


def verdict_table(entry: Entry, verdicts: Any, prov: Provenance, dest: Path) -> str:
    rows = [("claim", "condition", "mean ± sem (n)", "verdict")]
    for cid, v in verdicts.claims.items():
        rows.append((cid, v.condition, f"{v.mean:+.3g} ± {v.sem:.2g} ({v.n})", v.verdict.upper()))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = lambda r: "  ".join(s.ljust(w) for s, w in zip(r, widths))  # noqa: E731
    head = (
        f"{entry.id}: {'quick' if prov.quick else 'full'} budget, seeds {prov.seeds}, "
        f"{prov.device} ({prov.device_name}), {prov.wall_time_s:.1f} s"
    )
    out = [head, line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])]
    try:
        shown = dest.resolve().relative_to(repo_root())
    except ValueError:
        shown = dest
    out.append(f"results: {shown}/")
    return "\n".join(out)


# ----------------------------------------------------------------------------- multirun
def _multirun(entries: list[Entry], overrides: list[str], quick: bool, device: str, out: str | None) -> int:
    """Hand the sweep to Hydra: its launcher (basic, joblib, submitit) runs one job per config."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    _register(entries, quick)
    user = [o for o in overrides if not o.startswith(("hydra.", "hydra/", "entry="))]
    ids = ",".join(e.id for e in entries)

    def job(cfg: DictConfig) -> None:
        eid = HydraConfig.get().runtime.choices["entry"]
        entry = get(eid)
        job_over = [o for o in HydraConfig.get().overrides.task if not o.startswith("entry=")]
        c = OmegaConf.to_container(cfg, resolve=True)
        if out:
            dest = Path(out) / eid / str(HydraConfig.get().job.num)
        elif job_over:
            dest = Path(HydraConfig.get().runtime.output_dir) / "results"
        else:
            dest = destination(entry, quick, [], None)
        res = run_entry(entry, c, quick=quick, overrides=job_over, dest=dest, device=device, progress=False)
        print(verdict_table(entry, res["verdicts"], res["provenance"], dest), flush=True)

    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    argv = [
        "zoo.reproduce",
        "--multirun",
        f"entry={ids}",
        *user,
        *[o for o in overrides if o.startswith(("hydra.", "hydra/"))],
        f"hydra.sweep.dir={repo_root() / 'runs' / 'multirun' / stamp}",
        "hydra.job.chdir=False",
    ]
    old = sys.argv
    sys.argv = argv
    try:
        hydra.main(version_base=None, config_path=None, config_name="zoo_reproduce")(job)()
    finally:
        sys.argv = old
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
        description="Run a paper's scaled-down reproduction and record metrics, verdicts, provenance and a plot.",
        epilog="Hydra overrides follow the id: `epochs=5 seeds=[0,1]`; sweep with -m: `-m seeds=[0],[1] hydra/launcher=joblib`.",
    )
    ap.add_argument("id", nargs="?", help="catalogue id, e.g. pdp_pruning")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides key=value")
    ap.add_argument("--quick", action="store_true", help="the spec's quick budget (seconds on a CPU); never recorded")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1")
    ap.add_argument("--list", action="store_true", help="list reproducible entries")
    ap.add_argument("--all", action="store_true", help="run every reproducible entry (a Hydra multirun)")
    ap.add_argument("-m", "--multirun", action="store_true", help="Hydra multirun: sweep overrides with a launcher")
    ap.add_argument("--out", default=None, help="write results here instead of the default place")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the models are tiny)")
    args = ap.parse_intermixed_args(argv)  # flags may come after overrides
    # argparse takes "key=value" words as overrides only after the id; with --all there is no id.
    overrides = list(args.overrides)
    if args.all and args.id:
        overrides.insert(0, args.id)
        args.id = None
    try:
        if args.list:
            return _list()
        if args.all:
            entries = [e for e in load_all().values() if e.spec.reproduction is not None]
            return _multirun(entries, overrides, args.quick, args.device, args.out)
        if not args.id:
            ap.error("give a catalogue id (see --list), or --all")
        entry = get(args.id)
        if entry.spec.reproduction is None:
            raise SpecError(entry.file.name, "reproduction", f"{entry.id!r} is catalogued but has no reproduction yet")
        if args.multirun:
            return _multirun([entry], overrides, args.quick, args.device, args.out)
        cfg = compose_config(entry, overrides, args.quick)
        resolve_device(args.device)
        dest = destination(entry, args.quick, overrides, args.out)
        res = run_entry(entry, cfg, quick=args.quick, overrides=overrides, dest=dest, device=args.device,
                        progress=not args.no_progress, threads=args.threads)
    except (SpecError, OverrideError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(verdict_table(entry, res["verdicts"], res["provenance"], dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
