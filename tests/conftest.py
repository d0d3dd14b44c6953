"""Shared fixtures: a throw-away copy of the repository root for tests that write or break specs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """As the runner does on CPU: the zoo's tensors are tiny, and spare intra-op threads only spin."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def float64_default():
    """torch's default dtype float64 for one test (formula checks), restored afterwards.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("float64_default")``.
    """
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="session", autouse=True)
def prepared_data() -> Path:
    """``data/`` exists (built offline and deterministically) before any test reads it."""
    from zoo.data import prepare

    if not all((REPO / "data" / name / "meta.json").is_file() for name in ("digits", "mnist5k", "mnist1d")):
        prepare(REPO / "data")
    return REPO / "data"


def _copy_shared_baselines(entry_id: str, root: Path) -> None:
    """Copy into ``root`` the family baselines (``reproductions/_baselines/...``) that ``entry_id``'s
    DVC stage depends on: the entry reads them (a tuned learning rate), and a copy keeps what a
    test writes away from the repository's record. Entries without such a dependency get none, so
    a test can still assert that a run wrote nothing under ``reproductions/``."""
    import yaml

    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].get(entry_id, {})
    for dep in stage.get("deps", []):
        if dep.startswith("reproductions/_baselines/"):
            dest = root / dep
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / dep, dest)


@pytest.fixture
def zoo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A repo root in ``tmp_path``: ``zoo/`` and ``data/`` linked, ``specs/`` empty, ``ZOO_ROOT`` set.

    Returns a function ``add_spec(id_or_text, name=None)`` that copies a real spec (by id) or
    writes the given YAML text into the temporary ``specs/``.
    """
    from zoo import catalogue

    (tmp_path / "specs").mkdir()
    (tmp_path / "zoo").symlink_to(REPO / "zoo")
    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.setenv("ZOO_ROOT", str(tmp_path))
    catalogue._load_all_cached.cache_clear()

    def add_spec(source: str, name: str | None = None) -> Path:
        if "\n" in source:
            dest = tmp_path / "specs" / f"{name}.yaml"
            dest.write_text(source)
        else:
            dest = tmp_path / "specs" / f"{name or source}.yaml"
            shutil.copy(REPO / "specs" / f"{source}.yaml", dest)
            _copy_shared_baselines(source, tmp_path)
        catalogue._load_all_cached.cache_clear()
        return dest

    add_spec.root = tmp_path  # type: ignore[attr-defined]
    yield add_spec
    catalogue._load_all_cached.cache_clear()
