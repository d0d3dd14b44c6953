"""The README's two set-up commands are what CI and the docs home page run and show."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_two_commands():
    run, test = _commands()
    assert run.endswith("python -m zoo.reproduce pdp_pruning")
    assert test.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci


def test_docs_home_shows_the_same_commands():
    home = (REPO / "docs" / "index.md").read_text()
    for cmd in _commands():
        assert cmd in home
