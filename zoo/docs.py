"""The documentation site's generated pages, built from the specs and the recorded results. No torch.

``docs/gen_pages.py`` (run by the mkdocs ``gen-files`` plugin at build time) writes what
:func:`generate` returns; ``docs/hooks.py`` sets the site's navigation from :func:`nav`. Nothing
here is hand-maintained: every page comes from ``specs/<id>.yaml`` and ``reproductions/<id>/``.

Pages:

* ``catalogue/index.md``: every entry in one filterable table;
* ``catalogue/<family>.md``: one page per family (titles from :data:`zoo.spec.FAMILY_TITLES`);
* ``papers/<id>.md``: one page per paper: its claims at a glance, each claim in full (superseded
  ones struck through), the verdict history from git (:mod:`zoo.history`), plot, provenance,
  usage, API;
* ``status.md``: what ``python -m zoo.status`` reports;
* ``reading-a-verdict.md``: how a verdict is decided (the rules, preconditions, superseded claims,
  current and stale), linked from every claims table;
* ``assets/plots/<id>.png``: each recorded plot, copied from ``reproductions/<id>/plot.png``.

Output is deterministic: entries in id order, nothing depends on the clock, and every text taken
from a spec is escaped, so a title with ``$``, ``|``, ``*`` or ``<`` renders as written.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.catalogue import Entry, load_all, repo_root
from zoo.results import Metrics, Provenance, ResultsError, Verdicts, read_json_model, student_t_quantile
from zoo.spec import FAMILY_TITLES, MIN_SEEDS_STUDENT_T, Claim, Family
from zoo.docs_classification import FAMILIES as CLASSIFICATION_FAMILIES
from zoo.docs_classification import comparison_section, reliability_path, reliability_png
from zoo.docs_compress import FAMILIES as COMPRESS_FAMILIES
from zoo.docs_compress import compress_section, pareto_path, pareto_png
from zoo.docs_diffusion import FAMILIES as DIFFUSION_FAMILIES
from zoo.docs_diffusion import diffusion_section, fidelity_path, fidelity_png, samples_path, samples_png

__all__ = [
    "catalogue_page",
    "family_page",
    "family_path",
    "generate",
    "md_text",
    "md_text_code",
    "nav",
    "paper_page",
    "paper_path",
    "plot_path",
    "reading_page",
    "recorded_versions",
    "status_page",
    "verdict_badge",
]

PAPERS = "papers"
CATALOGUE = "catalogue"
PLOTS = "assets/plots"
READING = "reading-a-verdict.md"

#: Every verdict a claim can have, in the order they are counted and explained.
VERDICTS = ("verified", "refuted", "inconclusive", "untestable")
#: Verdict rule -> its section on the Reading-a-verdict page.
RULE_ANCHORS = {"student_t": "student-t", "interval": "interval", "every_seed": "every-seed"}
SMALL_SCALE = ("yes", "partial", "no")

# Characters that Markdown or the enabled extensions would read as markup, written as numeric
# character references instead (a backslash escape does not work for all of them: `$` and `|`).
_MD_SPECIAL = set("\\`*_[]{}|$#!~^=+:")


_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", **{c: f"&#{ord(c)};" for c in _MD_SPECIAL}}
)


def _esc(s: str) -> str:
    return s.translate(_ESCAPES)


def md_text(s: str) -> str:
    """``s`` as literal Markdown inline text: whitespace collapsed, markup and HTML escaped."""
    return _esc(" ".join(str(s).split()))


def md_text_code(s: str) -> str:
    """Like :func:`md_text`, but text between backticks becomes inline code (for messages)."""
    parts = " ".join(str(s).split()).split("`")
    if len(parts) % 2 == 0:  # unbalanced backticks: all literal
        return md_text(s)
    return "".join(_code(p) if i % 2 else _esc(p) for i, p in enumerate(parts))


def _attr(s: str) -> str:
    return html.escape(str(s), quote=True)


def _code(s: str) -> str:
    """An inline code span holding ``s`` whatever backticks it contains."""
    s = " ".join(str(s).split())
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def _fence(body: str, lang: str = "") -> str:
    ticks = "`" * max(3, max((len(m) + 1 for m in re.findall(r"^`+", body, re.MULTILINE)), default=0))
    return f"{ticks}{lang}\n{body.rstrip()}\n{ticks}\n"


def _front_matter(title: str, description: str | None = None) -> str:
    # Double-quoted YAML, quotes, backslashes and unprintable characters escaped: safe for any title.
    def q(s: str) -> str:
        return (
            '"'
            + "".join(
                c if (c.isprintable() and c not in '"\\') else f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c
                for c in " ".join(s.split())
            )
            + '"'
        )

    lines = ["---", f"title: {q(title)}"]
    if description:
        lines.append(f"description: {q(description)}")
    lines.append("---\n")
    return "\n".join(lines)


def paper_path(entry_id: str) -> str:
    return f"{PAPERS}/{entry_id}.md"


def family_path(family: str) -> str:
    return f"{CATALOGUE}/{family}.md"


def plot_path(entry_id: str) -> str:
    return f"{PLOTS}/{entry_id}.png"


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x:.{digits}g}"


def _fmt_signed(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:+.4g}"


def fmt_interval(mean: float, low: float, high: float) -> str:
    """``+0.48 [+0.21, +0.75]``: mean and interval, to the decimals that give the half-width two digits."""
    h = (high - low) / 2 if all(math.isfinite(x) for x in (low, high)) else math.nan
    digits = min(6, max(0, 1 - math.floor(math.log10(h)))) if math.isfinite(h) and h > 0 else None

    def f(x: float) -> str:
        if math.isnan(x):
            return "nan"
        return f"{x:+.{digits}f}" if digits is not None and math.isfinite(x) else f"{x:+.4g}"

    return f"{f(mean)} [{f(low)}, {f(high)}]"


# ----------------------------------------------------------------------------- verdicts as shown
def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class Shown:
    """One condition's recorded outcome as a page shows it, read leniently from a verdict dict.

    The same shape serves the current ``verdicts.json`` (a validated :class:`zoo.results.ClaimVerdict`,
    dumped) and a version from the git history (a raw dict, possibly of an older schema).
    """

    verdict: str
    condition: str
    rule: str
    n: int
    mean: float
    sem: float
    low: float
    high: float
    per_seed: tuple[float, ...]
    requires: tuple["Shown", ...] = ()
    registered: dict[str, Any] | None = None
    source: str | None = None  # None: the current record; else where in the history it comes from

    @classmethod
    def of(cls, raw: Any, source: str | None = None) -> "Shown":
        d = raw.model_dump(mode="python") if hasattr(raw, "model_dump") else raw if isinstance(raw, dict) else {}
        per_seed = d.get("per_seed") or []
        try:
            n = int(d.get("n", len(per_seed)))
        except (TypeError, ValueError):
            n = len(per_seed)
        reqs = d.get("requires") or []
        return cls(
            verdict=str(d.get("verdict", "unknown")),
            condition=str(d.get("condition", "")),
            rule=str(d.get("rule", "")),
            n=n,
            mean=_num(d.get("mean")),
            sem=_num(d.get("sem")),
            low=_num(d.get("low")),
            high=_num(d.get("high")),
            per_seed=tuple(_num(x) for x in per_seed) if isinstance(per_seed, list) else (),
            requires=tuple(cls.of(q) for q in reqs if isinstance(q, dict) or hasattr(q, "model_dump")),
            registered=d.get("registered") if isinstance(d.get("registered"), dict) else None,
            source=source,
        )

    @property
    def value(self) -> str:
        return fmt_interval(self.mean, self.low, self.high)

    def failed(self) -> list["Shown"]:
        """The preconditions that were not verified (why a verdict is ``untestable``)."""
        return [q for q in self.requires if q.verdict != "verified"]


def _short(commit: str) -> str:
    return commit[:7] if re.fullmatch(r"[0-9a-f]{8,40}", commit) else commit


def recorded_versions(entry_id: str) -> list[Any]:
    """Every recorded version of ``reproductions/<id>/verdicts.json``, oldest first ([] outside git).

    :func:`zoo.history.recorded_versions` on the repository root; its own module, imported on use,
    so a test can stub this function.
    """
    from zoo.history import recorded_versions as versions

    return list(versions(entry_id, repo_root()))


@dataclass(frozen=True)
class History:
    """A paper's verdict history, read once per page (``error``: why it could not be read)."""

    versions: tuple[Any, ...] = ()
    error: str | None = None

    def last(self, claim_id: str) -> Shown | None:
        """The claim's verdict in the newest version that records it."""
        for v in reversed(self.versions):
            raw = (v.verdicts or {}).get(claim_id)
            if raw is not None:
                where = "the uncommitted record" if v.commit == "working tree" else f"commit {_short(v.commit)}"
                return Shown.of(raw, source=f"{where} ({v.date[:10]})" if v.date else where)
        return None


