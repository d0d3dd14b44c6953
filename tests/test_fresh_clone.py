"""On a fresh clone the README's first command leaves the checkout clean and the record current.

The README's order is: run the flagship reproduction, then the tests. The first must write only
under ``runs/`` (and ``data/``, built offline), never the record, so the second finds the record
current. Here: a local clone of HEAD, the first command's reproduction, then ``git status`` and
the status check the test suite relies on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _readme_run_command() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)[0]


@pytest.mark.slow
def test_readme_first_command_then_tests_on_a_fresh_clone(tmp_path):
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                      text=True).stdout.strip():
        pytest.skip("the checkout has uncommitted changes; a clone would not hold them")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_ROOT",)}
    env["PYTHONPATH"] = str(clone)  # the clone's package, as `pip install -e .` there would give
    install, run = _readme_run_command().split(" && ")
    assert install == "pip install -e ." and run == "python -m zoo.reproduce pdp_pruning"
    res = subprocess.run([sys.executable, *run.split()[1:], "--no-progress"], cwd=clone, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "compared with the record: reproductions/pdp_pruning/" in res.stdout, res.stdout
    assert "results: runs/pdp_pruning/full-" in res.stdout
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status.strip() == "", f"the README's first command left the checkout dirty:\n{status}"
    # The README's second command: its session fixture builds the rest of data/, then the suite
    # asks `zoo.status --check` (as tests/test_status.py and CI do) whether every record is current.
    subprocess.run([sys.executable, "-m", "zoo.data", "prepare"], cwd=clone, env=env, check=True, capture_output=True)
    check = subprocess.run([sys.executable, "-m", "zoo.status", "--check"], cwd=clone, env=env, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
