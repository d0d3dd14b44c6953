"""The built documentation site in a real browser: Debian's headless Chromium driven by Playwright.

The site is built with ``mkdocs build --strict`` (the session fixture ``site``), served on a free
localhost port, and checked the way a reader uses it: the catalogue lists every entry and filters
(by text, status and small-scale level), the search box finds PDP, and the PDP page shows its
claims table (linked to each claim and to Reading a verdict), its verdicts, history and plot. Screenshots go to
``test-artifacts/`` (gitignored).

Without Chromium (``apt-get install chromium``) or Playwright these tests skip, except under
``ZOO_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import functools
import http.server
import json
import math
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from zoo.catalogue import get, load_all, repo_root

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url(site) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The built site served over HTTP on a free localhost port."""
    handler = functools.partial(_Quiet, directory=str(site.dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(docs_need):  # type: ignore[no-untyped-def]
    docs_need.modules("playwright")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        docs_need.missing(f"no Chromium at {CHROMIUM}; install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as e:  # noqa: BLE001 (any launch failure means no usable browser)
        pw.stop()
        docs_need.missing(f"Chromium at {CHROMIUM} does not start under Playwright: {str(e).splitlines()[0]}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    """A fresh page; JavaScript errors on it fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def _screenshot(page, name: str, capsys: pytest.CaptureFixture[str], full_page: bool = False) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"docs-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    with capsys.disabled():
        print(f"\nscreenshot: {path}")
    return path


def test_catalogue_lists_every_entry(page, base_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    n = len(load_all())
    page.goto(base_url + "catalogue/")
    rows = page.locator("#zoo-catalogue tbody tr")
    assert rows.count() == n, f"the catalogue table has {rows.count()} rows for {n} specs"
    links = page.locator("#zoo-catalogue tbody tr td:first-child a")
    assert links.count() == n
    count = page.locator("#zoo-filter-count")
    assert count.inner_text() == f"{n} of {n} entries"

    # The filter box narrows the table to the PDP entry, and the status filter keeps it.
    page.locator("#zoo-filter").fill("pdp_pruning")
    visible = page.locator("#zoo-catalogue tbody tr:visible")
    assert visible.count() == 1
    assert "PDP" in visible.first.inner_text()
    assert count.inner_text() == f"1 of {n} entries"
    _screenshot(page, "catalogue-filtered", capsys)
    page.locator("#zoo-filter").fill("")
    page.locator("#zoo-filter-status").select_option("catalogued")
    n_cat = sum(1 for e in load_all().values() if e.status == "catalogued")
    assert page.locator("#zoo-catalogue tbody tr:visible").count() == n_cat
    page.locator("#zoo-filter-status").select_option("")
    assert page.locator("#zoo-catalogue tbody tr:visible").count() == n

    # The small-scale filter keeps exactly the entries of that level, and combines with the status one.
    entries = load_all().values()
    for level in ("yes", "partial", "no"):
        page.locator("#zoo-filter-scale").select_option(level)
        want = sum(1 for e in entries if e.spec.small_scale.level == level)
        assert page.locator("#zoo-catalogue tbody tr:visible").count() == want, level
        assert count.inner_text() == f"{want} of {n} entries"
    page.locator("#zoo-filter-scale").select_option("yes")
    page.locator("#zoo-filter-status").select_option("reproduced")
    want = sum(1 for e in entries if e.spec.small_scale.level == "yes" and e.status == "reproduced")
    assert page.locator("#zoo-catalogue tbody tr:visible").count() == want
    _screenshot(page, "catalogue-scale-filter", capsys)
    page.locator("#zoo-filter-status").select_option("")
    page.locator("#zoo-filter-scale").select_option("")
    assert page.locator("#zoo-catalogue tbody tr:visible").count() == n
    _screenshot(page, "catalogue", capsys)


def test_search_finds_pdp(page, base_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    page.goto(base_url)
    box = page.locator("input.md-search__input")
    box.click()
    box.press_sequentially("PDP", delay=50)
    hit = page.locator("a.md-search-result__link[href*='papers/pdp_pruning']").first
    hit.wait_for(state="visible")
    _screenshot(page, "search-pdp", capsys)
    hit.click()
    page.wait_for_url("**/papers/pdp_pruning/**")
    assert "PDP" in page.locator("article h1").first.inner_text()


def test_pdp_page_shows_verdicts_and_plot(page, base_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    results = repo_root() / "reproductions" / "pdp_pruning"
    if not results.is_dir():
        pytest.skip(f"{results} does not exist yet: the PDP run has not been recorded")
    entry = get("pdp_pruning")
    recorded = json.loads((results / "verdicts.json").read_text())["claims"]
    page.goto(base_url + "papers/pdp_pruning/")
    article = page.locator("article")
    for claim in entry.spec.claims:
        heading = article.locator(f"h3#claim-{claim.id}")
        assert heading.count() == 1, f"no section for claim {claim.id}"
    # Each claim's own section shows its recorded verdict.
    for claim in entry.spec.claims:
        if claim.active and claim.id in recorded:
            row = article.locator(f"h3#claim-{claim.id} + div.zoo-kv tr:has(td:first-child strong:text-is('Verdict'))")
            assert row.locator(".zoo-verdict").all_inner_texts() == [recorded[claim.id]["verdict"]], claim.id

    # The claims table, above the central claim: one row per claim, its verdict and its interval.
    table = article.locator(".zoo-claims table")
    assert table.count() == 1
    assert table.bounding_box()["y"] < article.locator("h2#central-claim").bounding_box()["y"]
    rows = table.locator("tbody tr")
    assert rows.count() == len(entry.spec.claims)
    for i, claim in enumerate(entry.spec.claims):
        row = rows.nth(i)
        assert row.locator(f"a[href='#claim-{claim.id}']").count() == 1, claim.id
        if claim.active and claim.id in recorded:
            v = recorded[claim.id]
            assert row.locator(".zoo-verdict").first.inner_text() == v["verdict"], claim.id
            cells = row.locator("td").all_inner_texts()
            assert cells[3] == str(v["n"]), cells
            m = re.match(r"^(\S+) \[(\S+), (\S+)\]", cells[2])
            assert m, f"{claim.id}: no `mean [low, high]` in {cells[2]!r}"
            for shown, key in zip(m.groups(), ("mean", "low", "high")):
                assert math.isclose(float(shown), v[key], rel_tol=1e-2, abs_tol=1e-2), (claim.id, key, shown)
        if not claim.active:
            assert row.locator("del a").count() == 1 and "superseded by" in row.inner_text(), claim.id
    table.scroll_into_view_if_needed()
    _screenshot(page, "pdp-claims", capsys)
    first = entry.spec.claims[0].id
    rows.first.locator(f"a[href='#claim-{first}']").click()
    page.wait_for_url(f"**#claim-{first}")
    assert article.locator(f"h3#claim-{first}").is_visible()

    history = article.locator(".zoo-history tbody tr")
    assert history.count() >= 1, "no verdict history"
    text = article.inner_text()
    assert "mean ± sem" in text and "Per seed" in text
    img = article.locator("img.zoo-plot")
    assert img.count() == 1
    img.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    assert img.evaluate("img => img.naturalWidth") > 0
    assert "python -m zoo.reproduce pdp_pruning" in text
    _screenshot(page, "pdp", capsys, full_page=True)

    # The claims table links to Reading a verdict, and each rule to its section there.
    page.locator(".zoo-claims + p a", has_text="Reading a verdict").click()
    page.wait_for_url("**/reading-a-verdict/")
    assert page.locator("article h1").first.inner_text().startswith("Reading a verdict")
    for anchor in ("student-t", "interval", "every-seed", "untestable", "superseded", "current-and-stale"):
        assert page.locator(f"article h2#{anchor}").count() == 1, anchor
    _screenshot(page, "reading-a-verdict", capsys, full_page=True)
