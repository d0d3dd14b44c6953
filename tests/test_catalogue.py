"""The catalogue API and CLI: fast, torch-free, filterable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import zoo
from zoo.catalogue import SpecError, get, list_entries, main
from tests.conftest import REPO


def test_get_and_lazy_resolve():
    e = zoo.get("pdp_pruning")
    assert e.spec.family.value == "pruning" and e.status in ("implemented", "reproduced")
    assert zoo.resolve(e.spec.implementation[0]).__name__ == "PDP"


def test_unknown_id_suggests():
    with pytest.raises(SpecError, match="did you mean pdp_pruning"):
        get("pdp_prunin")


def test_filters():
    opt = list_entries(family="optimizer")
    assert opt and all(e.spec.family.value == "optimizer" for e in opt)
    assert [e.id for e in list_entries(text="Parameter-free Differentiable")] == ["pdp_pruning"]
    assert all(e.status == "catalogued" for e in list_entries(status="catalogued"))


def test_cli_json(capsys):
    assert main(["--family", "pruning", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["id"] == "pdp_pruning" for r in rows)
    assert {"id", "title", "family", "kind", "status", "listings", "verdicts"} <= set(rows[0])


def test_catalogue_never_imports_torch():
    code = (
        "import sys, zoo, zoo.catalogue, zoo.status, zoo.pipeline, zoo.spec, zoo.results\n"
        "zoo.catalogue.load_all(); zoo.status.collect()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
