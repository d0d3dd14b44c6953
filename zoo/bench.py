"""Micro-benchmarks of the zoo's building blocks.

``python -m zoo.bench optim [--params N] [--device D] [--out FILE]`` times one ``step()`` of
every zoo optimizer, of its authors' reference package (when installed) and of torch's AdamW
(``foreach`` and ``fused``) on the same parameter set: the tensor shapes of a GPT-style
transformer with about N parameters (default ~300M on CUDA, ~20M on CPU), fp32, random
gradients. Each optimizer is reported as ms/step and as a multiple of its memory-traffic
roofline: the bytes a single fused pass must move per step (read parameters, gradients and
state, write parameters and state) divided by the copy bandwidth measured in the same run.

``python -m zoo.bench startup [--runs N] [--out FILE]`` times the whole process (wall clock,
interpreter start included) of ``python -m zoo.catalogue`` and ``python -m zoo.status``, N times
each in fresh subprocesses, next to a bare ``python -c pass``, and reports the medians against
the start-up budget (0.4 s each). It imports no torch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.reproduce import package_versions

if TYPE_CHECKING:  # torch is imported where the optimizer benchmark runs: `startup` must not pay for it
    import torch

__all__ = ["bench_optim", "bench_startup", "copy_bandwidth", "gpt_shapes", "main", "startup_times", "step_times"]


def gpt_shapes(n_params: float) -> list[tuple[int, ...]]:
    """Parameter shapes of a GPT-2-style model (tied embeddings) with about ``n_params`` weights.

    Width ``d`` is the largest power of two that still leaves at least 4 blocks (vocabulary
    ``32 d``, context ``min(1024, 8 d)``): ~20M gives d=512 with 4 blocks, ~300M d=1024 with 21.
    """
    for d in (4096, 2048, 1024, 512, 256, 128, 64):
        vocab, ctx = 32 * d, min(1024, 8 * d)
        layers = round((n_params - (vocab + ctx + 2) * d) / (12 * d * d + 13 * d))
        if layers >= 4 or d == 64:
            break
    block = [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return [(vocab, d), (ctx, d), *block * max(1, layers), (d,), (d,)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def step_times(step: Callable[[], object], device: torch.device, warmup: int = 1, iters: int = 3) -> list[float]:
    """Wall time of each of ``iters`` calls of ``step()`` in ms, after ``warmup`` calls; syncs CUDA."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(1e3 * (time.perf_counter() - t0))
    return times


def copy_bandwidth(n_elements: int, device: torch.device, dtype: torch.dtype | None = None) -> float:
    """Peak bytes per second of ``dst.copy_(src)`` (counting one read and one write per element).

    The best of several copies: a roofline is the attainable peak, and on a shared machine the
    median mostly measures the neighbours. A copy also pays write-allocate reads of ``dst`` that
    this count ignores, so a kernel with fewer stores per load can beat the "roofline" (ratio < 1).
    ``dtype`` defaults to float32.
    """
    import torch

    src = torch.rand(n_elements, device=device, dtype=dtype or torch.float32)
    dst = torch.empty_like(src)
    ms = min(step_times(lambda: dst.copy_(src), device, warmup=2, iters=9))
    return 2 * src.numel() * src.element_size() / (ms / 1e3)


@dataclass
class Row:
    name: str
    ms_per_step: float  # best step over all rounds
    median_ms: float
    bytes_per_step: int | None  # None where no roofline is modelled (registry-only candidates)
    roofline_ms: float | None
    ratio_to_roofline: float | None
    reference: str | None = None
    speedup_vs_reference: float | None = None
    ratio_to_fused_adamw: float | None = None  # ms per step over torch's fused AdamW on the same parameters


