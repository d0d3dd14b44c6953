"""A wheel built from the repository carries the catalogue: specs and recorded results, no checkout.

The wheel is built from a copy of the checkout's files (tracked and untracked, not ignored), so
that setuptools' ``build/`` and ``*.egg-info`` land in the copy, never in the repository, and is
installed with ``pip install --target``; the checks run it in a subprocess outside the repository,
with no ``ZOO_ROOT``, so nothing can fall back to the checkout's ``specs/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from tests.conftest import REPO


def _checkout_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [rel for rel in out.split("\0") if rel and (REPO / rel).is_file()]  # skip tracked-but-deleted files


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``--target`` folder a wheel built from the repository was installed into."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist, site = tmp / "src", tmp / "dist", tmp / "site"
    for rel in _checkout_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src)], check=True)
    (wheel,) = dist.glob("zoo-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True)
    return site


def _run_installed(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python <args>`` seeing only the installed wheel: no ZOO_ROOT, cwd outside the repository."""
    env = {k: v for k, v in os.environ.items() if k != "ZOO_ROOT"}
    env["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, *args], cwd=site.parent, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"python {' '.join(args)} failed with the installed wheel: {proc.stderr.strip()}"
    return proc


def _repo_ids() -> list[str]:
    return sorted(p.stem for p in (REPO / "specs").glob("*.yaml"))


def test_catalogue_lists_every_entry(site: Path) -> None:
    proc = _run_installed(site, "-m", "zoo.catalogue")
    ids = _repo_ids()
    assert proc.stderr.strip().splitlines()[-1] == f"{len(ids)} entries", proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ids


def test_get_reads_the_packaged_record(site: Path) -> None:
    code = (
        "import json, zoo, zoo.catalogue as c\n"
        "e = zoo.get('pdp_pruning')\n"
        "print(json.dumps({'zoo': zoo.__file__, 'data_root': str(c.data_root()), 'spec': str(e.file),\n"
        "                  'status': e.status, 'verdicts': e.verdict_counts()}))\n"
    )
    got = json.loads(_run_installed(site, "-c", code).stdout)
    # Served by the wheel, not by the editable install of the checkout.
    assert Path(got["zoo"]).is_relative_to(site) and Path(got["spec"]).is_relative_to(site), got
    assert Path(got["data_root"]) == site / "zoo" / "_packaged"
    assert got["status"] == "reproduced"
    assert got["verdicts"] == zoo.get("pdp_pruning").verdict_counts()  # this process reads the checkout


def test_json_listing_matches_the_checkout(site: Path) -> None:
    """Every entry's status and recorded verdicts are the same from the wheel as from the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "ZOO_ROOT"}
    here = subprocess.run(
        [sys.executable, "-m", "zoo.catalogue", "--json"], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(_run_installed(site, "-m", "zoo.catalogue", "--json").stdout) == json.loads(here.stdout)


def test_wheel_holds_every_module_spec_and_record(site: Path) -> None:
    def files(root: Path, patterns: tuple[str, ...]) -> set[str]:
        return {p.relative_to(root).as_posix() for pat in patterns for p in root.glob(pat) if "__pycache__" not in p.parts}

    missing = files(REPO / "zoo", ("**/*.py",)) - files(site / "zoo", ("**/*.py",))
    assert not missing, f"zoo/{sorted(missing)[0]}: not in the wheel; add its package to [tool.setuptools] packages in pyproject.toml"
    packaged = site / "zoo" / "_packaged"
    for folder, patterns in (("specs", ("*.yaml",)), ("reproductions", ("**/*.json", "**/*.png"))):
        missing = files(REPO / folder, patterns) - files(packaged / folder, patterns)
        assert not missing, f"{folder}/{sorted(missing)[0]}: not in the wheel; fix [tool.setuptools.package-data] in pyproject.toml"
