"""The classification families' comparison on their family pages: every method on the shared settings.

Entries built on the family's harness (:mod:`zoo.experiments._classbench`) record, for every arm
and setting, ``test_acc``, ``test_ece`` and ``test_nll`` (``<setting>_test_acc`` ... with
settings), and their ``jobs.json`` keeps each job's test reliability diagram (``rel_acc``,
``rel_count`` per confidence bin). This module gathers them, without importing torch:

* :func:`comparison_rows`: per *setting* -- a description of the data the arms saw (dataset, label
  noise, imbalance, labels per class, one-vs-rest) -- every recorded arm with its per-seed values;
* :func:`comparison_section`: the family page's tables (mean and 95% Student-t interval);
* :func:`reliability_png`: one reliability-diagram panel per shared setting, each arm's bins
  pooled over seeds.

Rows of one setting come from different entries, which may differ in model, epochs and seeds:
compare within an entry for a claim, across entries for orientation (the page says so).
"""

from __future__ import annotations

import io
import json
from typing import Any

from zoo.catalogue import Entry

__all__ = ["FAMILIES", "setting_label", "comparison_rows", "comparison_section", "reliability_png", "reliability_path"]

FAMILIES = ("loss", "noisy_labels", "distillation", "regularizer", "architecture")
"""Families whose pages carry the comparison (an entry takes part only if it records classbench metrics)."""

_METRICS = (("test_acc", "test accuracy (%)"), ("test_ece", "test ECE (points)"), ("test_nll", "test NLL (nats)"))
_RELIABILITY_BINS = 15


def reliability_path(family: str) -> str:
    return f"assets/plots/family-{family}-reliability.png"


def _settings(cfg: dict[str, Any]) -> list[str | None]:
    s = cfg.get("settings")
    return list(s) if s else [None]


def _setting_cfg(cfg: dict[str, Any], setting: str | None) -> dict[str, Any]:
    out = {k: v for k, v in cfg.items() if k != "settings"}
    if setting is not None:
        out.update(cfg["settings"][setting] or {})
    return out


def setting_label(cfg: dict[str, Any]) -> str:
    """What the arms of a setting saw, in words: ``digits · symmetric noise 40%``."""
    d = cfg.get("dataset", "?")
    if isinstance(d, dict):
        name = str(d.get("name"))
        parts = [f"{name} ({d['classes']} classes)" if "classes" in d else name]
    else:
        parts = [str(d)]
    if cfg.get("binary"):
        b = cfg["binary"]
        pf = b.get("pos_fraction")
        parts.append(f"class {'+'.join(str(c) for c in b['positive'])} vs rest"
                     + (f", {100 * float(pf):g}% positive" if pf is not None else ""))
    if cfg.get("imbalance"):
        parts.append(f"long-tail imbalance {float(cfg['imbalance']['ratio']):g}:1")
    noise = cfg.get("noise") or {}
    if noise and float(noise.get("rate", 0)) > 0:
        parts.append(f"{noise['kind']} noise {100 * float(noise['rate']):g}%")
    if cfg.get("labels_per_class"):
        parts.append(f"{int(cfg['labels_per_class'])} labels per class")
    return " · ".join(parts)


Row = tuple[Entry, str, str | None, dict[str, list[float]]]


