"""Fast docs tests, no browser: the strict build passes and every spec has its page."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from zoo.catalogue import load_all

REPO = Path(__file__).resolve().parents[2]


def test_strict_build_passes_without_warnings(built_site) -> None:
    assert built_site.returncode == 0, f"mkdocs build --strict failed:\n{built_site.output[-6000:]}"
    warnings = [line for line in built_site.output.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "\n".join(warnings)
    assert built_site.seconds < 120, f"the docs build took {built_site.seconds:.0f} s"


def test_every_spec_has_a_page(site) -> None:
    entries = load_all()
    missing = [eid for eid in entries if not (site.dir / "papers" / eid / "index.html").is_file()]
    assert not missing, f"no page for {missing}"
    for eid, e in entries.items():
        if e.spec.reproduction is not None and (e.results_dir / "plot.png").is_file():
            assert (site.dir / "assets" / "plots" / f"{eid}.png").read_bytes() == (
                e.results_dir / "plot.png"
            ).read_bytes()
    families = {e.spec.family.value for e in entries.values()}
    for f in families:
        assert (site.dir / "catalogue" / f / "index.html").is_file(), f"no page for family {f}"
    assert (site.dir / "status" / "index.html").is_file()
    catalogue = (site.dir / "catalogue" / "index.html").read_text(encoding="utf-8")
    for eid in entries:
        assert f'href="../papers/{eid}/"' in catalogue, f"the catalogue does not link to {eid}"


def test_generation_is_deterministic_and_imports_no_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        from zoo import docs
        a, b = docs.generate(), docs.generate()
        assert a == b, "generate() differs between two calls"
        assert "torch" not in sys.modules, "generating the docs imported torch"
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


NASTY = 'Price | *Bold* $f$-Divergence <script>alert(1)</script> [x](y) _u_ `c` & "q": A \\ B'


def test_titles_are_escaped(zoo_root, docs_need) -> None:  # type: ignore[no-untyped-def]
    """A title full of Markdown and HTML renders literally, in a table and in a heading."""
    docs_need.modules("markdown", "pymdownx")
    import markdown

    from zoo import docs

    spec = {
        "id": "nasty",
        "title": NASTY,
        "family": "other",
        "kind": "theory",
        "listings": ["000"],
        "summary": "A summary long enough for the schema, with a | pipe, a <b>tag</b> and $x$ inside it.",
        "central_claim": "Claims *something* | with markup.",
        "small_scale": {"level": "no", "how": "Not at small scale: " + NASTY},
        "related": ["adam", "missing_entry"],
    }
    zoo_root("\n".join(f"{k}: {json.dumps(v)}" for k, v in spec.items()) + "\n", name="nasty")
    zoo_root("adam")
    entries = load_all()
    assert entries["nasty"].spec.title == NASTY
    md = markdown.Markdown(extensions=["tables", "md_in_html", "attr_list", "admonition", "pymdownx.details"])
    pages = {
        "catalogue": docs.catalogue_page(entries),
        "family": docs.family_page("other", entries),
        "paper": docs.paper_page(entries["nasty"], entries),
    }
    for name, page in pages.items():
        front, body = re.match(r"(?s)^---\n(.*?)\n---\n(.*)$", page).groups()  # mkdocs strips front matter
        if name == "paper":
            assert yaml.safe_load(front)["title"] == NASTY
        pages[name] = body
        out = md.reset().convert(body)
        assert "<script>" not in out and "<b>" not in out, name
        assert "<em>Bold</em>" not in out and "<em>u</em>" not in out and "<code>c</code>" not in out, name
        texts = [
            html.unescape(re.sub(r"<[^>]+>", "", m)) for m in re.findall(r"<(?:a|h1)\b[^>]*>(.*?)</(?:a|h1)>", out)
        ]
        assert NASTY in texts, f"{name}: title not rendered literally in:\n{out[:3000]}"
    catalogue = md.reset().convert(pages["catalogue"])
    assert catalogue.count("<tr>") == 1 + 2  # header + two entries: the `|` did not split a row
    assert catalogue.count("<td>") == 2 * 5  # paper, family, kind, status, small scale
    # The small-scale level is a badge, its `how` the badge's tooltip, both literal.
    tips = [html.unescape(t) for t in re.findall(r'zoo-badge--scale-no zoo-scale" title="([^"]*)"', catalogue)]
    assert tips == ["Not at small scale: " + NASTY]
    paper = md.reset().convert(pages["paper"])
    scale = paper.split("At small scale</h2>")[1].split("<h2")[0]
    assert "zoo-badge--scale-no" in scale
    assert "Not at small scale: " + NASTY in html.unescape(re.sub(r"<[^>]+>", "", scale))


def _record(root: Path, entry_id: str, plot: bytes | None = b"\x89PNG fake") -> dict:
    """Synthetic recorded results for ``entry_id`` under ``root/reproductions`` (no experiment run)."""
    from zoo.catalogue import get
    from zoo.results import Metrics, Provenance, evaluate_claims, write_run_dir

    spec = get(entry_id).spec
    seeds = [0, 1, 2]
    arms = {
        a: {m: [70.0 + i + (a.startswith("pdp")) * 0.5 for i in seeds] for m in spec.reproduction.metrics}
        for a in spec.reproduction.arms
    }
    metrics = Metrics(entry=entry_id, seeds=seeds, arms=arms)
    verdicts = evaluate_claims(spec, metrics)
    prov = Provenance(
        entry=entry_id,
        commit="0123456789abcdef",
        dirty=False,
        device="cpu",
        device_name="Test CPU <8 cores>",
        python="3.11",
        torch="2.x",
        packages={},
        seeds=seeds,
        quick=False,
        overrides=[],
        config={},
        started="2026-01-02T03:04:05+00:00",
        wall_time_s=12.5,
        host="h",
        command=f"python -m zoo.reproduce {entry_id}",
    )
    files = {"metrics.json": metrics, "verdicts.json": verdicts, "provenance.json": prov, "curves.json": {}}
    if plot is not None:
        files["plot.png"] = plot
    write_run_dir(root / "reproductions" / entry_id, files)
    return {k: v.verdict for k, v in verdicts.claims.items()}


def test_paper_page_with_and_without_results(zoo_root) -> None:  # type: ignore[no-untyped-def]
    """A recorded run shows verdicts, statistics, plot and provenance; none, or a broken one, does not crash."""
    from zoo import docs
    from zoo.catalogue import _load_all_cached

    zoo_root("pdp_pruning")
    root = zoo_root.root
    entries = load_all()
    page = docs.paper_page(entries["pdp_pruning"], entries)
    assert "No recorded run yet" in page and "python -m zoo.reproduce pdp_pruning" in page
    assert "![" not in page
    assert "zoo.pruning.pdp.PDP" in page and "from zoo.pruning import PDP" in page

    verdicts = _record(root, "pdp_pruning")
    _load_all_cached.cache_clear()
    entries = load_all()
    assert entries["pdp_pruning"].status == "reproduced"
    files = docs.generate(entries)
    page = files["papers/pdp_pruning.md"]
    for cid, verdict in verdicts.items():
        section = page.split(f"#claim-{cid} }}")[1].split("\n### ")[0]
        assert f"zoo-badge--{verdict}" in section, cid
        assert "n = 3 seeds" in section and "0: " in section and "2: " in section
    assert files["assets/plots/pdp_pruning.png"] == b"\x89PNG fake"
    assert "../assets/plots/pdp_pruning.png" in page
    assert "Test CPU &lt;8 cores&gt;" in page and "12.5 s" in page and "`0123456789`" in page
    assert (
        "reproduced" in files["catalogue/index.md"] and "verified" in files["status.md"] + files["catalogue/index.md"]
    )

    (root / "reproductions" / "pdp_pruning" / "verdicts.json").write_text("{not json")
    (root / "reproductions" / "pdp_pruning" / "plot.png").unlink()
    files = docs.generate(load_all())
    page = files["papers/pdp_pruning.md"]
    assert "Recorded results are unreadable" in page and "verdicts.json" in page
    assert "assets/plots/pdp_pruning.png" not in files