# name -> (import path "module:Class", constructor kwargs, arrays a fused pass reads + writes per
# parameter, the reference it is compared with, whether step() takes a closure). The registry
# (zoo.optim.registry) adds every other zoo optimizer and its reference, without a roofline.
CANDIDATES: dict[str, tuple[str, dict, int | None, str | None, bool]] = {
    "zoo.DAdaptAdam": ("zoo.optim.d_adaptation:DAdaptAdam", {}, 9, "dadaptation.DAdaptAdam", False),
    "dadaptation.DAdaptAdam": ("dadaptation:DAdaptAdam", {}, 9, None, False),
    "zoo.DAdaptSGD": ("zoo.optim.d_adaptation:DAdaptSGD", {"momentum": 0.9}, 6, "dadaptation.DAdaptSGD", False),
    "dadaptation.DAdaptSGD": ("dadaptation:DAdaptSGD", {"momentum": 0.9}, 6, None, False),
    "zoo.DAdaptAdaGrad": ("zoo.optim.d_adaptation:DAdaptAdaGrad", {}, 8, "dadaptation.DAdaptAdaGrad", False),
    "dadaptation.DAdaptAdaGrad": ("dadaptation:DAdaptAdaGrad", {}, 8, None, False),
    "torch.AdamW(foreach)": ("torch.optim:AdamW", {"lr": 1e-3, "foreach": True}, 7, None, False),
    "torch.AdamW(fused)": ("torch.optim:AdamW", {"lr": 1e-3, "fused": True}, 7, None, False),
}
REFERENCE_PACKAGES = ("dadaptation", "schedulefree", "dog-optimizer", "momo-opt", "pytorch-optimizer", "prodigyopt")
# Reference constructors that take more than the zoo class's test settings.
REFERENCE_EXTRA_KWARGS: dict[str, dict[str, str]] = {
    "pytorch_optimizer:SAM": {"base_optimizer": "torch.optim:SGD"},  # a class, given as `module:Class`
}


def all_candidates() -> dict[str, tuple[str, dict, int | None, str | None, bool]]:
    """:data:`CANDIDATES` plus every registered zoo optimizer and its reference package."""
    from zoo.optim.registry import list_optimizers

    out = dict(CANDIDATES)
    for info in list_optimizers():
        path = f"{info.cls.__module__}:{info.cls.__name__}"
        if any(c[0] == path for c in out.values()):
            continue
        ref_name = info.reference.replace(":", ".") if info.reference else None
        out[f"zoo.{info.cls.__name__}"] = (path, dict(info.test_kwargs), None, ref_name, info.needs_closure)
        if info.reference and ref_name not in out:
            extra = {k: _load(v) for k, v in REFERENCE_EXTRA_KWARGS.get(info.reference, {}).items()}
            out[ref_name] = (info.reference, {**info.test_kwargs, **extra}, None, None, info.needs_closure)
    return out


# Reads p, g, m, v, s and writes p, m, v, s (Adam); p, g, s, x0 / p, s (SGD); p, g, a, s, x0 /
# p, a, s (AdaGrad); p, g, m, v / p, m, v (AdamW).


def _load(path: str) -> type | None:
    module, name = path.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