def read_history(entry: Entry) -> History:
    if entry.spec.reproduction is None:
        return History()
    try:
        return History(tuple(recorded_versions(entry.id)))
    except Exception as e:  # noqa: BLE001 (git missing or a broken old record: the page says so, the site builds)
        return History(error=f"{type(e).__name__}: {e}")


# ----------------------------------------------------------------------------- recorded results
@dataclass
class Recorded:
    """What ``reproductions/<id>/`` holds, read leniently: a missing or broken file is a note."""

    metrics: Metrics | None = None
    verdicts: Verdicts | None = None
    provenance: Provenance | None = None
    plot: Path | None = None
    problems: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return any(x is not None for x in (self.metrics, self.verdicts, self.provenance, self.plot))


def read_recorded(entry: Entry) -> Recorded:
    d = entry.results_dir
    if not d.is_dir():
        return Recorded()
    out: dict[str, Any] = {}
    problems = []
    for name, model in (("metrics", Metrics), ("verdicts", Verdicts), ("provenance", Provenance)):
        f = d / f"{name}.json"
        if not f.is_file():
            continue
        try:
            out[name] = read_json_model(f, model)
        except ResultsError as e:
            problems.append(str(e).replace(str(d.parent.parent) + "/", ""))
    plot = d / "plot.png"
    return Recorded(**out, plot=plot if plot.is_file() else None, problems=tuple(problems))


# ----------------------------------------------------------------------------- badges and links
def _badge(kind: str, label: str, extra: str = "", *, classes: str = "", title: str | None = None) -> str:
    cls = f"zoo-badge zoo-badge--{_attr(kind)}" + (f" {classes}" if classes else "")
    tip = f' title="{_esc(" ".join(title.split()))}"' if title else ""
    return f'<span class="{cls}"{tip}>{html.escape(label)}{extra}</span>'


def _verdict_summary(counts: dict[str, int]) -> str:
    keys = [k for k in VERDICTS if k in counts] + sorted(k for k in counts if k not in VERDICTS)
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def _verdict_totals(counts: list[dict[str, int]]) -> str:
    """``**12 recorded verdicts**: 7 verified, 2 refuted, 2 inconclusive, 1 untestable.``, summed over entries."""
    total: dict[str, int] = {}
    for c in counts:
        for k, n in c.items():
            total[k] = total.get(k, 0) + n
    for k in VERDICTS:
        total.setdefault(k, 0)
    n = sum(total.values())
    return f"**{n} recorded verdict{'s' if n != 1 else ''}**: {_verdict_summary(total)}."


def scale_badge(level: str, how: str | None = None) -> str:
    """The small-scale level (yes / partial / no) as a badge; ``how`` becomes its tooltip."""
    return _badge(f"scale-{level}", level, classes="zoo-scale", title=how)


def status_badge(entry: Entry, counts: dict[str, int] | None = None) -> str:
    """The status badge: reproduced (with its verdict counts), implemented or catalogued."""
    status = entry.status
    if status == "reproduced":
        if counts is None:
            try:
                counts = entry.verdict_counts()
            except (OSError, ValueError):  # unreadable verdicts.json: the page says why
                return _badge("reproduced", "reproduced", " · results unreadable")
        return _badge("reproduced", "reproduced", f" · {html.escape(_verdict_summary(counts))}" if counts else "")
    return _badge(status, status)


def verdict_badge(verdict: str, *, compact: bool = False, title: str | None = None, changed: bool = False) -> str:
    classes = "zoo-verdict" + (" zoo-badge--compact" if compact else "") + (" zoo-changed" if changed else "")
    return _badge(verdict, verdict, classes=classes, title=title)


def _rel_link(from_path: str, to_path: str) -> str:
    """A relative Markdown link target from one docs file to another (both docs-relative)."""
    a, b = from_path.split("/")[:-1], to_path.split("/")
    i = 0
    while i < len(a) and i < len(b) - 1 and a[i] == b[i]:
        i += 1
    return "/".join([".."] * (len(a) - i) + b[i:])


def _paper_link(from_path: str, entry: Entry) -> str:
    return f"[{md_text(entry.spec.title)}]({_rel_link(from_path, paper_path(entry.id))})"


def _family_link(from_path: str, family: str) -> str:
    return f"[{md_text(FAMILY_TITLES.get(family, family))}]({_rel_link(from_path, family_path(family))})"


# ----------------------------------------------------------------------------- navigation
def families_present(entries: dict[str, Entry]) -> list[str]:
    """Families with at least one entry, in the order of :data:`zoo.spec.FAMILY_TITLES`."""
    present = {e.spec.family.value for e in entries.values()}
    order = list(FAMILY_TITLES) + sorted(f.value for f in Family if f.value not in FAMILY_TITLES)
    return [f for f in order if f in present]


