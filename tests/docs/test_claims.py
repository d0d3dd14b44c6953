"""Paper pages show what the registry promises: the claims table, superseded and untestable claims,
the verdict history, and the Reading-a-verdict page they link to.

A synthetic entry (``toy_claims``) is recorded with metrics chosen so that its five claims get
every verdict: verified, refuted, inconclusive, untestable (a failed precondition), and one
superseded claim whose last verdict lives only in the (stubbed) git history. Expected values are
worked out by hand in the comments, not by the renderer's own code.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from zoo.catalogue import load_all

REASON = "It compared unpaired means | so $noise$ <dominated>, and *paired* differences are what the paper reports."
HOW = "A proxy | two arms $x$ <i>five seeds</i>."

TOY = f"""\
id: toy_claims
title: "Toy claims"
family: other
kind: method
listings: ["000"]
summary: "A synthetic entry whose recorded run gives every verdict, to test how a paper page shows them."
central_claim: "The new arm beats the baseline."
small_scale: {{level: partial, how: {json.dumps(HOW)}}}
reproduction:
  experiment: "zoo.experiments.pdp_pruning:EXPERIMENT"
  config: {{}}
  seeds: [0, 1, 2, 3, 4]
  quick: {{config: {{}}}}
  arms: {{base: the baseline, new: the method}}
  metrics: {{acc: accuracy}}
  baselines: [base]
claims:
  - id: old_gain
    paper: "The method is better."
    statement: "The method's mean accuracy is positive."
    condition: {{metric: new.acc, op: ">=", threshold: 0.0}}
    verdict_rule: {{rule: interval, k: 2.0}}
    superseded: {{by: gain_verified, reason: {json.dumps(REASON)}}}
  - id: gain_verified
    paper: "The method beats the baseline."
    statement: "new minus base, paired by seed, is at least 0."
    condition: {{metric: new.acc, minus: base.acc, op: ">=", threshold: 0.0}}
    requires:
      - {{metric: base.acc, op: "<=", threshold: 99.0}}
  - id: gain_refuted
    paper: "The baseline beats the method."
    statement: "base minus new is at least 0."
    condition: {{metric: base.acc, minus: new.acc, op: ">=", threshold: 0.0}}
  - id: gain_inconclusive
    paper: "The method gains half a point."
    statement: "new minus base is at least 0.5."
    condition: {{metric: new.acc, minus: base.acc, op: ">=", threshold: 0.5}}
  - id: gain_untestable
    paper: "The method beats a baseline that is far from the ceiling."
    statement: "new minus base is at least 0, with the baseline at most 90."
    condition: {{metric: new.acc, minus: base.acc, op: ">=", threshold: 0.0}}
    requires:
      - {{metric: base.acc, op: "<=", threshold: 90.0}}
