"""The documentation site's generated pages, built from the specs and the recorded results. No torch.

``docs/gen_pages.py`` (run by the mkdocs ``gen-files`` plugin at build time) writes what
:func:`generate` returns; ``docs/hooks.py`` sets the site's navigation from :func:`nav`. Nothing
here is hand-maintained: every page comes from ``specs/<id>.yaml`` and ``reproductions/<id>/``.

Pages:

* ``catalogue/index.md``: every entry in one filterable table;
* ``catalogue/<family>.md``: one page per family (titles from :data:`zoo.spec.FAMILY_TITLES`);
* ``papers/<id>.md``: one page per paper (claims, verdicts, plot, provenance, usage, API);
* ``status.md``: what ``python -m zoo.status`` reports;
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

from zoo.catalogue import Entry, load_all
from zoo.results import Metrics, Provenance, ResultsError, Verdicts, read_json_model
from zoo.spec import FAMILY_TITLES, Family

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
    "status_page",
]

PAPERS = "papers"
CATALOGUE = "catalogue"
PLOTS = "assets/plots"

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
def _badge(kind: str, label: str, extra: str = "") -> str:
    return f'<span class="zoo-badge zoo-badge--{_attr(kind)}">{html.escape(label)}{extra}</span>'


def _verdict_summary(counts: dict[str, int]) -> str:
    order = ("verified", "refuted", "inconclusive")
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    return ", ".join(f"{counts[k]} {k}" for k in keys)


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


def verdict_badge(verdict: str) -> str:
    return _badge(verdict, verdict)


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
        {"Reference": "reference.md"},
    ]


# ----------------------------------------------------------------------------- catalogue pages
_FILTER = """\
<div class="zoo-filter" data-search-exclude markdown="0">
<input type="search" id="zoo-filter" placeholder="Filter by title, id, family, kind or status…" aria-label="Filter the catalogue" autocomplete="off">
<select id="zoo-filter-status" aria-label="Filter by status">
<option value="">any status</option>
<option value="reproduced">reproduced</option>
<option value="implemented">implemented</option>
<option value="catalogued">catalogued</option>
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
    if summary:
        cells.append(md_text(s.summary))
    return "| " + " | ".join(cells) + " |"


def _entry_table(from_path: str, entries: list[Entry], *, family: bool, summary: bool, table_id: str) -> str:
    head = ["Paper", *(["Family"] if family else []), "Kind", "Status", *(["Summary"] if summary else [])]
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
            "decided its claims (see [how to read a verdict](../index.md#reading-a-verdict)).",
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
        ]
    )


# ----------------------------------------------------------------------------- paper pages
def _links_section(e: Entry) -> list[str]:
    out = []
    for name, url in sorted(e.spec.links.items()):
        if re.match(r"^https?://", url):
            out.append(f"- {md_text(name)}: <{html.escape(url, quote=True)}>")
        else:
            out.append(f"- {md_text(name)}: {md_text(url)}")
    return out


def _claim_section(e: Entry, claim: Any, rec: Recorded) -> list[str]:
    c = claim.condition
    rule = claim.verdict_rule
    rule_s = "every seed" if rule.rule == "every_seed" else f"interval: mean ± {rule.k:g}·sem"
    lines = [
        f"### {md_text(claim.id)} {{ #claim-{claim.id} }}",
        "",
        '<div class="zoo-kv" markdown>',
        "",
        "| | |",
        "|---|---|",
        f"| **The paper reports** | {md_text(claim.paper)} |",
        f"| **We test** | {md_text(claim.statement)} |",
        f"| **Condition** | {_code(c.describe())} ({html.escape(rule_s)}) |",
    ]
    v = rec.verdicts.claims.get(claim.id) if rec.verdicts is not None else None
    if v is None:
        lines.append("| **Result** | not recorded yet |")
    else:
        seeds = rec.metrics.seeds if rec.metrics is not None and len(rec.metrics.seeds) == v.n else None
        per_seed = ", ".join(
            f"{s}: {_fmt(x)}" if seeds else _fmt(x) for s, x in zip(seeds or [None] * v.n, v.per_seed, strict=False)
        )
        lines += [
            f"| **Verdict** | {verdict_badge(v.verdict)} |",
            f"| **Measured** | {_fmt_signed(v.mean)} ± {_fmt(v.sem)} (mean ± sem, n = {v.n} seed{'s' if v.n != 1 else ''}) |",
            f"| **Interval** | [{_fmt(v.low)}, {_fmt(v.high)}] ({html.escape(v.rule)}) |",
            f"| **Per seed** | {per_seed} |",
        ]
        if v.condition != c.describe():
            lines.append(
                f"| **Note** | recorded under the condition {_code(v.condition)}; the spec has changed since the run |"
            )
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
        "## Central claim",
        "",
        md_text(s.central_claim),
        "",
        "## At small scale",
        "",
        md_text(f"{s.small_scale.level}: {s.small_scale.how}"),
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
                    f"`reproductions/{e.id}/` yet. Run {_code('python -m zoo.reproduce ' + e.id)} to record it."
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
            out += _claim_section(e, claim, rec)
        if not s.claims:
            out += ["This entry states no machine-checked claims.", ""]
        out += _metrics_table(rec, e)
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
                f'pip install -e .\npython -m zoo.reproduce {e.id}          # the full run, recorded in reproductions/{e.id}/\n'
                f"python -m zoo.reproduce {e.id} --quick  # a short check, written under runs/{e.id}/ (never recorded)",
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
        rows = zstatus.collect()
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
        f"**{len(rows)} entries**: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ".",
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


# ----------------------------------------------------------------------------- everything
def generate(entries: dict[str, Entry] | None = None) -> dict[str, str | bytes]:
    """Every generated file, docs-relative path -> text (Markdown) or bytes (images)."""
    entries = load_all() if entries is None else entries
    files: dict[str, str | bytes] = {f"{CATALOGUE}/index.md": catalogue_page(entries)}
    for f in families_present(entries):
        files[family_path(f)] = family_page(f, entries)
    owners = api_owners(entries)
    for eid in sorted(entries):
        e = entries[eid]
        files[paper_path(eid)] = paper_page(e, entries, owners)
        plot = e.results_dir / "plot.png"
        if e.spec.reproduction is not None and plot.is_file():
            files[plot_path(eid)] = plot.read_bytes()
    files["status.md"] = status_page(entries)
    return files
