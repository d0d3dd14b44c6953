"""robot_training_free_nas wiring: the arms search the same pool; the budget option matters."""

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.experiments.robot_training_free_nas import EXPERIMENT, METRICS
from zoo.harness import JobContext


def test_quick_run_metrics(tmp_path):
    m = quick_run_metrics("robot_training_free_nas", tmp_path)
    assert len({m[a]["pool_max_acc"][0] for a in ("robot", "random", *METRICS)}) == 1
    assert all(v >= 0 for a in m for v in m[a]["regret"])


def test_budget_changes_the_result():
    cfg, _ = spec_budget("robot_training_free_nas")
    env = quick_env()
    base = EXPERIMENT.setup(cfg, env)
    pool = EXPERIMENT.per_seed(cfg, 0, env, base, None)
    ctx = JobContext(env, base, None, pool)
    full = {"budget": len(pool["val_acc"]), "bo_iters": 1}
    # querying the whole pool finds its best-validation architecture, whatever the metric
    r = [EXPERIMENT.job({**cfg, **full}, a, 0, ctx).metrics for a in ("robot", "snip", "random")]
    assert len({x["test_acc"] for x in r}) == 1
    one = EXPERIMENT.job({**cfg, "budget": 1, "bo_iters": 1}, "snip", 0, ctx).metrics
    assert one["regret"] >= r[0]["regret"]
