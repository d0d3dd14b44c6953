"""swap_nas wiring: every arm ranks the same pool; the quick run yields every declared metric."""

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.experiments.swap_nas import EXPERIMENT, PROXIES
from zoo.harness import JobContext


def test_quick_run_metrics(tmp_path):
    m = quick_run_metrics("swap_nas", tmp_path)
    assert set(PROXIES) <= set(m)
    # one pool per seed: every arm reports the same pool accuracies
    assert len({m[a]["pool_mean_acc"][0] for a in PROXIES}) == 1


def _pool(cfg, seed=0):
    env = quick_env()
    base = EXPERIMENT.setup(cfg, env)
    return base, EXPERIMENT.per_seed(cfg, seed, env, base, None)


def test_arms_share_pool_and_options_matter():
    cfg, _ = spec_budget("swap_nas")
    base, pool = _pool(cfg)
    ctx = JobContext(quick_env(), base, None, pool)
    out = {a: EXPERIMENT.job(cfg, a, 0, ctx).metrics for a in PROXIES}
    assert len({o["pool_max_acc"] for o in out.values()}) == 1
    assert len(pool["swap"]) == cfg["n_archs"]
    # the score batch size is an option that changes SWAP (more samples -> more distinct patterns)
    _, pool2 = _pool({**cfg, "score_batch": 4})
    assert pool2["swap"] != pool["swap"]
    assert pool2["test_acc"] == pool["test_acc"]  # training does not depend on the score batch
    _, pool3 = _pool({**cfg, "epochs": 2})
    assert pool3["test_acc"] != pool["test_acc"]
