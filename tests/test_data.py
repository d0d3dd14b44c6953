"""``python -m zoo.data prepare`` is deterministic: a fresh build reproduces ``data.dvc``'s hash."""

from __future__ import annotations

import yaml

from zoo.data import prepare
from zoo.pipeline import md5_path
from tests.conftest import REPO


def test_fresh_prepare_matches_data_dvc(tmp_path):
    prepare(tmp_path / "data")
    recorded = yaml.safe_load((REPO / "data.dvc").read_text())["outs"][0]
    assert recorded["path"] == "data"
    assert md5_path(tmp_path / "data") == recorded["md5"]
