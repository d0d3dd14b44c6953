"""The experiment harness: stages, seeding, parallel workers, derived arms and merging."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from zoo.harness import Env, Experiment, JobOutput, Table, assemble, mean_band, run

CALLS: list[str] = []


def _setup(cfg, env):
    return {"x": torch.linspace(0, 1, 8)}


def _shared(cfg, env, setup):
    # Drawn under the harness's shared seed: identical in every process.
    return torch.randn(3)


def _per_seed(cfg, seed, env, setup, shared):
    CALLS.append(f"seed{seed}")
    return torch.randn(4)  # seeded by the seed: the same for every arm of that seed


def _job(cfg, arm, seed, ctx):
    w = torch.randn(8)  # the "initialisation": drawn after the harness seeded this job by its seed
    scale = {"a": 1.0, "b": 2.0, "grid_1": 0.5, "grid_2": 3.0}[arm]
    val = float((w * ctx.setup["x"]).sum() * scale + ctx.shared.sum() + ctx.seed_state.sum())
    return JobOutput(metrics={"acc": val, "val_acc": -abs(scale - 2.5), "init": float(w[0])},
                     series={"curve": [val, val + 1.0]})


def _derive(cfg, table: Table):
    best = max(["grid_1", "grid_2"], key=lambda a: sum(table.metric(a, "val_acc")))
    return {"grid_best": {"acc": table.metric(best, "acc")}}


def _curves(cfg, table: Table):
    from zoo.experiment import Curve

    mean, band = mean_band(table.series("a", "curve"))
    return [Curve(title="a", x=[0, 1], series={"a": mean}, bands={"a": band})]


TOY = Experiment(name="toy", arms=lambda cfg: ["a", "b", "grid_1", "grid_2"], job=_job, setup=_setup,
                 shared=_shared, per_seed=_per_seed, derive=_derive, curves=_curves)


@pytest.fixture
def env(tmp_path):
    return Env(device="cpu", data_dir=tmp_path)


def test_results_do_not_depend_on_the_number_of_workers(env):
    one = run(TOY, {}, [0, 1, 2], env, workers=1)
    two = run(TOY, {}, [0, 1, 2], env, workers=2)
    assert one.metrics == two.metrics
    assert [dataclasses.asdict(j) for j in one.jobs] == [dataclasses.asdict(j) for j in two.jobs]


def test_every_arm_of_a_seed_shares_its_initialisation_and_seed_state(env):
    res = run(TOY, {}, [0, 1], env, workers=1)
    inits = res.metrics["a"]["init"]
    assert res.metrics["b"]["init"] == inits and res.metrics["grid_1"]["init"] == inits
    assert inits[0] != inits[1], "seeds must differ"
    assert res.metrics["b"]["acc"] != res.metrics["a"]["acc"]


def test_per_seed_stage_runs_once_per_seed(env):
    CALLS.clear()
    run(TOY, {}, [0, 1, 2], env, workers=1)
    assert CALLS == ["seed0", "seed1", "seed2"]


def test_derived_arm_follows_validation(env):
    res = run(TOY, {}, [0, 1], env, workers=1)
    # grid_2 (scale 3.0) is closer to 2.5 than grid_1 (0.5): the best validation point.
    assert res.metrics["grid_best"]["acc"] == res.metrics["grid_2"]["acc"]


def test_split_jobs_merge_into_the_single_process_result(env):
    whole = run(TOY, {}, [0, 1, 2, 3], env, workers=1)
    part1 = run(TOY, {}, [0, 1], env, workers=1)
    part2 = run(TOY, {}, [2, 3], env, workers=2)
    merged = assemble(TOY, {}, [0, 1, 2, 3], part1.jobs + part2.jobs)
    assert merged.metrics == whole.metrics
    assert [dataclasses.asdict(c) for c in merged.curves] == [dataclasses.asdict(c) for c in whole.curves]


def test_missing_jobs_are_named(env):
    part = run(TOY, {}, [0], env, workers=1)
    with pytest.raises(ValueError, match=r"no result for jobs \[\('a', 1\)"):
        assemble(TOY, {}, [0, 1], part.jobs)


def test_curves_aggregate_over_seeds(env):
    res = run(TOY, {}, [0, 1, 2], env, workers=1)
    vals = res.metrics["a"]["acc"]
    c = res.curves[0]
    assert c.series["a"][0] == pytest.approx(sum(vals) / 3, rel=1e-5)
    lo, hi = c.bands["a"]
    assert lo == pytest.approx([min(vals), min(vals) + 1.0], rel=1e-5)
    assert hi == pytest.approx([max(vals), max(vals) + 1.0], rel=1e-5)


def test_a_job_must_return_a_job_output(env):
    bad = Experiment(name="bad", arms=lambda cfg: ["a"], job=lambda cfg, arm, seed, ctx: {"acc": 1.0})
    with pytest.raises(TypeError, match="not a JobOutput"):
        run(bad, {}, [0], env, workers=1)


BAD = Experiment(name="bad", arms=lambda cfg: ["a", "b"], job=lambda cfg, arm, seed, ctx: 1 / 0)


def test_a_crashing_job_raises_in_the_parent(env):
    with pytest.raises(ZeroDivisionError):
        run(BAD, {}, [0, 1], env, workers=2)
