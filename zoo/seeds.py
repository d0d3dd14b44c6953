"""Parse the seed listings (``specs/seeds/*.txt``, copied verbatim from ``shared/seeds``) into unique papers.

The listings are text scraped from Hugging Face "Daily Papers" pages. Two layouts occur:

* listing 000: a header, then ``Subscribe<first title>``, then alternating title / abstract lines;
* listings 001-003: a header, then blocks ``title``, ``abstract``, optionally ``• N authors``,
  ``·`` and a publication date such as ``Aug 7, 2024`` (or ``Mar 19`` for the current year).

Papers are de-duplicated across listings by a normalised title. This module imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SeedPaper", "parse_listing", "unique_papers", "normalise_title", "default_seeds_dir"]

_HEADER = {
    "new",
    "get trending papers in your email inbox once a day!",
    "get trending papers in your email inbox!",
    "subscribe",
    "daily papers",
    "byak and the research community",
}
_AUTHORS = re.compile(r"^•\s*(\d+)\s+authors?$")
_DATE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}(, \d{4})?$")  # the year is omitted for this year
_HEADER_DAY = re.compile(r"^[A-Z][a-z]{2} \d{1,2}$")


@dataclass
class SeedPaper:
    """One paper as it appears in one or more listings."""

    title: str
    abstract: str
    listings: list[str] = field(default_factory=list)
    authors: int | None = None
    date: str | None = None


def normalise_title(title: str) -> str:
    """Lower-case, collapse whitespace and drop punctuation, for de-duplication."""
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


def default_seeds_dir() -> Path:
    """``specs/seeds/`` (the listings, vendored verbatim), overridable with ``ZOO_SEEDS_DIR``."""
    import os

    env = os.environ.get("ZOO_SEEDS_DIR")
    if env:
        return Path(env)
    from zoo.catalogue import repo_root

    return repo_root() / "specs" / "seeds"


def listing_id(path: Path) -> str:
    """``000_39310e92d8b0432e.txt`` -> ``"000"``."""
    return path.name.split("_", 1)[0]


def parse_listing(path: Path) -> list[SeedPaper]:
    """Parse one listing file into papers, in listing order."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln]
    lid = listing_id(path)
    # Drop the page header; listing 000 glues the first title onto "Subscribe".
    body: list[str] = []
    in_header = True
    for ln in lines:
        if in_header:
            low = ln.lower()
            if low in _HEADER or _HEADER_DAY.match(ln):
                continue
            if low.startswith("subscribe") and len(ln) > len("subscribe"):
                ln = ln[len("subscribe"):]
            in_header = False
        body.append(ln)
    papers: list[SeedPaper] = []
    i = 0
    while i < len(body):
        if i + 1 >= len(body):
            raise ValueError(f"{path}: title {body[i]!r} has no abstract")
        paper = SeedPaper(title=body[i], abstract=body[i + 1], listings=[lid])
        i += 2
        if i < len(body) and (m := _AUTHORS.match(body[i])):
            paper.authors = int(m.group(1))
            i += 1
        if i < len(body) and body[i] == "·":
            i += 1
        if i < len(body) and _DATE.match(body[i]):
            paper.date = body[i]
            i += 1
        papers.append(paper)
    return papers


def unique_papers(seeds_dir: Path | None = None) -> list[SeedPaper]:
    """Every unique paper across all listings, first occurrence first; ``listings`` merged."""
    seeds_dir = seeds_dir or default_seeds_dir()
    files = sorted(seeds_dir.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no seed listings (*.txt) in {seeds_dir}; set ZOO_SEEDS_DIR")
    by_key: dict[str, SeedPaper] = {}
    for f in files:
        for p in parse_listing(f):
            key = normalise_title(p.title)
            if key in by_key:
                seen = by_key[key]
                for lid in p.listings:
                    if lid not in seen.listings:
                        seen.listings.append(lid)
                seen.authors = seen.authors or p.authors
                seen.date = seen.date or p.date
            else:
                by_key[key] = p
    return list(by_key.values())
