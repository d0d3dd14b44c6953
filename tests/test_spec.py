"""The spec schema: every real spec validates; each kind of bad input is a one-line error."""

from __future__ import annotations

import re

import pytest
import yaml

from zoo.catalogue import SpecError, load_spec
from tests.conftest import REPO

GOOD = (REPO / "specs" / "pdp_pruning.yaml").read_text()
NEXT = len(yaml.safe_load(GOOD)["claims"])  # the index a claim appended to GOOD gets


def _broken(zoo_root, mutate) -> SpecError:
    raw = yaml.safe_load(GOOD)
    mutate(raw)
    path = zoo_root(yaml.safe_dump(raw, sort_keys=False) + "\n", name="pdp_pruning")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert "specs/pdp_pruning.yaml" in msg
    return e.value


def test_every_spec_validates():
    files = sorted((REPO / "specs").glob("*.yaml"))
    assert files
    for f in files:
        assert load_spec(f).id == f.stem


def test_yaml_syntax_error_names_line(zoo_root):
    path = zoo_root("id: pdp_pruning\ntitle: [unclosed\nfamily: pruning\n", name="pdp_pruning")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert "YAML syntax error" in str(e.value) and "line" in e.value.field


def test_unknown_key_lists_allowed(zoo_root):
    err = _broken(zoo_root, lambda r: r.update(sumary="typo"))
    assert err.field == "sumary" and "unknown key" in err.message and "summary" in err.message


def test_unknown_nested_key(zoo_root):
    err = _broken(zoo_root, lambda r: r["claims"][0]["condition"].update(treshold=1))
    assert err.field == "claims.0.condition.treshold" and "threshold" in err.message


def test_wrong_type(zoo_root):
    err = _broken(zoo_root, lambda r: r["reproduction"].update(seeds="zero"))
    assert err.field == "reproduction.seeds"


def test_bad_enum(zoo_root):
    err = _broken(zoo_root, lambda r: r.update(family="prunning"))
    assert err.field == "family" and "prunning" in err.message


def test_claim_on_unproduced_metric(zoo_root):
    err = _broken(zoo_root, lambda r: r["claims"][0]["condition"].update(metric="pdp_u90.top5"))
    assert err.field.startswith("claims") and "not produced" in err.message


def test_import_path_that_does_not_resolve(zoo_root):
    err = _broken(zoo_root, lambda r: r["implementation"].append("zoo.pruning.pdp:NoSuchThing"))
    assert err.field == "implementation.4" and "NoSuchThing" in err.message


def test_experiment_module_missing(zoo_root):
    err = _broken(zoo_root, lambda r: r["reproduction"].update(experiment="zoo.experiments.nope:run"))
    assert err.field == "reproduction.experiment"


def test_missing_required_field(zoo_root):
    err = _broken(zoo_root, lambda r: r.pop("title"))
    assert err.field == "title" and "missing" in err.message


def test_within_needs_tolerance(zoo_root):
    err = _broken(zoo_root, lambda r: r["claims"][0]["condition"].update(op="within"))
    assert "tolerance" in err.message


def test_id_must_match_file(zoo_root):
    raw = yaml.safe_load(GOOD)
    path = zoo_root(yaml.safe_dump(raw), name="other_name")
    with pytest.raises(SpecError, match="must match the file name"):
        load_spec(path)


def _new_claim(**kw):
    c = {"id": "new_claim", "paper": "p", "statement": "s",
         "condition": {"metric": "pdp_u90.test_acc", "minus": "gmp_u90.test_acc", "op": ">=", "threshold": 0.0}}
    c.update(kw)
    return c


def test_student_t_is_the_default_rule():
    from zoo.spec import Claim

    c = Claim.model_validate(_new_claim())
    assert c.verdict_rule.rule == "student_t" and c.verdict_rule.confidence == 0.95 and c.verdict_rule.k is None


def test_student_t_needs_five_seeds(zoo_root):
    def mutate(r):
        r["reproduction"]["seeds"] = [0, 1, 2]
        r["claims"].append(_new_claim())

    err = _broken(zoo_root, mutate)
    assert re.fullmatch(r"claims\.\d+\.verdict_rule", err.field) and "at least 5 seeds" in err.message


def test_k_does_not_belong_to_student_t(zoo_root):
    err = _broken(zoo_root, lambda r: r["claims"].append(_new_claim(verdict_rule={"rule": "student_t", "k": 2})))
    assert f"claims.{NEXT}.verdict_rule" in err.field and "confidence" in err.message


def test_precondition_on_unknown_metric(zoo_root):
    req = [{"metric": "dense.top5", "op": "<=", "threshold": 99.0}]
    err = _broken(zoo_root, lambda r: r["claims"].append(_new_claim(requires=req)))
    assert err.field == f"claims.{NEXT}.requires.0" and "'dense.top5' is not produced" in err.message


def test_supersede_must_name_another_claim(zoo_root):
    def mutate(r):
        r["claims"][0]["superseded"] = {"by": "no_such_claim", "reason": "a reason long enough."}

    err = _broken(zoo_root, mutate)
    assert err.field == "claims.0.superseded.by" and "no_such_claim" in err.message


def test_supersede_needs_a_reason(zoo_root):
    def mutate(r):
        r["claims"].append(_new_claim())
        r["claims"][0]["superseded"] = {"by": "new_claim"}

    err = _broken(zoo_root, mutate)
    assert err.field == "claims.0.superseded.reason" and "missing" in err.message


def test_small_scale_is_typed(zoo_root):
    err = _broken(zoo_root, lambda r: r.update(small_scale={"level": "maybe", "how": "toy"}))
    assert err.field == "small_scale.level"
    err = _broken(zoo_root, lambda r: r.update(small_scale="Yes: prose"))
    assert err.field == "small_scale"
