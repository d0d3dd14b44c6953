"""The documentation site, built once per test session with ``mkdocs build --strict``.

The docs dependencies are the ``docs`` extra; without them the docs tests skip, unless
``ZOO_REQUIRE_BROWSER=1`` (CI), where a missing piece is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def required() -> bool:
    """Whether a missing docs dependency or browser fails the tests instead of skipping them."""
    return os.environ.get("ZOO_REQUIRE_BROWSER", "") == "1"


def missing(reason: str) -> None:
    """Fail (under ``ZOO_REQUIRE_BROWSER=1``) or skip, with ``reason``."""
    if required():
        pytest.fail(f"{reason} (ZOO_REQUIRE_BROWSER=1, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def need_modules(*names: str) -> None:
    for name in names:
        if importlib.util.find_spec(name) is None:
            missing(f'{name} is not installed; run `pip install -e ".[docs]"`')


@pytest.fixture(scope="session")
def docs_need():
    """``docs_need.modules(*names)`` and ``docs_need.missing(reason)``: skip, or fail in CI."""

    class Need:
        modules = staticmethod(need_modules)
        missing = staticmethod(missing)

    return Need


@dataclass
class Site:
    dir: Path
    output: str
    seconds: float
    returncode: int


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """``mkdocs build --strict`` of the whole catalogue into a temporary folder."""
    need_modules("mkdocs", "material", "mkdocs_gen_files", "mkdocstrings", "mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("site") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(out)],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - t0
    return Site(out, proc.stdout + proc.stderr, seconds, proc.returncode)


@pytest.fixture(scope="session")
def site(built_site: Site) -> Site:
    """The built site; fails with mkdocs' output when the strict build did not pass."""
    assert built_site.returncode == 0, f"mkdocs build --strict failed:\n{built_site.output[-6000:]}"
    return built_site