def _sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant figures."""
    return float(f"{x:.{digits}g}")


def bench_optim(
    n_params: int, device: torch.device, iters: int = 3, rounds: int = 2, log: Callable[[str], None] = print,
    only: str = "*",
) -> dict:
    """Time every candidate on one parameter set; returns the JSON-ready record."""
    import torch

    from zoo.reproduce import device_name

    shapes = gpt_shapes(n_params)
    gen = torch.Generator(device=device).manual_seed(0)
    params = [torch.nn.Parameter(0.02 * torch.randn(s, device=device, generator=gen)) for s in shapes]
    for p in params:
        p.grad = 1e-3 * torch.randn(p.shape, device=device, generator=gen)
    n = sum(p.numel() for p in params)
    bandwidth = copy_bandwidth(n, device)
    log(
        f"{n / 1e6:.1f}M parameters in {len(params)} tensors on {device_name(str(device))}; "
        f"copy bandwidth {bandwidth / 1e9:.1f} GB/s"
    )
    import fnmatch

    # `only` keeps the matching candidates, plus what they are compared with.
    every = all_candidates()
    keep = {n for n in every if fnmatch.fnmatch(n, only)}
    keep |= {every[n][3] for n in keep if every[n][3]} | {"torch.AdamW(fused)"}
    candidates = {n: c for n, c in every.items() if n in keep}
    # Some candidates move the parameters off their start (Schedule-Free's train/eval swap) or
    # clear the gradients inside step (SAM): every candidate starts from the same copies.
    start = [(p.detach().clone(), p.grad.detach().clone()) for p in params]

    def reset() -> None:
        with torch.no_grad():
            for p, (w, g) in zip(params, start):
                p.copy_(w)
                if p.grad is None:
                    p.grad = g.clone()
                else:
                    p.grad.copy_(g)
    # Round robin: every candidate is timed in each round, so a burst of load from other
    # processes on a shared machine hits all of them rather than one; the best step is reported.
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, (path, kwargs, _, _, closure) in candidates.items():
            cls = _load(path)
            if cls is None or (kwargs.get("fused") and not _fused_ok(device)):
                continue
            reset()
            try:
                opt = cls(params, **kwargs)
            except (TypeError, ValueError) as e:  # a reference whose constructor takes other arguments
                log(f"  {name:<28} cannot be built with {kwargs}: {e}")
                continue
            if callable(getattr(opt, "train", None)):
                opt.train()  # Schedule-Free-style optimizers step only in train mode
            # Methods that read the loss (or re-evaluate it) get a closure; the gradients are the
            # fixed random ones either way, so only the optimizer's own arithmetic is timed.
            def restore_grads() -> torch.Tensor:  # a "backward": the fixed gradients again
                for p, (_, g) in zip(params, start):
                    p.grad = g
                return torch.ones((), device=device)

            step = (lambda opt=opt: opt.step(restore_grads)) if closure else opt.step
            # One warm-up step creates the state.
            times.setdefault(name, []).extend(step_times(step, device, warmup=1, iters=iters))
            del opt  # free its state before the next candidate
    rows: list[Row] = []
    for name, (_, _, arrays, ref, _) in candidates.items():
        if name not in times:
            log(f"  {name:<28} skipped (not installed or not supported here)")
            continue
        ms, med = min(times[name]), statistics.median(times[name])
        if arrays:
            nbytes = arrays * 4 * n
            roof = 1e3 * nbytes / bandwidth
            # Four significant figures: a small roofline rounded to 2 decimals would skew the ratio.
            rows.append(Row(name, _sig(ms), _sig(med), nbytes, _sig(roof), _sig(ms / roof), ref))
            log(f"  {name:<28} {ms:9.1f} ms/step (median {med:7.1f})   roofline {roof:7.1f} ms   x{ms / roof:5.1f}")
        else:
            rows.append(Row(name, _sig(ms), _sig(med), None, None, None, ref))
            log(f"  {name:<28} {ms:9.1f} ms/step (median {med:7.1f})")
    by_name = {r.name: r for r in rows}
    fused = by_name.get("torch.AdamW(fused)") or by_name.get("torch.AdamW(foreach)")
    for r in rows:
        if r.reference in by_name:
            r.speedup_vs_reference = _sig(by_name[r.reference].ms_per_step / r.ms_per_step)
            log(f"  {r.name} is {r.speedup_vs_reference:.2f}x the speed of {r.reference}")
        if fused is not None:
            r.ratio_to_fused_adamw = _sig(r.ms_per_step / fused.ms_per_step)
    return {
        "benchmark": "optim",
        "provenance": {
            "device": str(device),
            "device_name": device_name(str(device)),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            # Other processes share the machine; the 1-minute load average when the run ended.
            "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "packages": package_versions(REFERENCE_PACKAGES),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python -m zoo.bench " + " ".join(sys.argv[1:]),
        },
        "params": n,
        "tensors": len(params),
        "dtype": "float32",
        "steps_timed": {"rounds": rounds, "steps_per_round": iters, "reported": "best step; median also given"},
        "copy_bandwidth_GBps": round(bandwidth / 1e9, 2),
        "results": [asdict(r) for r in rows],
    }


def _fused_ok(device: torch.device) -> bool:
    import torch

    try:
        p = torch.nn.Parameter(torch.zeros(2, device=device))
        p.grad = torch.zeros(2, device=device)
        torch.optim.AdamW([p], fused=True).step()
        return True
    except (RuntimeError, ValueError):
        return False


STARTUP_BUDGET_S = 0.4
# What `startup` times: command -> (python arguments, budget in seconds). The bare interpreter has
# no budget: it is the floor below which no code of ours can go.
STARTUP_COMMANDS: dict[str, tuple[list[str], float | None]] = {
    "python -c pass": (["-c", "pass"], None),
    "python -m zoo.catalogue": (["-m", "zoo.catalogue"], STARTUP_BUDGET_S),
    "python -m zoo.status": (["-m", "zoo.status"], STARTUP_BUDGET_S),
}


@dataclass
class StartupRuns:
    wall_s: list[float]  # the budgeted quantity
    cpu_s: list[float]  # user + system time of the process: less sensitive to other load than wall time


def startup_times(commands: dict[str, list[str]], runs: int) -> dict[str, StartupRuns]:
    """Wall and CPU seconds of each of ``runs`` fresh ``python <args>`` processes per command.

    One untimed run of each first (bytecode caches, page cache), then round robin, so that load
    from other processes on a shared machine hits every command rather than one. A command that
    fails raises RuntimeError with the last line of its stderr: a fast crash is no measurement.
    """
    import resource

    def children_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def once(name: str, args: list[str]) -> tuple[float, float]:
        c0, t0 = children_cpu(), time.perf_counter()
        proc = subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall, cpu = time.perf_counter() - t0, children_cpu() - c0
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            raise RuntimeError(f"`{name}` exited with {proc.returncode}: {last}")
        return wall, cpu

    for name, args in commands.items():
        once(name, args)
    out = {name: StartupRuns([], []) for name in commands}
    for _ in range(runs):
        for name, args in commands.items():
            wall, cpu = once(name, args)
            out[name].wall_s.append(wall)
            out[name].cpu_s.append(cpu)
    return out


def bench_startup(runs: int = 9, log: Callable[[str], None] = print) -> dict:
    """Time the start-up of every command in :data:`STARTUP_COMMANDS`; returns the JSON-ready record."""
    import yaml

    times = startup_times({name: args for name, (args, _) in STARTUP_COMMANDS.items()}, runs)
    rows = []
    for name, r in times.items():
        med, cpu, budget = statistics.median(r.wall_s), statistics.median(r.cpu_s), STARTUP_COMMANDS[name][1]
        if budget is None:
            verdict = "the floor"
        else:
            verdict = f"{'within' if med < budget else 'OVER'} the {budget} s budget"
        log(f"  {name:<26} median {med:6.3f} s   min {min(r.wall_s):6.3f} s   cpu {cpu:6.3f} s   ({verdict})")
        rows.append(
            {
                "command": name,
                "median_s": round(med, 4),
                "min_s": round(min(r.wall_s), 4),
                "median_cpu_s": round(cpu, 4),
                "budget_s": budget,
                "times_s": [round(t, 4) for t in r.wall_s],
            }
        )
    return {
        "benchmark": "startup",
        "provenance": {
            "python": platform.python_version(),
            "executable": sys.executable,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            # Other processes share the machine; the 1-minute load average when the run ended.
            "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            # libyaml's parser is most of the difference between a fast and a slow catalogue.
            "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
            "packages": package_versions(("pydantic", "pydantic_core", "pyyaml")),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python -m zoo.bench " + " ".join(sys.argv[1:]),
        },
        "runs": runs,
        "reported": "median wall time of the whole process; min and median CPU time (user + system) also given",
        "results": rows,
    }


def _write(record: dict, out: Path | None) -> None:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zoo.bench", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    op = sub.add_parser("optim", help="one optimizer step: zoo vs reference packages vs torch AdamW")
    op.add_argument("--params", type=float, default=None, help="parameter count (default 300e6 on CUDA, 20e6 on CPU)")
    op.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    op.add_argument("--iters", type=int, default=3, help="timed steps per optimizer and round")
    op.add_argument("--rounds", type=int, default=2, help="round-robin rounds over all optimizers")
    op.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    op.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    op.add_argument("--only", default="*", help="glob over candidate names, e.g. 'zoo.ScheduleFree*' (and their references)")
    sp = sub.add_parser("startup", help="process start-up of `python -m zoo.catalogue` and `python -m zoo.status`")
    sp.add_argument("--runs", type=int, default=9, help="timed processes per command (the median is reported)")
    sp.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    args = ap.parse_args(argv)
    if args.what == "startup":
        if args.runs < 1:
            ap.error("--runs: must be at least 1")
        try:
            record = bench_startup(args.runs)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        _write(record, args.out)
        return 0
    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    n = int(args.params or (300e6 if device.type == "cuda" else 20e6))
    _write(bench_optim(n, device, iters=args.iters, rounds=args.rounds, only=args.only), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
