"""Tune a family's shared baselines once: ``python -m zoo.baselines optim [--quick] [--record]``.

Runs the family's tuning experiment (:mod:`zoo.experiments._optim_tuning`) on the harness and
writes ``tuned.json`` (the chosen learning rate of every baseline on every workload, the
validation means of its grid, and the run's provenance) and ``jobs.json`` (every tuning job).
Without ``--record`` it writes ``runs/_baselines/<family>/<UTC time>/`` and prints the choice;
``--record`` (a clean checkout, the full budget) swaps the files into
``reproductions/_baselines/<family>/`` atomically and locks the ``baselines_<family>`` stage in
``dvc.lock``. The entries that use the baselines list ``tuned.json`` in their spec's
``reproduction.code`` and so go stale when it changes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zoo.catalogue import repo_root

__all__ = ["FAMILIES", "main", "tune"]

FAMILIES = {
    "optim": "zoo.experiments._optim_tuning",
    "compress": "zoo.experiments._compress_tuning",
    "diffusion": "zoo.experiments._diffusion_models",
}


def tune(family: str, *, quick: bool = False, workers: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Run the tuning of ``family``; returns the ``tuned.json`` content and the job records."""
    from zoo import harness
    from zoo.reproduce import _git, device_name, dirty_files, package_versions

    mod = importlib.import_module(FAMILIES[family])
    cfg = dict(mod.CONFIG)
    if quick:
        cfg.update(mod.QUICK)
    seeds = list(mod.TUNING_SEEDS[:1] if quick else mod.TUNING_SEEDS)
    env = harness.Env(device=device, data_dir=repo_root() / "data", quick=quick)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    n_workers = workers or harness.default_workers(device, 1 << 30)
    result = harness.run(mod.EXPERIMENT, cfg, seeds, env, workers=n_workers, progress=tqdm)
    wall = time.perf_counter() - t0
    from zoo.harness import Table

    table = Table(seeds, result.jobs)
    import torch

    dirty = bool(dirty_files())
    tuned = {
        "family": family,
        "baselines": mod.select(cfg, table),
        "provenance": {
            "commit": _git("rev-parse", "HEAD"), "dirty": dirty, "device": device, "device_name": device_name(device),
            "python": platform.python_version(), "torch": torch.__version__, "packages": package_versions(),
            "seeds": seeds, "quick": quick, "config": cfg, "started": started.isoformat(timespec="seconds"),
            "wall_time_s": round(wall, 2), "host": socket.gethostname(), "workers": n_workers,
            "command": "python -m zoo.baselines " + " ".join(sys.argv[1:]) if sys.argv[1:] else f"python -m zoo.baselines {family}",
        },
    }
    # A family can return files besides its JSON (the diffusion family's trained weights, which
    # travel from the jobs as series and are left out of jobs.json).
    files = mod.artifacts(cfg, result.jobs, env.data_dir) if hasattr(mod, "artifacts") else {}
    strip = set(getattr(mod, "STRIP_SERIES", ()))
    jobs = [{"arm": r.arm, "seed": r.seed, "metrics": r.metrics,
             "series": {k: v for k, v in r.series.items() if k not in strip}} for r in result.jobs]
    return {"tuned": tuned, "jobs": jobs, "files": files, "out_file": getattr(mod, "OUT_FILE", "tuned.json")}


def _write(dest: Path, out: dict[str, Any]) -> None:
    from zoo.results import write_run_dir

    files = {
        **out.get("files", {}),
        out.get("out_file", "tuned.json"): (json.dumps(out["tuned"], indent=1, sort_keys=False) + "\n").encode(),
        "jobs.json": ("[\n" + ",\n".join(json.dumps(j, separators=(",", ":")) for j in out["jobs"]) + "\n]\n").encode(),
    }
    write_run_dir(dest, files)


def family_kind(row: dict[str, Any]) -> str:
    return "denoiser" if "key" in row else "tuned"


def _mean(v: list[float]) -> float:
    return sum(v) / len(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zoo.baselines", description="Tune a family's shared baselines once.")
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("--quick", action="store_true", help="a smoke run: two cheap workloads, one seed")
    ap.add_argument("--record", action="store_true", help="write reproductions/_baselines/FAMILY/ and lock its stage")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    root = repo_root()
    if args.record:
        from zoo.reproduce import dirty_files

        if args.quick:
            print("error: --record runs the full budget; drop --quick", file=sys.stderr)
            return 2
        dirty = dirty_files()
        if dirty:
            print(f"error: --record needs a clean checkout, but git status lists {', '.join(dirty[:4])}; commit them first",
                  file=sys.stderr)
            return 2
    from zoo.data import prepare

    missing = [d for d in ("digits", "mnist1d", "mnist5k") if not (root / "data" / d / "meta.json").is_file()]
    if missing:
        prepare(root / "data", missing)
    out = tune(args.family, quick=args.quick, workers=args.workers)
    if args.record:
        from zoo.pipeline import SHARED_STAGES, write_shared_lock_stage

        _write(root / "reproductions" / "_baselines" / args.family, out)
        write_shared_lock_stage(SHARED_STAGES[f"baselines_{args.family}"])
        dest = root / "reproductions" / "_baselines" / args.family
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        dest = root / "runs" / "_baselines" / args.family / (("quick-" if args.quick else "full-") + stamp)
        _write(dest, out)
    for w, row in out["tuned"]["baselines"].items():
        if family_kind(row) == "denoiser":
            print(f"{w:<14} unguided class acc {_mean(row['unguided_class_acc']):.1f}% vs real "
                  f"{_mean(row['real_test_class_acc']):.1f}% (headroom {_mean(row['headroom']):.1f} points)")
            continue
        picks = ", ".join(f"{b} {v['lr']:g}{' (edge)' if v['at_edge'] else ''}" for b, v in row.items())
        print(f"{w:<14} {picks}")
    print(f"wrote {dest.relative_to(root)} in {out['tuned']['provenance']['wall_time_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