def comparison_rows(entries: list[Entry]) -> dict[str, list[Row]]:
    """``{setting label: [(entry, arm, setting name, {metric: per-seed values})]}`` from the records."""
    from zoo.docs import read_recorded

    out: dict[str, list[Row]] = {}
    for e in sorted(entries, key=lambda e: e.id):
        r = e.spec.reproduction
        if r is None or "dataset" not in r.config and not r.config.get("settings"):
            continue
        rec = read_recorded(e)
        if rec.metrics is None:
            continue
        for s in _settings(r.config):
            label = setting_label(_setting_cfg(r.config, s))
            prefix = "" if s is None else f"{s}_"
            for arm, ms in rec.metrics.arms.items():
                vals = {m: list(ms[prefix + m]) for m, _ in _METRICS if prefix + m in ms}
                if "test_acc" in vals and "test_ece" in vals:
                    out.setdefault(label, []).append((e, arm, s, vals))
    return dict(sorted(out.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def comparison_section(path: str, entries: list[Entry], family: str) -> list[str]:
    """The family page's tables and reliability plot (nothing when no entry records classbench metrics)."""
    from zoo.docs import _code, _interval, _paper_link, _rel_link, md_text

    rows = comparison_rows(entries)
    if not rows:
        return []
    lines = [
        "",
        "## Every method on the shared settings",
        "",
        "The family's entries run their arms on one classification harness (`zoo.experiments._classbench`): "
        "the same datasets, splits, label-noise injector and metrics, arms of an entry trained from the same "
        "initial weights and batch orders. The tables gather the recorded results by the data the arms saw. "
        "Values are means over seeds with a 95% Student-t interval; ECE is in percentage points (15 "
        "equal-width confidence bins). Rows of one setting may come from different entries, which can "
        "differ in model, epochs and seeds (see each entry's page): compare within an entry for a claim, "
        "across entries for orientation.",
        "",
    ]
    if reliability_png(entries) is not None:
        lines += [f"![Reliability diagrams of every method on the shared settings]"
                  f"({_rel_link(path, reliability_path(family))}){{ .zoo-plot }}", ""]
    for label, items in rows.items():
        items = sorted(items, key=lambda it: -sum(it[3]["test_acc"]) / len(it[3]["test_acc"]))
        lines += [f"### {md_text(label)}", "",
                  "| Entry | Arm | " + " | ".join(t for _, t in _METRICS) + " | seeds |",
                  "|---|---|" + "---|" * len(_METRICS) + "---|"]
        for e, arm, _s, vals in items:
            cells = [_interval(vals[m]) if m in vals else "–" for m, _ in _METRICS]
            lines.append(f"| {_paper_link(path, e)} | {_code(arm)} | " + " | ".join(cells)
                         + f" | {len(vals['test_acc'])} |")
        lines.append("")
    return lines


def _pooled_reliability(e: Entry, arm: str, setting: str | None) -> list[float] | None:
    f = e.results_dir / "jobs.json"
    if not f.is_file():
        return None
    try:
        jobs = json.loads(f.read_text())
    except ValueError:
        return None
    job_arm = arm if setting is None else f"{arm}__{setting}"
    acc = [0.0] * _RELIABILITY_BINS
    cnt = [0.0] * _RELIABILITY_BINS
    found = False
    for j in jobs:
        series = j.get("series", {})
        if j.get("arm") != job_arm or "rel_acc" not in series:
            continue
        found = True
        for b, (a, c) in enumerate(zip(series["rel_acc"], series["rel_count"])):
            if c > 0:
                acc[b] += a * c
                cnt[b] += c
    if not found:
        return None
    return [a / c if c > 0 else float("nan") for a, c in zip(acc, cnt)]


def reliability_png(entries: list[Entry], max_panels: int = 6) -> bytes | None:
    """One panel per shared setting (the most populated first): accuracy against confidence per arm."""
    rows = comparison_rows(entries)
    panels = []
    for label, items in list(rows.items())[:max_panels]:
        lines = [(f"{e.id}: {arm}", p) for e, arm, s, _ in items if (p := _pooled_reliability(e, arm, s)) is not None]
        if lines:
            panels.append((label, lines))
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(panels), 3)
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.0 * cols, 4.2 * nrows), squeeze=False)
    centers = [(b + 0.5) / _RELIABILITY_BINS for b in range(_RELIABILITY_BINS)]
    for ax, (label, lines) in zip(axes.flat, panels):
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
        for name, ys in lines:
            ax.plot(centers, ys, "o-", lw=1.2, ms=3, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("confidence (bin centre)")
        ax.set_ylabel("accuracy in bin")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("Test reliability diagrams, seeds pooled", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
