"""The diffusion families' pictures: samples per method and strength, and a fidelity-diversity plot.

Entries built on the diffusion harness (:mod:`zoo.experiments._diffbench`) record, per job, the
fixed classifier's ``class_acc``, the per-class spread ``diversity`` and the Frechet proxy ``fd``
of their samples, and in seed 0's job a few samples per class (series ``samples`` and
``sample_labels``, from :func:`~zoo.experiments._diffbench.sample_series`). This module reads them
from ``jobs.json`` without importing torch:

* :func:`sample_sets`: every recorded arm's samples, with their dimension (64: an 8x8 digit; 2: a
  point of the mixture);
* :func:`samples_png`: one entry's samples, a panel per arm: digit images (a row per class) or a
  scatter coloured by class;
* :func:`fidelity_points` / :func:`fidelity_png`: every arm's mean class accuracy against its mean
  diversity and Frechet proxy, per domain (``digits``, ``gmm``), coloured by entry;
* :func:`diffusion_section`: the family page's plots and table.

A point's domain is read from its samples' dimension, else from its arm's name (``digits...``,
``gmm...``). Points of different entries can come from different models (the shared denoisers of
``reproductions/_baselines/diffusion/`` or an entry's own): the table says which.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

from zoo.catalogue import Entry

__all__ = ["FAMILIES", "diffusion_section", "fidelity_path", "fidelity_png", "fidelity_points", "sample_sets",
           "samples_path", "samples_png"]

FAMILIES = ("guidance", "generative", "unlearning", "self_supervised")
"""Families whose pages carry the pictures (an entry takes part only if its jobs record samples or the metrics)."""

MAX_PANELS = 12
DOMAINS = {64: "digits", 2: "gmm"}


def fidelity_path(family: str) -> str:
    return f"assets/plots/family-{family}-fidelity.png"


def samples_path(entry_id: str) -> str:
    return f"assets/plots/samples-{entry_id}.png"


def _jobs(e: Entry) -> list[dict[str, Any]]:
    f = e.results_dir / "jobs.json"
    if e.spec.reproduction is None or not f.is_file():
        return []
    try:
        jobs = json.loads(f.read_text())
    except (OSError, ValueError):
        return []
    return [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []


def sample_sets(e: Entry) -> dict[str, tuple[int, list[float], list[int]]]:
    """Arm -> (dimension, flat samples, labels) of the lowest seed that recorded samples."""
    out: dict[str, tuple[int, list[float], list[int]]] = {}
    for j in sorted(_jobs(e), key=lambda j: j.get("seed", 0)):
        s = j.get("series") or {}
        xs, ys = s.get("samples"), s.get("sample_labels")
        arm = str(j.get("arm"))
        if not xs or not ys or arm in out or len(xs) % len(ys):
            continue
        out[arm] = (len(xs) // len(ys), [float(v) for v in xs], [int(v) for v in ys])
    return out


def _domain(arm: str, dims: dict[str, int]) -> str | None:
    if arm in dims:
        return DOMAINS.get(dims[arm])
    for d in ("digits", "gmm"):
        if arm.startswith(d) or f"_{d}" in arm:
            return d
    return None


def _shared(e: Entry) -> bool:
    r = e.spec.reproduction
    return r is not None and "shared_denoiser" in json.dumps(r.config)


def fidelity_points(entries: list[Entry]) -> dict[str, list[tuple[str, str, float, float, float, int]]]:
    """Domain -> (entry id, arm, mean class_acc, mean diversity, mean fd, seeds) of every sampling arm."""
    out: dict[str, list[tuple[str, str, float, float, float, int]]] = {}
    for e in sorted(entries, key=lambda x: x.id):
        dims = {a: d for a, (d, _, _) in sample_sets(e).items()}
        per: dict[str, list[dict[str, float]]] = {}
        for j in _jobs(e):
            m = j.get("metrics")
            if isinstance(m, dict) and all(k in m for k in ("class_acc", "diversity", "fd")):
                per.setdefault(str(j.get("arm")), []).append(m)
        for arm, rows in per.items():
            dom = _domain(arm, dims)
            vals = [[float(x[k]) for x in rows] for k in ("class_acc", "diversity", "fd")]
            if dom is None or not all(math.isfinite(v) for col in vals for v in col):
                continue
            acc, div, fd = (sum(c) / len(c) for c in vals)
            out.setdefault(dom, []).append((e.id, arm, acc, div, fd, len(rows)))
    return out


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def samples_png(e: Entry) -> bytes | None:
    """One entry's recorded samples, a panel per arm (at most :data:`MAX_PANELS`), None when it has none."""
    sets = sample_sets(e)
    if not sets:
        return None
    plt = _plt()
    arms = list(sets)[:MAX_PANELS]
    cols = min(4, len(arms))
    rows = math.ceil(len(arms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, arm in zip(axes.flat, arms):
        dim, xs, ys = sets[arm]
        ax.set_title(arm, fontsize=8)
        if dim == 2:
            ax.axis("on")
            px, py = xs[0::2], xs[1::2]
            ax.scatter(px, py, c=[plt.get_cmap("tab10")(y % 10) for y in ys], s=4, alpha=0.7)
            ax.set_aspect("equal", adjustable="datalim")
            ax.tick_params(labelsize=6)
        elif dim == 64:
            classes = sorted(set(ys))
            by = {k: [i for i, y in enumerate(ys) if y == k] for k in classes}
            width = max(len(v) for v in by.values())
            grid = [[0.0] * (9 * width) for _ in range(9 * len(classes))]
            for r, k in enumerate(classes):
                for c, i in enumerate(by[k]):
                    for p in range(64):
                        grid[9 * r + p // 8][9 * c + p % 8] = xs[64 * i + p]
            ax.imshow(grid, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.suptitle(f"{e.id}: samples (seed 0)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def fidelity_png(entries: list[Entry]) -> bytes | None:
    """Class accuracy against diversity and against the Frechet proxy, a row per domain."""
    data = fidelity_points(entries)
    if not data:
        return None
    plt = _plt()
    doms = sorted(data)
    fig, axes = plt.subplots(len(doms), 2, figsize=(11.0, 4.0 * len(doms)), squeeze=False)
    ids = sorted({p[0] for pts in data.values() for p in pts})
    colour = {eid: plt.get_cmap("tab20")(i % 20) for i, eid in enumerate(ids)}
    for row, dom in enumerate(doms):
        for col, (k, xlabel) in enumerate(((3, "diversity (per-class spread / real)"),
                                           (4, "Frechet proxy (per-class FD / real variance)"))):
            ax = axes[row][col]
            for eid in ids:
                mine = [p for p in data[dom] if p[0] == eid and not p[1].endswith("real")]
                if mine:
                    ax.scatter([p[k] for p in mine], [p[2] for p in mine], s=20, color=colour[eid], label=eid)
            real = [p for p in data[dom] if p[1].endswith("real")]
            if real:  # the real data scored like samples: where a perfect sampler would sit
                ax.scatter([p[k] for p in real], [p[2] for p in real], s=90, marker="*", color="black",
                           label="real data")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("fixed-classifier accuracy (%)")
            ax.set_title(dom)
            ax.grid(alpha=0.3)
        axes[row][1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def diffusion_section(path: str, entries: list[Entry], family: str) -> list[str]:
    """The family page's fidelity-diversity plot and table and each entry's samples (nothing without records)."""
    from zoo.docs import _code, _paper_link, _rel_link, md_text

    data = fidelity_points(entries)
    with_samples = [e for e in sorted(entries, key=lambda x: x.id) if sample_sets(e)]
    if not data and not with_samples:
        return []
    lines: list[str] = []
    if data:
        lines += [
            "",
            "## Fidelity against diversity",
            "",
            "Every sampling arm of the family's entries, scored by the same fixed classifier "
            "(`zoo.experiments._diffbench.Scorer`): class accuracy of the samples against their per-class "
            "spread (1 = as diverse as the real data) and against the per-class Frechet proxy (lower is "
            "closer to the real class). Points are means over seeds. Arms of entries marked *shared* sample "
            "the shared denoisers recorded once per seed (`python -m zoo.baselines diffusion`), so their "
            "points are directly comparable; the others train their own models.",
            "",
            f"![Fidelity against diversity]({_rel_link(path, fidelity_path(family))}){{ .zoo-plot }}",
            "",
        ]
        for dom in sorted(data):
            lines += [f"### {md_text(dom)}", "", "| Entry | Arm | class acc (%) | diversity | FD proxy | seeds | model |",
                      "|---|---|---|---|---|---|---|"]
            for eid, arm, acc, div, fd, n in sorted(data[dom], key=lambda p: (p[0], p[1])):
                e = next(x for x in entries if x.id == eid)
                lines.append(f"| {_paper_link(path, e)} | {_code(arm)} | {acc:.1f} | {div:.3f} | {fd:.3f} | {n} | "
                             f"{'shared' if _shared(e) else 'own'} |")
            lines.append("")
    if with_samples:
        lines += ["", "## Samples", "",
                  "Seed 0's samples of each arm: digits as images (a row per class), mixtures as scatter plots "
                  "coloured by class.", ""]
        for e in with_samples:
            lines += [f"### {_paper_link(path, e)}", "",
                      f"![Samples of {md_text(e.id)}]({_rel_link(path, samples_path(e.id))}){{ .zoo-plot }}", ""]
    return lines
