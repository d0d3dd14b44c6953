"""The two layers stay apart: implementations never import the registry; the registry never imports torch."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

LIBRARY = ["optim", "losses", "pruning", "diffusion", "theory", "training", "workloads", "learning_rules", "compress",
           "quant", "nas", "layers"]
REGISTRY = {"zoo.catalogue", "zoo.spec", "zoo.reproduce", "zoo.status", "zoo.results", "zoo.pipeline", "zoo.docs", "zoo.experiment",
            "zoo.harness", "zoo.history"}


def _imports(path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


@pytest.mark.parametrize("package", LIBRARY)
def test_library_never_imports_the_registry(package):
    for f in (REPO / "zoo" / package).rglob("*.py"):
        bad = _imports(f) & REGISTRY
        assert not bad, f"{f.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(REGISTRY - {"zoo.reproduce"}))
def test_registry_never_imports_torch_at_module_level(module):
    f = REPO / (module.replace(".", "/") + ".py")
    tree = ast.parse(f.read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
    assert "torch" not in top, module