def nav(entries: dict[str, Entry] | None = None) -> list[Any]:
    """The site navigation (mkdocs ``nav``); paper pages are reached from the catalogue."""
    entries = load_all() if entries is None else entries
    fams = [{FAMILY_TITLES.get(f, f): family_path(f)} for f in families_present(entries)]
    return [
        {"Home": "index.md"},
        {"Catalogue": [f"{CATALOGUE}/index.md", *fams]},
        {"Status": "status.md"},
        {"Reading a verdict": READING},
        {"Reference": "reference.md"},
    ]


# ----------------------------------------------------------------------------- catalogue pages
_FILTER = """\
<div class="zoo-filter" data-search-exclude markdown="0">
<input type="search" id="zoo-filter" placeholder="Filter by title, id, family, kind, status or verdict…" aria-label="Filter the catalogue" autocomplete="off">
<select id="zoo-filter-status" aria-label="Filter by status">
<option value="">any status</option>
<option value="reproduced">reproduced</option>
<option value="implemented">implemented</option>
<option value="catalogued">catalogued</option>
</select>
<select id="zoo-filter-scale" aria-label="Filter by small-scale level">
<option value="">any small scale</option>
<option value="yes">small scale: yes</option>
<option value="partial">small scale: partial</option>
<option value="no">small scale: no</option>
</select>
<span id="zoo-filter-count" class="zoo-filter__count"></span>
</div>
"""


def _entry_row(from_path: str, e: Entry, *, family: bool, summary: bool) -> str:
    s = e.spec
    cells = [f'{_paper_link(from_path, e)} <span class="zoo-id">{md_text(e.id)}</span>']
    if family:
        cells.append(_family_link(from_path, s.family.value))
    cells.append(html.escape(s.kind.value))
    cells.append(status_badge(e))
    cells.append(scale_badge(s.small_scale.level, s.small_scale.how))
    if summary:
        cells.append(md_text(s.summary))
    return "| " + " | ".join(cells) + " |"


def _entry_table(from_path: str, entries: list[Entry], *, family: bool, summary: bool, table_id: str) -> str:
    head = ["Paper", *(["Family"] if family else []), "Kind", "Status", "Small scale"]
    head += ["Summary"] if summary else []
    lines = [
        f'<div class="zoo-catalogue" id="{table_id}" markdown>',
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *(_entry_row(from_path, e, family=family, summary=summary) for e in entries),
        "",
        "</div>",
        "",
    ]
    return "\n".join(lines)


def _counts(entries: list[Entry]) -> dict[str, int]:
    c: dict[str, int] = {}
    for e in entries:
        c[e.status] = c.get(e.status, 0) + 1
    return c


def _counts_line(entries: list[Entry]) -> str:
    c = _counts(entries)
    parts = [f"{c[k]} {k}" for k in ("reproduced", "implemented", "catalogued") if c.get(k)]
    return f"**{len(entries)} entries**: " + ", ".join(parts) + "."


def _recorded_counts(entries: list[Entry]) -> list[dict[str, int]]:
    out = []
    for e in entries:
        if e.status != "reproduced":
            continue
        try:
            out.append(e.verdict_counts())
        except (OSError, ValueError):  # its row says "results unreadable"
            continue
    return out


def _scale_line(entries: list[Entry]) -> str:
    c = {k: sum(1 for e in entries if e.spec.small_scale.level == k) for k in SMALL_SCALE}
    return "**At small scale**: " + ", ".join(f"{c[k]} {scale_badge(k)}" for k in SMALL_SCALE) + "."


def catalogue_page(entries: dict[str, Entry]) -> str:
    path = f"{CATALOGUE}/index.md"
    es = list(entries.values())
    fam_items = []
    for f in families_present(entries):
        n = sum(1 for e in es if e.spec.family.value == f)
        fam_items.append(f"{_family_link(path, f)} ({n})")
    return "\n".join(
        [
            _front_matter("Catalogue", "Every paper in the zoo, with its family, kind and reproduction status."),
            "# Catalogue",
            "",
            _counts_line(es) + " A paper is *catalogued* when we have written its spec, *implemented* when the "
            "zoo has code for it, and *reproduced* when a recorded run of its scaled-down experiment has "
            f"decided its claims (see [how to read a verdict]({_rel_link(path, READING)})).",
            "",
            _verdict_totals(_recorded_counts(es)) + " " + _scale_line(es),
            "",
            "**Families:** " + " · ".join(fam_items),
            "",
            _FILTER,
            _entry_table(path, es, family=True, summary=False, table_id="zoo-catalogue"),
        ]
    )


def family_page(family: str, entries: dict[str, Entry]) -> str:
    path = family_path(family)
    title = FAMILY_TITLES.get(family, family)
    es = [e for e in entries.values() if e.spec.family.value == family]
    return "\n".join(
        [
            _front_matter(title, f"{title}: the papers of this family in the zoo."),
            f"# {md_text(title)}",
            "",
            _counts_line(es) + f" [All families]({_rel_link(path, CATALOGUE + '/index.md')}).",
            "",
            _FILTER,
            _entry_table(path, es, family=False, summary=True, table_id="zoo-catalogue"),
            *(workload_comparison(path, es) if family == "optimizer" else []),
            *(comparison_section(path, es, family) if family in CLASSIFICATION_FAMILIES else []),
            *(compress_section(path, es, family) if family in COMPRESS_FAMILIES else []),
            *(diffusion_section(path, es, family) if family in DIFFUSION_FAMILIES else []),
        ]
    )


# ----------------------------------------------------------------------------- optimizer comparison
_WORKLOAD_METRICS = (("test_acc", "final test accuracy (%)", True), ("subopt", "log10 suboptimality", False))
TUNED_FILE = "reproductions/_baselines/optim/tuned.json"


def _interval(values: list[float]) -> str:
    """Mean and 95% Student-t interval over the finite values: the claims' own summary and half-width."""
    from zoo.results import _summary, half_width
    from zoo.spec import VerdictRule

    xs = [float(v) for v in values if math.isfinite(float(v))]
    if not xs:
        return "–"
    mean, sem = _summary(xs)
    if len(xs) < 2:
        return f"{mean:.4g} (1 seed)"
    h = half_width(VerdictRule(rule="student_t"), sem, len(xs))
    return fmt_interval(mean, mean - h, mean + h).replace("+", "")


