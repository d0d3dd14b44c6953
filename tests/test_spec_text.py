"""The text of every spec: no hyphenated word broken by a folded YAML line; `related` ids that resolve.

A folded (``>-``) block joins its lines with a space, so a line that ends inside a hyphenated word
("low-" then "dimensional" on the next line) loads as "low- dimensional". A suspended hyphen is
legitimate before a conjunction ("first- and second-order", "pre- and post-training",
"L1- or L2-regularised"); anything else is a break.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from zoo.catalogue import load_all

# A word, a hyphen, one space, then a letter or digit: "low- dimensional", "Co- teaching".
# Allowed: the suspended hyphen of "first- and second-order", "two- or three-layer", "pre- to
# post-", "A- vs B-", "neither X- nor Y-".
BROKEN_HYPHEN = re.compile(r"\b\w+- (?!(?:and|or|nor|to|vs)\b)\w+")


def string_fields(obj: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted field path, text) for every string inside a spec, models, dicts and lists included."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from string_fields(getattr(obj, name), f"{path}.{name}" if path else name)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from string_fields(value, f"{path}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from string_fields(value, f"{path}.{i}")
    elif isinstance(obj, str):
        yield path, obj


def broken_hyphens(text: str) -> list[str]:
    return [m.group(0) for m in BROKEN_HYPHEN.finditer(text)]


def test_pattern_separates_breaks_from_suspended_hyphens():
    for broken in ("low- dimensional", "Co- teaching", "cross- entropy", "GAMP- RIE", "loss-gradient- norm"):
        assert broken_hyphens(f"a {broken} b"), broken
    for fine in (
        "first- and second-order baselines",
        "pre- and post-training",
        "L1- or L2-regularised",
        "CVaR- or superquantile-regularised",
        "a low-dimensional subspace",
        "a b - c",
        "dimension d - 1",
    ):
        assert not broken_hyphens(fine), fine


def test_no_hyphenated_word_broken_by_a_line_fold():
    bad = [
        f"{entry.file.name}: {field}: {hit!r}"
        for entry in load_all().values()
        for field, text in string_fields(entry.spec)
        for hit in broken_hyphens(text)
    ]
    assert not bad, (
        f"{len(bad)} hyphenated word(s) broken by a folded line (a YAML `>-` block joins lines with a "
        "space; keep the word on one line):\n" + "\n".join(sorted(bad))
    )


def test_related_ids_exist_and_are_symmetric():
    """`related` names only catalogued ids, never the paper itself or twice, and every link goes both ways.

    A relation is a shared method, baseline or question, which holds in both directions; a one-way
    entry is a link someone forgot to add on the other page.
    """
    entries = load_all()
    problems = []
    for sid, entry in sorted(entries.items()):
        rel = entry.spec.related
        if len(rel) != len(set(rel)):
            problems.append(f"{entry.file.name}: related: {rel} lists an id twice")
        for other in rel:
            if other == sid:
                problems.append(f"{entry.file.name}: related: lists the paper itself")
            elif other not in entries:
                problems.append(f"{entry.file.name}: related: {other!r} is not a catalogued id")
            elif sid not in entries[other].spec.related:
                problems.append(f"{entry.file.name}: related: {other!r}, but specs/{other}.yaml does not list {sid!r}")
    assert not problems, "\n".join(problems)
