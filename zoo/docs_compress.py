"""The compression families' accuracy-vs-size comparison on their family pages.

Entries built on the compression harness (:mod:`zoo.experiments._compressbench`) record, per job,
the exported model's ``test_acc``, ``bytes`` (serialized file), ``payload_bytes`` and
``latency_ms`` in ``jobs.json``. This module gathers them without importing torch:

* :func:`pareto_points`: per dataset (models of every size share it: the front runs across them), every
  recorded arm of every entry with its mean test accuracy, bytes and latency over seeds;
* :func:`pareto_png`: one row per dataset, accuracy against stored bytes (log scale) and against
  CPU latency, the non-dominated arms joined by a line (the Pareto front);
* :func:`compress_section`: the family page's plot and table.

Points of one dataset come from different entries, which may differ in epochs and seeds: compare
within an entry for a claim, across entries for orientation (the page says so).
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

from zoo.catalogue import Entry

__all__ = ["FAMILIES", "Point", "dataset_label", "pareto_points", "pareto_front", "pareto_png", "pareto_path",
           "compress_section"]

FAMILIES = ("pruning", "quantization", "nas", "architecture")
"""Families whose pages carry the comparison (an entry takes part only if its jobs record exported sizes)."""

Point = tuple[str, str, float, float, float, int]
"""(entry id, arm, mean test accuracy %, mean bytes, mean latency ms, seeds)."""


def pareto_path(family: str) -> str:
    return f"assets/plots/family-{family}-pareto.png"


def dataset_label(cfg: dict[str, Any]) -> str:
    """The data a setting's arms saw (its dataset, or its workload's): models of every size share its plot."""
    d = cfg.get("dataset") or str(cfg.get("workload", "?")).rpartition("_")[2]
    return str(d.get("name", "?")) if isinstance(d, dict) else str(d)


def _job_setting(cfg: dict[str, Any], job_arm: str) -> tuple[str, dict[str, Any]]:
    settings = cfg.get("settings") or {}
    arm, _, setting = job_arm.partition("__")
    scfg = {k: v for k, v in cfg.items() if k != "settings"}
    if setting and setting in settings:
        scfg.update(settings[setting] or {})
        return f"{arm} [{setting}]", scfg
    return job_arm, scfg


def pareto_points(entries: list[Entry]) -> dict[str, list[Point]]:
    """Dataset -> every recorded arm's mean exported accuracy, bytes and latency."""
    out: dict[str, list[Point]] = {}
    for e in sorted(entries, key=lambda x: x.id):
        r = e.spec.reproduction
        f = e.results_dir / "jobs.json"
        if r is None or not f.is_file():
            continue
        try:
            jobs = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(jobs, list):
            continue
        per: dict[str, list[dict[str, float]]] = {}
        for j in jobs:
            m = j.get("metrics") if isinstance(j, dict) else None
            if isinstance(m, dict) and all(k in m for k in ("test_acc", "bytes", "latency_ms")):
                per.setdefault(str(j.get("arm")), []).append(m)
        cfg = dict(r.config)
        for job_arm, rows in per.items():
            arm, scfg = _job_setting(cfg, job_arm)
            vals = [[float(x[k]) for x in rows] for k in ("test_acc", "bytes", "latency_ms")]
            if not all(math.isfinite(v) for col in vals for v in col):
                continue
            acc, size, lat = (sum(c) / len(c) for c in vals)
            out.setdefault(dataset_label(scfg), []).append((e.id, arm, acc, size, lat, len(rows)))
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, accuracy) points no other point beats in both (lower cost, higher accuracy), by cost."""
    front: list[tuple[float, float]] = []
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or a > front[-1][1]:
            front.append((c, a))
    return front


def pareto_png(entries: list[Entry]) -> bytes | None:
    """Accuracy vs bytes and vs latency, one row per dataset (None when no entry records sizes)."""
    data = pareto_points(entries)
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(data)
    fig, axes = plt.subplots(len(labels), 2, figsize=(11.0, 4.0 * len(labels)), squeeze=False)
    ids = sorted({p[0] for pts in data.values() for p in pts})
    colour = {eid: plt.get_cmap("tab20")(i % 20) for i, eid in enumerate(ids)}
    for row, label in enumerate(labels):
        pts = data[label]
        for col, (k, xlabel) in enumerate(((3, "stored size (bytes, log scale)"), (4, "CPU latency (ms, log scale)"))):
            ax = axes[row][col]
            for eid in ids:
                mine = [p for p in pts if p[0] == eid]
                if mine:
                    ax.scatter([p[k] for p in mine], [p[2] for p in mine], s=22, color=colour[eid], label=eid)
            front = pareto_front([(p[k], p[2]) for p in pts])
            ax.plot([c for c, _ in front], [a for _, a in front], color="black", lw=1, ls="--", label="Pareto front")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(label)
            ax.grid(alpha=0.3)
        axes[row][1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def compress_section(path: str, entries: list[Entry], family: str) -> list[str]:
    """The family page's Pareto plot and table (nothing when no entry records exported sizes)."""
    from zoo.docs import _code, _paper_link, _rel_link, md_text

    data = pareto_points(entries)
    if not data:
        return []
    lines = [
        "",
        "## Accuracy against size and latency of the exported models",
        "",
        "The family's entries run their arms on one compression harness (`zoo.experiments._compressbench`): "
        "every accuracy, size and latency is the exported model's (masks folded, dead units removed, "
        "sparse layers in CSR, quantised weights as packed integers). Points are means over seeds; the "
        "dashed line joins the arms no other arm beats in both accuracy and cost. Latency is a median on "
        "one CPU thread of a shared 2-core machine, and noisier than bytes. Points of one dataset may "
        "come from entries that differ in epochs and seeds: compare within an entry for a claim, across "
        "entries for orientation.",
        "",
        f"![Accuracy against stored bytes and CPU latency]({_rel_link(path, pareto_path(family))}){{ .zoo-plot }}",
        "",
    ]
    for label in sorted(data):
        pts = sorted(data[label], key=lambda p: p[3])
        lines += [f"### {md_text(label)}", "", "| Entry | Arm | test accuracy (%) | bytes | latency (ms) | seeds |",
                  "|---|---|---|---|---|---|"]
        for eid, arm, acc, size, lat, n in pts:
            e = next(x for x in entries if x.id == eid)
            lines.append(f"| {_paper_link(path, e)} | {_code(arm)} | {acc:.2f} | {size:,.0f} | {lat:.2f} | {n} |")
        lines.append("")
    return lines