def comparison_rows(entries: list[Entry]) -> dict[str, list[tuple[Entry, str, str, list[float], float | None]]]:
    """``{workload: [(entry, arm, metric, per-seed values, lr or None)]}`` from every recorded optimizer entry.

    An entry takes part when its spec's config names ``workloads`` (the shared suite, through
    ``zoo.experiments._optbench``) and its record has ``<workload>_test_acc`` (or ``_subopt``) metrics.
    """
    out: dict[str, list[tuple[Entry, str, str, list[float], float | None]]] = {}
    for e in sorted(entries, key=lambda e: e.id):
        r = e.spec.reproduction
        if r is None or not isinstance(r.config.get("workloads"), list):
            continue
        rec = read_recorded(e)
        if rec.metrics is None:
            continue
        for w in r.config["workloads"]:
            for arm, ms in rec.metrics.arms.items():
                for metric, _, _ in _WORKLOAD_METRICS:
                    key = f"{w}_{metric}"
                    if key in ms:
                        lr = ms.get(f"{w}_lr")
                        out.setdefault(w, []).append((e, arm, metric, list(ms[key]), float(lr[0]) if lr else None))
    return out


def _tuned_table() -> list[str]:
    import json

    from zoo.catalogue import repo_root

    f = repo_root() / TUNED_FILE
    if not f.is_file():
        return []
    try:
        rec = json.loads(f.read_text())
        rows = rec["baselines"]
    except (ValueError, KeyError):
        return [_note(f"{TUNED_FILE} is unreadable.")]
    names = sorted({b for r in rows.values() for b in r})
    lines = [
        "### Tuned baselines",
        "",
        "Tuned once for the whole family on each workload's validation split "
        f"(`python -m zoo.baselines optim`, seeds {', '.join(str(s) for s in rec.get('provenance', {}).get('seeds', []))}); "
        "every entry that compares with a baseline runs it at this learning rate. "
        "Cells: the chosen learning rate and its mean validation metric; † marks a choice at the edge of its grid.",
        "",
        "| Workload | " + " | ".join(_code(b) for b in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for w, r in rows.items():
        cells = []
        for b in names:
            v = r.get(b)
            cells.append("–" if v is None else f"{v['lr']:g} ({v['value']:.4g}){' †' if v.get('at_edge') else ''}")
        lines.append(f"| {_code(w)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def workload_comparison(path: str, entries: list[Entry]) -> list[str]:
    """Every optimizer arm of every recorded entry on every shared workload, with its interval."""
    rows = comparison_rows(entries)
    tuned = _tuned_table()
    if not rows and not tuned:
        return []
    lines = [
        "",
        "## Every optimizer on the shared workloads",
        "",
        "Each entry runs its arms on the family's shared workload suite (`zoo.workloads.optim`), on its "
        "own seeds; the table gathers their recorded results. Values are means over seeds with a 95% "
        "Student-t interval. Rows of one workload come from different entries, which may differ in "
        "seeds and budget (see each entry's page): compare within an entry for a claim, across entries "
        "for orientation. Each entry's plot shows its learning-rate sensitivity curves.",
        "",
        *tuned,
    ]
    for w, items in rows.items():
        label = dict((m, t) for m, t, _ in _WORKLOAD_METRICS)
        higher = dict((m, h) for m, _, h in _WORKLOAD_METRICS)
        metric = items[0][2]
        items = sorted(items, key=lambda it: -(sum(it[3]) / len(it[3])) if higher[it[2]] else sum(it[3]) / len(it[3]))
        lines += [f"### {_code(w)}", "", f"| Entry | Arm | {label[metric]} | lr | seeds |", "|---|---|---|---|---|"]
        for e, arm, m, vals, lr in items:
            lines.append(f"| {_paper_link(path, e)} | {_code(arm)} | {_interval(vals)} | "
                         f"{'–' if lr is None else f'{lr:g}'} | {len(vals)} |")
        lines.append("")
    return lines


# ----------------------------------------------------------------------------- paper pages
def _links_section(e: Entry) -> list[str]:
    out = []
    for name, url in sorted(e.spec.links.items()):
        if re.match(r"^https?://", url):
            out.append(f"- {md_text(name)}: <{html.escape(url, quote=True)}>")
        else:
            out.append(f"- {md_text(name)}: {md_text(url)}")
    return out


def _claim_link(claim_id: str) -> str:
    return f"[{md_text(claim_id)}](#claim-{claim_id})"  # claim ids are snake_case: a safe anchor


def _rule_link(here: str, claim: Claim, text: str | None = None) -> str:
    """The rule, linked to its section of the Reading-a-verdict page."""
    anchor = RULE_ANCHORS.get(claim.verdict_rule.rule, "")
    return f"[{md_text(text or claim.verdict_rule.describe())}]({_rel_link(here, READING)}#{anchor})"


def _note(text: str) -> str:
    return f'<br><span class="zoo-note">{text}</span>'


def _precondition(q: Shown) -> str:
    return f"precondition {_code(q.condition)} {html.escape(q.verdict)}: {md_text(q.value)}"


def _superseded_note(claim: Claim, lead: str = "superseded by") -> str:
    sup = claim.superseded
    assert sup is not None
    return f"{lead} {_claim_link(sup.by)}: {md_text(sup.reason)}"


def _nowrap(text: str) -> str:
    return f'<span class="zoo-nowrap">{text}</span>'


def claim_verdicts(e: Entry, rec: Recorded, hist: History) -> dict[str, Shown | None]:
    """Claim id -> the verdict its page shows.

    An active claim: the current record's. A superseded one, which runs no longer decide: the
    newest version of the history that records it (else the current record, if it still does).
    """
    out: dict[str, Shown | None] = {}
    current = rec.verdicts.claims if rec.verdicts is not None else {}
    for claim in e.spec.claims:
        if claim.active:
            out[claim.id] = Shown.of(current[claim.id]) if claim.id in current else None
        else:
            last = hist.last(claim.id)
            if last is None and claim.id in current:
                last = Shown.of(current[claim.id], source="the current record")
            out[claim.id] = last
    return out


def _claims_table(e: Entry, rec: Recorded, shown: dict[str, Shown | None]) -> list[str]:
    """The one-glance table at the top of a reproduced paper's page: one row per claim."""
    here = paper_path(e.id)
    lines = [
        "## Verdicts at a glance",
        "",
        '<div class="zoo-claims" markdown>',
        "",
        "| Claim | Verdict | Mean [interval] | n | Rule |",
        "|---|---|---|---|---|",
    ]
    for claim in e.spec.claims:
        v = shown.get(claim.id)
        name = _claim_link(claim.id)
        if not claim.active:
            name = f"<del>{name}</del>" + _note(_superseded_note(claim))
        if v is None:
            missing = (
                "no verdict in the history" if not claim.active
                else "results unreadable" if rec.verdicts is None else "not recorded yet"
            )
            lines.append(f"| {name} | {missing} | – | – | {_rule_link(here, claim)} |")
            continue
        verdict = verdict_badge(v.verdict)
        if v.source is not None:
            verdict += _note(f"last recorded, {md_text(v.source)}")
        value = _nowrap(md_text(v.value))
        if v.verdict == "untestable":
            value += "".join(_note(_precondition(q)) for q in v.failed())
        lines.append(f"| {name} | {verdict} | {value} | {v.n} | {_rule_link(here, claim, v.rule or None)} |")
    lines += [
        "",
        "</div>",
        "",
        (
            f"The interval is the rule's, around the mean over seeds of the tested quantity. How each verdict "
            f"is decided: [Reading a verdict]({_rel_link(here, READING)}). Each claim in full is "
            f"[below](#claims-and-verdicts)."
        ),
        "",
    ]
    return lines


def _match_requires(claim: Claim, v: Shown | None) -> list[Shown | None]:
    """The recorded result of each of the claim's preconditions, by condition (else by position)."""
    if v is None:
        return [None] * len(claim.requires)
    by_text = {q.condition: q for q in v.requires}
    out = []
    for i, q in enumerate(claim.requires):
        got = by_text.get(q.describe())
        if got is None and len(v.requires) == len(claim.requires):
            got = v.requires[i]
        out.append(got)
    return out


def _claim_section(e: Entry, claim: Claim, v: Shown | None, rec: Recorded) -> list[str]:
    here = paper_path(e.id)
    c = claim.condition
    attrs = f"#claim-{claim.id}" + ("" if claim.active else " .zoo-superseded")
    lines = [
        f"### {md_text(claim.id)} {{ {attrs} }}",
        "",
        f'<div class="zoo-kv{"" if claim.active else " zoo-superseded"}" markdown>',
        "",
        "| | |",
        "|---|---|",
    ]
    if not claim.active:
        lines.append(f"| **Superseded** | {_superseded_note(claim, 'by')} |")
    lines += [
        f"| **The paper reports** | {md_text(claim.paper)} |",
        f"| **We test** | {md_text(claim.statement)} |",
        f"| **Condition** | {_code(c.describe())}, decided by the rule {_rule_link(here, claim)} |",
    ]
    if claim.requires:
        pre = []
        for q, got in zip(claim.requires, _match_requires(claim, v), strict=True):
            item = _code(q.describe())
            if got is not None:
                item += f" {verdict_badge(got.verdict)} {md_text(got.value)}"
            pre.append(item)
        lines.append(f"| **Preconditions** | {'<br>'.join(pre)} |")
    if v is None:
        if claim.active:
            why = "results unreadable" if rec.verdicts is None and rec.problems else "not recorded yet"
            lines.append(f"| **Result** | {why} |")
        else:
            lines.append("| **Result** | no recorded verdict in the history |")
    else:
        current = v.source is None
        seeds = rec.metrics.seeds if current and rec.metrics is not None and len(rec.metrics.seeds) == v.n else None
        per_seed = ", ".join(
            f"{s}: {_fmt(x)}" if seeds else _fmt(x) for s, x in zip(seeds or [None] * v.n, v.per_seed, strict=False)
        )
        where = "" if current else f" (last recorded, {md_text(v.source or '')})"
        lines.append(f"| **Verdict** | {verdict_badge(v.verdict)}{where} |")
        if v.verdict == "untestable":
            failed = "; ".join(_precondition(q) for q in v.failed()) or "a precondition was not verified"
            lines.append(f"| **Untestable because** | {failed} |")
        lines += [
            f"| **Measured** | {_fmt_signed(v.mean)} ± {_fmt(v.sem)} "
            f"(mean ± sem, n = {v.n} seed{'s' if v.n != 1 else ''}) |",
            f"| **{'Range' if claim.verdict_rule.rule == 'every_seed' else 'Interval'}** | {md_text(v.value)} "
            f"({md_text(v.rule)}) |",
            f"| **Per seed** | {per_seed} |",
        ]
        if v.registered is not None and v.registered != claim.registered():
            lines.append(
                "| **Note** | recorded under a registration (condition, preconditions or rule) other than the spec's; "
                "`python -m zoo.status --check` fails on this |"
            )
        elif v.condition != c.describe():
            lines.append(
                f"| **Note** | recorded under the condition {_code(v.condition)}; the spec has changed since the run |"
            )
    lines += ["", "</div>", ""]
    return lines


def _history_section(e: Entry, hist: History) -> list[str]:
    """Every recorded version of the entry's verdicts, newest first, one compact badge per claim."""
    record = f"reproductions/{e.id}/verdicts.json"
    lines = ["## Verdict history", ""]
    if hist.error is not None:
        warning = '!!! warning "The verdict history could not be read"'
        return lines + [warning, "", f"    {md_text_code(hist.error)}", ""]
    vs = list(hist.versions)
    if not vs:
        why = "not a git checkout, or not committed yet"
        return lines + [f"No version of {_code(record)} is in the git history ({why}).", ""]
    if len(vs) == 1:
        lines.append(f"Only one version of {_code(record)} has been recorded so far.")
    else:
        lines.append(
            f"{len(vs)} recorded versions of {_code(record)}, newest first: each row is a commit that "
            "changed it or its provenance (a re-run), with the device and the code of its run. An outlined "
            "verdict differs from the one in the version below it."
        )
    lines.append("")
    spec_ids = [c.id for c in e.spec.claims]
    extra = sorted({k for v in vs for k in (v.verdicts or {})} - set(spec_ids))
    claims = {c.id: c for c in e.spec.claims}
    head = []
    for cid in spec_ids + extra:
        if cid not in claims:
            head.append(f"{md_text(cid)} (not in the spec)")
        elif claims[cid].active:
            head.append(_claim_link(cid))
        else:
            head.append(f"<del>{_claim_link(cid)}</del>")
    lines += [
        '<div class="zoo-history" markdown>',
        "",
        "| Recorded in | Date | Device | Run from | " + " | ".join(head) + " |",
        "|---|---|---|---|" + "---|" * len(head),
    ]
    for i in range(len(vs) - 1, -1, -1):
        v, older = vs[i], (vs[i - 1] if i > 0 else None)
        commit = "working tree (uncommitted)" if v.commit == "working tree" else _code(_short(v.commit))
        if i == len(vs) - 1:
            commit += _note("latest")
        run = _code(_short(v.run_commit)) + (" + uncommitted changes" if v.run_dirty else "")
        cells = [commit, _nowrap(md_text(v.date)) if v.date else "–", md_text(v.device) or "–", run]
        for cid in spec_ids + extra:
            raw = (v.verdicts or {}).get(cid)
            if raw is None:
                cells.append("–")
                continue
            s = Shown.of(raw)
            before = (older.verdicts or {}).get(cid) if older is not None else None
            changed = isinstance(before, dict) and str(before.get("verdict")) != s.verdict
            tip = f"{cid}: {s.verdict}, {s.value}"
            cells.append(verdict_badge(s.verdict, compact=True, title=tip, changed=changed))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "</div>", ""]
    return lines


def _metrics_table(rec: Recorded, e: Entry) -> list[str]:
    m = rec.metrics
    r = e.spec.reproduction
    if m is None or r is None:
        return []
    names = [k for k in r.metrics if any(k in m.arms.get(a, {}) for a in m.arms)]
    names += sorted({k for a in m.arms.values() for k in a} - set(names))
    if not names:
        return []
    lines = [
        "### All measured metrics",
        "",
        f"Mean ± sem over seeds {', '.join(str(s) for s in m.seeds)}.",
        "",
        "| Arm | " + " | ".join(md_text(n) for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    arms = [a for a in r.arms if a in m.arms] + sorted(set(m.arms) - set(r.arms))
    for a in arms:
        cells = []
        for n in names:
            vals = m.arms[a].get(n)
            if not vals:
                cells.append("–")
                continue
            finite = [x for x in vals if not math.isnan(x)]
            if len(finite) != len(vals) or not finite:
                cells.append("nan")
                continue
            mean = sum(finite) / len(finite)
            if len(finite) > 1:
                var = sum((x - mean) ** 2 for x in finite) / (len(finite) - 1)
                cells.append(f"{_fmt(mean)} ± {_fmt(math.sqrt(var / len(finite)), 2)}")
            else:
                cells.append(_fmt(mean))
        base = " *(baseline)*" if a in r.baselines else ""
        lines.append(f"| {_code(a)}{base} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _provenance(rec: Recorded) -> list[str]:
    p = rec.provenance
    if p is None:
        return []
    dev = p.device_name or p.device
    if p.device and p.device not in dev:
        dev = f"{dev} ({p.device})"
    commit = p.commit[:10] + (" (with uncommitted changes)" if p.dirty else "")
    rows = [
        ("Device", html.escape(dev)),
        ("Date", html.escape(p.started)),
        ("Commit", _code(commit)),
        ("Wall time", f"{p.wall_time_s:.1f} s"),
        ("Seeds", ", ".join(str(s) for s in p.seeds)),
        ("Budget", "quick (`--quick`)" if p.quick else "full"),
        ("Command", _code(p.command)),
        ("Python / torch", html.escape(f"{p.python} / {p.torch}")),
    ]
    if p.overrides:
        rows.append(("Overrides", " ".join(_code(o) for o in p.overrides)))
    table = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return ["## Provenance", "", '<div class="zoo-kv" markdown>', "", *table, "", "</div>", ""]


def _usage(e: Entry) -> list[str]:
    s = e.spec
    if not s.implementation and not s.usage:
        return []
    lines = ["## Using the implementation", ""]
    if s.usage:
        lines.append(_fence(s.usage, "python"))
    else:
        by_module: dict[str, list[str]] = {}
        for p in s.implementation:
            mod, name = p.split(":")
            by_module.setdefault(mod, []).append(name)
        body = "\n".join(f"from {m} import {', '.join(ns)}" for m, ns in by_module.items())
        lines.append(_fence(body, "python"))
    return lines


def _api(e: Entry, owners: dict[str, str]) -> list[str]:
    s = e.spec
    if not s.implementation:
        return []
    here = paper_path(e.id)
    lines = ["## API reference", ""]
    for p in s.implementation:
        ident = p.replace(":", ".")
        owner = owners.get(p, e.id)
        if owner == e.id:
            lines += [f"::: {ident}", ""]
        else:
            link = _rel_link(here, paper_path(owner))
            lines += [f"- {_code(ident)}: documented on [{md_text(owner)}]({link}#{_anchor(ident)})", ""]
    return lines


def _anchor(ident: str) -> str:
    return ident  # mkdocstrings uses the object's full path as its heading id


def _related(e: Entry, entries: dict[str, Entry]) -> list[str]:
    here = paper_path(e.id)
    lines = ["## Related", ""]
    rel = [r for r in e.spec.related if r != e.id]
    if rel:
        for r in rel:
            if r in entries:
                lines.append(f"- {_paper_link(here, entries[r])} ({status_badge(entries[r])})")
            else:
                lines.append(f"- {md_text(r)} (not in the catalogue)")
        lines.append("")
    fam = e.spec.family.value
    same = [o for o in entries.values() if o.spec.family.value == fam and o.id != e.id and o.id not in rel]
    title = FAMILY_TITLES.get(fam, fam)
    if same:
        lines += [
            f'??? note "Also in {html.escape(title)} ({len(same)})"',
            "",
            *(f"    - {_paper_link(here, o)}" for o in same),
            "",
        ]
    if not rel and not same:
        lines.append("None yet.")
        lines.append("")
    return lines


def paper_page(e: Entry, entries: dict[str, Entry], owners: dict[str, str] | None = None) -> str:
    """The page of one paper."""
    s = e.spec
    here = paper_path(e.id)
    owners = owners if owners is not None else api_owners(entries)
    rec = read_recorded(e)
    hist = read_history(e)
    shown = claim_verdicts(e, rec, hist)
    out = [
        _front_matter(s.title, " ".join(s.summary.split())[:300]),
        f"# {md_text(s.title)}",
        "",
        '<div class="zoo-meta" markdown>',
        (
            f"{_family_link(here, s.family.value)} · {html.escape(s.kind.value.replace('_', ' '))} · "
            f"{status_badge(e)} · id {_code(e.id)} · listing {', '.join(html.escape(x) for x in s.listings)}"
        ),
        "</div>",
        "",
        '!!! abstract "Our summary"',
        "",
        f"    {md_text(s.summary)}",
        "",
    ]
    if s.claims and e.status == "reproduced":
        out += _claims_table(e, rec, shown)
    out += [
        "## Central claim",
        "",
        md_text(s.central_claim),
        "",
        "## At small scale",
        "",
        f"{scale_badge(s.small_scale.level)} {md_text(s.small_scale.how)}",
        "",
    ]
    links = _links_section(e)
    if links:
        out += ["## Links", "", *links, ""]
    r = s.reproduction
    if r is not None:
        out += ["## Claims and verdicts", ""]
        if rec.problems:
            out += ['!!! warning "Recorded results are unreadable"', ""]
            out += [f"    - {md_text_code(p)}" for p in rec.problems]
            out.append("")
        if rec.verdicts is None:
            out += [
                '!!! info "No recorded run yet"',
                "",
                (
                    f"    Each claim below is decided by a recorded full run, which is not in "
                    f"`reproductions/{e.id}/` yet. Run {_code(f'python -m zoo.reproduce {e.id} --record')} "
                    "to record it."
                ),
                "",
            ]
        elif rec.provenance is not None and rec.provenance.quick:
            out += [
                '!!! warning "Quick run"',
                "",
                "    These results come from the `--quick` budget, not the spec's full run.",
                "",
            ]
        for claim in s.claims:
            out += _claim_section(e, claim, shown[claim.id], rec)
        if not s.claims:
            out += ["This entry states no machine-checked claims.", ""]
        out += _metrics_table(rec, e)
        if s.claims and (hist.versions or hist.error or e.status == "reproduced"):
            out += _history_section(e, hist)
        out += ["## The experiment", "", "Arms:", ""]
        out += [f"- {_code(a)}{' *(baseline)*' if a in r.baselines else ''}: {md_text(d)}" for a, d in r.arms.items()]
        out += ["", "Metrics:", ""]
        out += [f"- {_code(m)}: {md_text(d)}" for m, d in r.metrics.items()]
        out.append("")
        if rec.plot is not None:
            out += [
                "## Plot",
                "",
                f"![Plot of the recorded run of {md_text(e.id)}]({_rel_link(here, plot_path(e.id))}){{ .zoo-plot }}",
                "",
            ]
        out += _provenance(rec)
        out += [
            "## Reproduce it",
            "",
            _fence(
                f"pip install -e .\n"
                f"python -m zoo.reproduce {e.id}           # the full run (under runs/), compared with the record\n"
                f"python -m zoo.reproduce {e.id} --record  # the same, recorded in reproductions/{e.id}/ (clean tree)\n"
                f"python -m zoo.reproduce {e.id} --quick   # a short check, under runs/{e.id}/quick/ (never recorded)",
                "bash",
            ),
        ]
    out += _usage(e)
    out += _api(e, owners)
    out += _related(e, entries)
    return "\n".join(out)


def api_owners(entries: dict[str, Entry]) -> dict[str, str]:
    """Implementation path -> the one entry (first by id) whose page holds its API reference.

    An object documented on two pages would give cross-references two targets.
    """
    owners: dict[str, str] = {}
    for eid in sorted(entries):
        for p in entries[eid].spec.implementation:
            owners.setdefault(p, eid)
    return owners


# ----------------------------------------------------------------------------- status page
def status_page(entries: dict[str, Entry]) -> str:
    """What ``python -m zoo.status`` reports, as a page."""
    from zoo import status as zstatus

    path = "status.md"
    try:
        rows = zstatus.collect(history=True)
    except zstatus.LockError as e:  # the site still builds, and says what `zoo.status` would say
        return "\n".join(
            [
                _front_matter("Status"),
                "# Status",
                "",
                '!!! failure "`python -m zoo.status` cannot run"',
                "",
                f"    {md_text_code(str(e))}",
                "",
            ]
        )
    try:
        global_problems = zstatus.check_dvc_yaml()
    except Exception as e:  # noqa: BLE001 (whatever breaks the check, the page reports it)
        global_problems = [f"could not check dvc.yaml: {e}"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    shown = [r for r in rows if r.status != "catalogued"]
    out = [
        _front_matter("Status", "Where every entry of the zoo stands: the output of python -m zoo.status."),
        "# Status",
        "",
        (
            "This page is `python -m zoo.status` at the time the site was built. A recorded result is "
            "*current* when every dependency and output still hashes as `dvc.lock` recorded it, and *stale* "
            "when something changed since; `python -m zoo.status --check` fails on any problem listed here."
        ),
        "",
        f"**{len(rows)} entries**: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ". "
        + _verdict_totals([r.verdicts for r in rows if r.verdicts])
        + f" ([Reading a verdict]({_rel_link(path, READING)}))",
        "",
    ]
    if shown:
        out += [
            "| Entry | Status | Result | Verdicts | Device | Date | Wall time |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in shown:
            e = entries.get(r.id)
            name = _paper_link(path, e) if e is not None else md_text(r.id)
            v = html.escape(_verdict_summary(r.verdicts)) if r.verdicts else "–"
            wall = f"{r.wall_time_s:.0f} s" if r.wall_time_s is not None else "–"
            out.append(
                f"| {name} | {_badge(r.status, r.status)} | {_badge('result-' + r.result, r.result)} | {v} | "
                f"{md_text(r.device) or '–'} | {md_text(r.date) or '–'} | {wall} |"
            )
        out.append("")
    problems = [(r.id, p) for r in shown for p in r.problems]
    if problems or global_problems:
        out += ["## Problems", ""]
        out += [f"- {_code(eid)}: {md_text_code(p)}" for eid, p in problems]
        out += [f"- {md_text_code(p)}" for p in global_problems]
        out.append("")
    else:
        out += ["No problems: every recorded result is current.", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- reading a verdict
def _coverage(k: float, n: int) -> float:
    """The true confidence of ``mean ± k·sem`` over ``n`` normal seeds: P(|T_{n-1}| <= k)."""
    lo, hi = 0.5, 1.0 - 1e-12
    for _ in range(50):  # invert the public quantile function by bisection
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_quantile(mid, n - 1) < k else (lo, mid)
    return 2 * (lo + hi) / 2 - 1


_T = "t<sub>(1+c)/2,&nbsp;n−1</sub>"


def reading_page() -> str:
    """The Reading-a-verdict page: the rules, preconditions, superseded claims, current and stale."""
    badges = {v: verdict_badge(v) for v in VERDICTS}
    quantiles = [
        f"| {n} | {student_t_quantile(0.975, n - 1):.3f} | {100 * _coverage(2.0, n):.1f}% |" for n in (3, 5, 10, 30)
    ]
    return "\n".join(
        [
            _front_matter(
                "Reading a verdict",
                "How a recorded run decides a claim: the Student-t, interval and every-seed rules, preconditions, "
                "superseded claims, current and stale results.",
            ),
            "# Reading a verdict",
            "",
            "Each claim on a paper's page is a **condition** over the metrics of a scaled-down experiment, "
            "written in the spec before any run: a metric, or the paired difference of two arms seed by seed "
            "(for example `pdp_u90.test_acc − gmp_u90.test_acc >= 0`), compared with a threshold by `>=`, "
            "`<=`, or `within` (inside the band *threshold ± tolerance*). The experiment runs once per seed, "
            "which gives *n* values of the tested quantity, with mean *m* and standard error of the mean "
            "*s* = sd/√*n*. The claim's **verdict rule** turns them into one of four verdicts:",
            "",
            "| Verdict | Meaning |",
            "|---|---|",
            f"| {badges['verified']} | the rule's interval lies entirely where the condition holds |",
            f"| {badges['refuted']} | it lies entirely where the condition fails |",
            f"| {badges['inconclusive']} | it straddles the threshold (for `within`: an edge of the band) |",
            f"| {badges['untestable']} | a [precondition](#untestable) of the claim was not verified, so the "
            "test says nothing |",
            "",
            "The claims table at the top of a paper's page shows each verdict with *m* and the rule's "
            "interval, `+0.48 [+0.10, +0.86]`, and *n*; the claim's own section below it adds the standard "
            "error and every seed's value. A tested value that is not a number on some seed (a diverged run) "
            "makes the verdict inconclusive.",
            "",
            "## Student-t interval { #student-t }",
            "",
            "The default rule for every claim registered now. The interval is",
            "",
            f"<p class=\"zoo-formula\"><i>m</i> ± {_T}·<i>s</i></p>",
            "",
            "the two-sided Student-t confidence interval for the mean at confidence *c* (0.95 unless the "
            "claim states another), with *n* − 1 degrees of freedom. Where it lies relative to the threshold "
            "decides the verdict, as in the table above. With seeds that are independent and roughly normal, "
            "a claim whose true mean sits exactly on the threshold comes out verified in at most "
            "(1 − *c*)/2 of runs: 2.5% at *c* = 0.95. The rule needs at least "
            f"{MIN_SEEDS_STUDENT_T} seeds (the spec refuses fewer): with fewer the interval is too wide to "
            "decide much.",
            "",
            "## Interval: mean ± k·sem { #interval }",
            "",
            "The older rule, kept for the claims registered with it (a rule never changes once a verdict is "
            "recorded): the same decision with the fixed interval *m* ± *k*·*s*, *k* = 2 unless stated. "
            "Its confidence is not the 95% that ±2·sem suggests: that holds only for many seeds. Over *n* "
            "seeds the true confidence of ±*k*·sem is P(|T<sub>n−1</sub>| ≤ *k*), and the Student-t rule "
            "widens the interval to keep 95%:",
            "",
            "| Seeds *n* | Student-t 95% half-width, in sem (t<sub>0.975,&nbsp;n−1</sub>) "
            "| True confidence of ±2·sem |",
            "|---|---|---|",
            *quantiles,
            "",
            "So an *interval* verdict over 3 or 5 seeds is weaker evidence than it looks: a true mean on the "
            "threshold is verified far more often than 2.5% of the time.",
            "",
            "## Every seed { #every-seed }",
            "",
            "Verified when the condition holds for every seed, refuted when it holds for none, inconclusive "
            "otherwise. No interval is computed: the bracket shown is the range of the seeds, [min, max].",
            "",
            "## Preconditions and untestable { #untestable }",
            "",
            "A claim may list **preconditions** (`requires`): conditions without which its test would mean "
            "nothing, such as the baseline lying below the ceiling a gain is measured against (a method "
            "cannot beat a baseline that is already at 100%). Each is decided by the claim's own rule on the "
            f"same run. Unless every precondition is verified, the verdict is {badges['untestable']}, whatever "
            "the claim's own condition gives; the page names the precondition that was not verified, with its "
            "verdict and value. An untestable claim is neither support for the paper nor evidence against it: the "
            "scaled-down setting failed to set up the comparison.",
            "",
            "## Superseded claims and the append-only rule { #superseded }",
            "",
            "Once a verdict is recorded, a claim's **condition, preconditions and rule never change**. A claim "
            "that turns out to be badly posed is not edited: a new claim, with a new id, replaces it, and the "
            "old one is marked *superseded*, naming its successor and saying why in one sentence. Runs no "
            "longer decide a superseded claim; its paper's page keeps it, <del>struck through</del>, with the "
            "last verdict recorded for it in the git history. `python -m zoo.status --check` proves the rule "
            "from git: it fails unless every claim that ever received a verdict still has the condition, "
            "preconditions and rule it had when its first verdict was recorded and is still in the spec, and "
            "unless the current record ran from a clean commit whose spec already held every claim it decided, "
            "as it is now.",
            "",
            "## Verdict history { #history }",
            "",
            "Each reproduced paper's page lists every recorded version of its `verdicts.json`, newest first: "
            "one row per commit that changed it, with the device and the code commit of that run, and one "
            "badge per claim. A re-run after a fix is a new row; an outlined badge is a verdict that changed "
            "from the version before.",
            "",
            "## Current and stale { #current-and-stale }",
            "",
            "DVC binds each recorded result to what produced it: `dvc.lock` holds the hash of every input of "
            "the entry's stage (its spec, its code, its data) and of every recorded output. A result is "
            "**current** when all of them still hash as recorded. It is **stale** when one changed since the "
            "run, say the experiment's code: its verdicts are still those the run recorded, but that run no "
            "longer provably comes from what is in the repository. Recording a new run "
            "(`python -m zoo.reproduce ID --record`, which rewrites the record and its entry of `dvc.lock`) "
            "makes it current again. The [status page](status.md) lists every entry's state, and "
            "`python -m zoo.status --check` fails on a stale one.",
            "",
            "## What a verdict does not say { #limits }",
            "",
            "An inconclusive verdict is not a failure of the zoo: at this scale and with these seeds, the data "
            "do not decide the claim. A refuted claim is one that the scaled-down experiment contradicts; by "
            "itself it says nothing about the paper's full-scale results.",
            "",
        ]
    )


# ----------------------------------------------------------------------------- everything
def generate(entries: dict[str, Entry] | None = None) -> dict[str, str | bytes]:
    """Every generated file, docs-relative path -> text (Markdown) or bytes (images)."""
    entries = load_all() if entries is None else entries
    files: dict[str, str | bytes] = {f"{CATALOGUE}/index.md": catalogue_page(entries)}
    for f in families_present(entries):
        files[family_path(f)] = family_page(f, entries)
        if f in CLASSIFICATION_FAMILIES:
            png = reliability_png([e for e in entries.values() if e.spec.family.value == f])
            if png is not None:
                files[reliability_path(f)] = png
        if f in COMPRESS_FAMILIES:
            png = pareto_png([e for e in entries.values() if e.spec.family.value == f])
            if png is not None:
                files[pareto_path(f)] = png
        if f in DIFFUSION_FAMILIES:
            fam = [e for e in entries.values() if e.spec.family.value == f]
            png = fidelity_png(fam)
            if png is not None:
                files[fidelity_path(f)] = png
            for e in fam:
                png = samples_png(e)
                if png is not None:
                    files[samples_path(e.id)] = png
    owners = api_owners(entries)
    for eid in sorted(entries):
        e = entries[eid]
        files[paper_path(eid)] = paper_page(e, entries, owners)
        plot = e.results_dir / "plot.png"
        if e.spec.reproduction is not None and plot.is_file():
            files[plot_path(eid)] = plot.read_bytes()
    files["status.md"] = status_page(entries)
    files[READING] = reading_page()
    return files
