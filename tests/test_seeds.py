"""The seed listings import: a pinned count of unique papers, each with exactly one spec."""

from __future__ import annotations

import collections

from zoo.catalogue import load_all
from zoo.seeds import default_seeds_dir, normalise_title, parse_listing, unique_papers

UNIQUE_PAPERS = 315


def test_listing_counts():
    counts = {f.name[:3]: len(parse_listing(f)) for f in sorted(default_seeds_dir().glob("*.txt"))}
    assert counts == {"000": 224, "001": 27, "002": 62, "003": 27}


def test_unique_paper_count_is_pinned():
    papers = unique_papers()
    assert len(papers) == UNIQUE_PAPERS
    assert all(p.title and len(p.abstract) > 300 for p in papers)
    assert sum(len(p.listings) > 1 for p in papers) == 23  # listed more than once


def test_every_unique_paper_has_exactly_one_spec_with_its_listings():
    by_title = collections.defaultdict(list)
    for e in load_all().values():
        by_title[normalise_title(e.spec.title)].append(e)
    for p in unique_papers():
        entries = by_title.get(normalise_title(p.title), [])
        assert len(entries) == 1, f"{p.title!r} has {len(entries)} specs"
        assert entries[0].spec.title == p.title, f"title of {entries[0].id} must be exact"
        assert sorted(entries[0].spec.listings) == sorted(p.listings), entries[0].id
    assert len(load_all()) == UNIQUE_PAPERS