"""

BASE = [94.0, 94.5, 95.0, 95.5, 96.0]
GAIN = [0.2, 0.4, 0.6, 0.8, 1.0]
# By hand: the gain has mean 0.6, sd sqrt(0.1), sem 0.14142; t_{0.975,4} = 2.7764 gives the
# half-width 0.3926, so [0.2074, 0.9926]. The baseline: mean 95, sem 0.35355, half-width 0.9816.
GAIN_SHOWN = "+0.60 [+0.21, +0.99]"
LOSS_SHOWN = "-0.60 [-0.99, -0.21]"
BASE_SHOWN = "+95.00 [+94.02, +95.98]"
ACTIVE = {
    "gain_verified": ("verified", GAIN_SHOWN),
    "gain_refuted": ("refuted", LOSS_SHOWN),
    "gain_inconclusive": ("inconclusive", GAIN_SHOWN),
    "gain_untestable": ("untestable", GAIN_SHOWN),
}


def _old_verdict(verdict: str, mean: float) -> dict:
    return {"verdict": verdict, "condition": "new.acc >= 0", "rule": "mean ± 2·sem", "n": 5, "mean": mean,
            "sem": 0.3, "low": mean - 0.6, "high": mean + 0.6, "per_seed": [mean] * 5}


def _versions(current: dict) -> list:
    """Three recorded versions, oldest first: old_gain inconclusive, then refuted, then retired."""
    from zoo.history import RecordedVersion

    def v(commit: str, date: str, device: str, verdicts: dict, dirty: bool = False) -> RecordedVersion:
        return RecordedVersion(commit=commit, date=date, run_commit=commit[::-1], run_dirty=dirty, device=device,
                               started=date, wall_time_s=1.0, verdicts=verdicts)

    first = {"old_gain": _old_verdict("inconclusive", 0.1),
             "gain_verified": dict(current["gain_verified"], verdict="inconclusive")}
    second = {"old_gain": _old_verdict("refuted", -2.0), "gain_verified": current["gain_verified"]}
    return [
        v("a" * 40, "2026-01-01T10:00:00+00:00", "CPU one", first),
        v("b" * 40, "2026-02-01T10:00:00+00:00", "GPU <H200> | fast", second, dirty=True),
        v("c" * 40, "2026-03-01T10:00:00+00:00", "GPU two", current),
    ]


@pytest.fixture
def toy(zoo_root, monkeypatch):  # type: ignore[no-untyped-def]
    """The recorded toy entry; ``toy.page()`` renders its paper page with the stubbed history."""
    from zoo import docs
    from zoo.catalogue import _load_all_cached, get
    from zoo.pipeline import RESULT_FILES
    from zoo.results import Metrics, Provenance, evaluate_claims, write_run_dir

    zoo_root(TOY, name="toy_claims")
    spec = get("toy_claims").spec
    metrics = Metrics(entry="toy_claims", seeds=[0, 1, 2, 3, 4],
                      arms={"base": {"acc": BASE}, "new": {"acc": [b + g for b, g in zip(BASE, GAIN)]}})
    verdicts = evaluate_claims(spec, metrics)
    prov = Provenance(entry="toy_claims", commit="c" * 40, dirty=False, device="cpu", device_name="GPU two",
                      python="3.11", torch="2.x", packages={}, seeds=[0, 1, 2, 3, 4], quick=False, overrides=[],
                      config={}, started="2026-03-01T10:00:00+00:00", wall_time_s=1.0, host="h", command="c")
    root: Path = zoo_root.root
    files: dict = {"metrics.json": metrics, "verdicts.json": verdicts, "provenance.json": prov}
    for name in RESULT_FILES:  # every other file a record has, so that zoo.status reads it as one
        files.setdefault(name, b"\x89PNG fake" if name.endswith(".png") else {})
    write_run_dir(root / "reproductions" / "toy_claims", files)
    _load_all_cached.cache_clear()
    current = json.loads((root / "reproductions" / "toy_claims" / "verdicts.json").read_text())["claims"]
    calls: list[str] = []

    class Toy:
        recorded = current
        versions = _versions(current)

        def stub(self, versions=None, error: Exception | None = None) -> None:  # type: ignore[no-untyped-def]
            def fake(entry_id: str) -> list:
                calls.append(entry_id)
                if error is not None:
                    raise error
                return list(self.versions if versions is None else versions)

            monkeypatch.setattr(docs, "recorded_versions", fake)

        def page(self) -> str:
            entries = load_all()
            return docs.paper_page(entries["toy_claims"], entries)

        calls_made = calls

    t = Toy()
    t.stub()
    return t


def _html(md_text: str) -> str:
    import markdown

    md = markdown.Markdown(extensions=["tables", "md_in_html", "attr_list", "admonition", "pymdownx.details", "toc"])
    body = re.match(r"(?s)^---\n.*?\n---\n(.*)$", md_text).group(1)
    return md.convert(body)


def _section(out: str, heading_id: str) -> str:
    m = re.search(rf'<h2 id="{heading_id}">.*?</h2>(.*?)(?=<h2 |\Z)', out, re.S)
    assert m, f"no section #{heading_id}"
    return m.group(1)


def _rows(fragment: str) -> list[list[str]]:
    """Each table body row's cells, as HTML."""
    body = re.search(r"<tbody>(.*?)</tbody>", fragment, re.S)
    assert body, f"no table in:\n{fragment[:2000]}"
    return [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def _text(h: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", h)).split())


def _badges(h: str) -> list[str]:
    return re.findall(r'class="zoo-badge zoo-badge--([\w-]+)[^"]*"', h)


def test_claims_table_lists_every_active_claim(toy, docs_need) -> None:  # type: ignore[no-untyped-def]
    docs_need.modules("markdown", "pymdownx")
    assert {k: v["verdict"] for k, v in toy.recorded.items()} == {k: v[0] for k, v in ACTIVE.items()}
    out = _html(toy.page())
    assert out.index('id="verdicts-at-a-glance"') < out.index('id="central-claim"'), "the table is not at the top"
    table = _section(out, "verdicts-at-a-glance")
    rows = {re.search(r'href="#claim-(\w+)"', r[0]).group(1): r for r in _rows(table)}
    assert list(rows) == ["old_gain", *ACTIVE], "one row per claim, in the spec's order"
    for cid, (verdict, shown) in ACTIVE.items():
        claim, v, value, n, rule = rows[cid]
        assert _text(claim) == cid and "<del>" not in claim
        assert _badges(v) == [verdict], cid
        assert _text(value).startswith(shown), (cid, _text(value))
        assert _text(n) == "5"
        assert 'href="../reading-a-verdict.md#student-t"' in rule and _text(rule) == "Student-t 95% interval"
        assert f'<h3 id="claim-{cid}">' in out, f"the table links to a missing section {cid}"
    assert 'href="../reading-a-verdict.md"' in table, "the table does not link to Reading a verdict"
    # Only the failed precondition is named: the verified one of gain_verified is not.
    assert "precondition" not in _text(rows["gain_verified"][2])


def test_superseded_claim_is_struck_through_with_reason_link_and_last_verdict(toy, docs_need) -> None:  # type: ignore
    docs_need.modules("markdown", "pymdownx")
    assert "old_gain" not in toy.recorded, "a new run no longer decides a superseded claim"
    out = _html(toy.page())
    row = next(r for r in _rows(_section(out, "verdicts-at-a-glance")) if 'href="#claim-old_gain"' in r[0])
    claim, v, value, n, rule = row
    assert '<del><a href="#claim-old_gain">old_gain</a></del>' in html.unescape(claim), claim
    assert 'superseded by <a href="#claim-gain_verified">gain_verified</a>' in html.unescape(claim)
    assert REASON in _text(claim), "the reason is not shown literally"
    # The newest version that has it (commit b…: refuted), not the oldest (inconclusive).
    assert _badges(v) == ["refuted"], v
    assert "last recorded, commit bbbbbbb (2026-02-01)" in _text(v)
    assert _text(value) == "-2.00 [-2.60, -1.40]"  # half-width 0.6: two digits, two decimals
    assert 'href="../reading-a-verdict.md#interval"' in rule and _text(rule) == "mean ± 2·sem"
    # Its own section: the heading struck through (a class), the reason and the successor linked.
    m = re.search(r'<h3 (class="zoo-superseded" id="claim-old_gain"|id="claim-old_gain" class="zoo-superseded")>', out)
    assert m, "the superseded claim's heading is not marked"
    section = out[m.end():].split("<h3")[0]
    assert 'class="zoo-kv zoo-superseded"' in section
    assert "Superseded" in section and 'href="#claim-gain_verified"' in section and REASON in _text(section)
    assert _badges(section) == ["refuted"]
    # Active claims are not struck through.
    assert '<h3 id="claim-gain_verified">' in out


def test_superseded_claim_without_history_says_so(toy, docs_need) -> None:  # type: ignore[no-untyped-def]
    docs_need.modules("markdown", "pymdownx")
    toy.stub(versions=[])
    out = _html(toy.page())
    row = next(r for r in _rows(_section(out, "verdicts-at-a-glance")) if 'href="#claim-old_gain"' in r[0])
    assert "<del>" in row[0] and _badges(row[1]) == [] and _text(row[1]) == "no verdict in the history"


def test_untestable_verdict_names_the_failed_precondition(toy, docs_need) -> None:  # type: ignore[no-untyped-def]
    docs_need.modules("markdown", "pymdownx")
    from zoo import docs

    out = _html(toy.page())
    row = next(r for r in _rows(_section(out, "verdicts-at-a-glance")) if 'href="#claim-gain_untestable"' in r[0])
    assert _badges(row[1]) == ["untestable"]
    assert "precondition base.acc <= 90 refuted: " + BASE_SHOWN in _text(row[2]), _text(row[2])
    section = out.split('<h3 id="claim-gain_untestable">')[1].split("<h3")[0]
    assert "Untestable because" in section and "base.acc <= 90" in _text(section) and BASE_SHOWN in _text(section)
    assert _badges(section)[:2] == ["refuted", "untestable"]  # the precondition's own verdict, then the claim's
    css = (Path(__file__).resolve().parents[2] / "docs" / "stylesheets" / "zoo.css").read_text()
    assert ".zoo-badge--untestable" in css, "untestable has no badge colour"
    # Counted like the other verdicts: catalogue (status badge and totals) and the status page.
    entries = load_all()
    catalogue = docs.catalogue_page(entries)
    assert "1 verified, 1 refuted, 1 inconclusive, 1 untestable" in catalogue
    assert "**4 recorded verdicts**: 1 verified, 1 refuted, 1 inconclusive, 1 untestable." in catalogue
    status = docs.status_page(entries)
    assert "1 verified, 1 refuted, 1 inconclusive, 1 untestable" in status
    assert docs._verdict_summary({"untestable": 2, "verified": 1}) == "1 verified, 2 untestable"


def test_history_rows_newest_first_from_recorded_versions(toy, docs_need) -> None:  # type: ignore[no-untyped-def]
    docs_need.modules("markdown", "pymdownx")
    out = _html(toy.page())
    assert toy.calls_made == ["toy_claims"], "the history is read once per page"
    history = _section(out, "verdict-history")
    head = re.search(r"<thead>(.*?)</thead>", history, re.S).group(1)
    assert [_text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)] == [
        "Recorded in", "Date", "Device", "Run from", "old_gain", *ACTIVE,
    ]
    assert "<del>" in head.split("old_gain")[0][-60:], "the superseded claim's column is struck through"
    rows = _rows(history)
    assert [_text(r[0]).split()[0] for r in rows] == ["ccccccc", "bbbbbbb", "aaaaaaa"], "newest first"
    assert "latest" in _text(rows[0][0]) and "latest" not in _text(rows[1][0])
    assert [_text(r[1]) for r in rows] == [f"2026-0{m}-01T10:00:00+00:00" for m in (3, 2, 1)]
    assert _text(rows[1][2]) == "GPU <H200> | fast", "the device is escaped (its `|` did not split the row)"
    assert all(len(r) == 4 + 5 for r in rows)
    assert "uncommitted changes" in _text(rows[1][3]) and _text(rows[0][3]) == "c" * 7
    assert [_badges(c) for c in rows[0][4:]] == [[], ["verified"], ["refuted"], ["inconclusive"], ["untestable"]]
    assert _text(rows[0][4]) == "–", "old_gain is not in the newest version"
    assert [_badges(c) for c in rows[1][4:6]] == [["refuted"], ["verified"]]
    assert [_badges(c) for c in rows[2][4:6]] == [["inconclusive"], ["inconclusive"]]
    assert [_badges(c) for c in rows[2][6:]] == [[], [], []]
    # A verdict that changed from the version before is marked; one that did not, is not.
    assert "zoo-changed" in rows[1][4] and "zoo-changed" in rows[1][5]
    assert "zoo-changed" not in rows[0][5] and "zoo-changed" not in rows[2][4]
    assert "compact" in rows[0][5]


def test_history_with_one_version_none_or_an_error(toy, docs_need) -> None:  # type: ignore[no-untyped-def]
    docs_need.modules("markdown", "pymdownx")
    toy.stub(versions=toy.versions[-1:])
    history = _section(_html(toy.page()), "verdict-history")
    assert "Only one version of reproductions/toy_claims/verdicts.json has been recorded so far" in _text(history)
    assert len(_rows(history)) == 1
    toy.stub(versions=[])
    history = _section(_html(toy.page()), "verdict-history")
    assert "<table>" not in history and "No version of reproductions/toy_claims/verdicts.json" in _text(history)
    toy.stub(error=RuntimeError("git: broken <pipe> | x"))
    history = _section(_html(toy.page()), "verdict-history")
    assert "could not be read" in history and "git: broken <pipe> | x" in _text(history)


def test_small_scale_level_is_a_badge_and_a_catalogue_filter(toy, docs_need) -> None:  # type: ignore[no-untyped-def]
    docs_need.modules("markdown", "pymdownx")
    from zoo import docs

    out = _html(toy.page())
    scale = _section(out, "at-small-scale")
    assert _badges(scale) == ["scale-partial"] and HOW in _text(scale)
    catalogue = docs.catalogue_page(load_all())
    assert '<select id="zoo-filter-scale"' in catalogue
    assert re.findall(r'<option value="(\w*)">[^<]*small scale', catalogue) == ["", "yes", "partial", "no"]
    rendered = _html(catalogue)
    rows = _rows(rendered.split('id="zoo-catalogue"')[1])
    assert len(rows) == 1 and len(rows[0]) == 5, "one cell per column: the tooltip's `|` split nothing"
    assert _badges(rows[0][4]) == ["scale-partial"] and "zoo-scale" in rows[0][4]
    assert html.unescape(re.search(r'title="([^"]*)"', rows[0][4]).group(1)) == HOW, "the tooltip is `how`, escaped"
    js = (Path(__file__).resolve().parents[2] / "docs" / "javascripts" / "catalogue.js").read_text()
    assert "zoo-filter-scale" in js and ".zoo-scale" in js


def test_reading_a_verdict_page_is_generated_linked_and_exact() -> None:
    from zoo import docs

    entries = load_all()
    files = docs.generate(entries)
    page = files["reading-a-verdict.md"]
    assert {"Reading a verdict": "reading-a-verdict.md"} in docs.nav(entries)
    for anchor in ("student-t", "interval", "every-seed", "untestable", "superseded", "current-and-stale"):
        assert f"{{ #{anchor} }}" in page, anchor
    assert "t<sub>(1+c)/2,&nbsp;n−1</sub>" in page
    # t_{0.975,4} = 2.776 and P(|T_2| <= 2) = 81.6%, P(|T_4| <= 2) = 88.4% (scipy.stats.t).
    assert "| 5 | 2.776 | 88.4% |" in page and "| 3 | 4.303 | 81.6% |" in page
    assert "python -m zoo.status --check" in page and "**current**" in page and "**stale**" in page
    for eid, e in entries.items():
        paper = files[f"papers/{eid}.md"]
        if e.status == "reproduced" and e.spec.claims:
            assert "](../reading-a-verdict.md)" in paper.split("## Central claim")[0], eid
    assert "](../reading-a-verdict.md)" in files["catalogue/index.md"]
    assert "](reading-a-verdict.md)" in files["status.md"]


def test_built_pages_show_every_recorded_verdict_and_their_history(site) -> None:  # type: ignore[no-untyped-def]
    """The real site: each reproduced page's claims table matches its verdicts.json; its history is read."""
    from zoo.history import is_git_checkout

    home = (site.dir / "index.html").read_text(encoding="utf-8")
    assert 'href="reading-a-verdict/"' in home, "Reading a verdict is not in the navigation"
    assert (site.dir / "reading-a-verdict" / "index.html").is_file()
    checked = 0
    for eid, e in load_all().items():
        if e.status != "reproduced" or not e.spec.claims:
            continue
        out = (site.dir / "papers" / eid / "index.html").read_text(encoding="utf-8")
        recorded = json.loads((e.results_dir / "verdicts.json").read_text())["claims"]
        table = _section(out, "verdicts-at-a-glance")
        assert 'href="../../reading-a-verdict/"' in table, eid
        rows = {re.search(r'href="#claim-(\w+)"', r[0]).group(1): r for r in _rows(table)}
        assert list(rows) == [c.id for c in e.spec.claims], eid
        for c in e.spec.active_claims():
            if c.id in recorded:
                assert _badges(rows[c.id][1]) == [recorded[c.id]["verdict"]], (eid, c.id)
                assert _text(rows[c.id][3]) == str(recorded[c.id]["n"]), (eid, c.id)
        history = _section(out, "verdict-history")
        assert "could not be read" not in history, f"{eid}: {_text(history)[:300]}"
        if is_git_checkout():
            assert "<tbody>" in history, f"{eid}: no recorded version in git"
        checked += 1
    assert checked, "no reproduced entry to check"
