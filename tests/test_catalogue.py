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


@pytest.mark.parametrize("module", ["zoo.catalogue", "zoo.status"])
def test_commands_never_import_torch(module):
    """The commands with a start-up budget, run as a user runs them (``main`` included)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", module], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr.splitlines()[-1]
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "zoo.spec" in imported, "no import list: did -X importtime stop writing to stderr?"
    assert "torch" not in imported, f"python -m {module} imports torch"


def test_spec_yaml_loads_as_safe_load_does():
    """libyaml's parser (used when PyYAML has it, for start-up time) reads every spec exactly as PyYAML's own."""
    import yaml

    from zoo.catalogue import _YamlLoader, load_yaml

    if yaml.__with_libyaml__:
        assert _YamlLoader is yaml.CSafeLoader
    for f in sorted((REPO / "specs").glob("*.yaml")):
        text = f.read_text(encoding="utf-8")
        assert load_yaml(text) == yaml.safe_load(text), f"{f.name}: libyaml and PyYAML disagree"
