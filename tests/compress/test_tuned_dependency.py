"""An entry that resolves ``lr: tuned`` from the compression baselines depends on their file (DVC),
so a new tuning makes it stale; an entry with a fixed learning rate does not."""

from __future__ import annotations

from pathlib import Path

from zoo.catalogue import get, load_all
from zoo.pipeline import SHARED_STAGES, active_shared_stages, dvc_yaml, stage_deps

REPO = Path(__file__).resolve().parents[2]
TUNED = "reproductions/_baselines/compress/tuned.json"


def _asks_tuned(node) -> bool:
    if isinstance(node, dict):
        return any((k == "lr" and v == "tuned") or _asks_tuned(v) for k, v in node.items())
    return isinstance(node, list) and any(_asks_tuned(v) for v in node)


def test_every_recorded_entry_that_asks_for_the_tuned_lr_depends_on_the_tuned_file():
    users = [e for e in load_all().values() if e.spec.reproduction and _asks_tuned(e.spec.reproduction.config)]
    assert len(users) >= 9, "the compression entries read their learning rate from the tuned baselines"
    stages = dvc_yaml()["stages"]
    assert "baselines_compress" in stages and SHARED_STAGES["baselines_compress"] in active_shared_stages()
    for e in users:
        assert TUNED in stage_deps(e), e.id
        assert TUNED in stages[e.id]["deps"], e.id


def test_a_fixed_lr_entry_does_not_depend_on_the_tuned_file(zoo_root):
    src = (REPO / "specs" / "lobster_sensitivity_regularization.yaml").read_text()
    assert "lr: tuned" in src
    zoo_root(src.replace("id: lobster_sensitivity_regularization", "id: tuned_entry"), "tuned_entry")
    zoo_root(src.replace("lr: tuned", "lr: 0.01").replace("id: lobster_sensitivity_regularization", "id: fixed_entry"),
             "fixed_entry")
    assert TUNED in stage_deps(get("tuned_entry"))
    assert TUNED not in stage_deps(get("fixed_entry"))
