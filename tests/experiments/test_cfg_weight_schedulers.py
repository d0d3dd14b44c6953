"""The CFG weight-scheduler experiment: arms share the seed's shared denoiser, noise stream and step
budget, and differ only in their schedule / weight / sampler; the schedule reaches the guider; the
Pareto gap (fd at matched class accuracy) is computed as documented; the quick budget runs and
produces every declared metric; the entry depends on the recorded shared denoisers."""

from __future__ import annotations

import math
import time

import pytest
import torch

from zoo.catalogue import get
from zoo.experiments import cfg_weight_schedulers as exp
from zoo.experiments.cfg_weight_schedulers import EXPERIMENT, arm_name, fd_at_matched_acc, parse_arm
from zoo.harness import JobContext, Table, JobRecord
from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget

ENTRY = "cfg_weight_schedulers"


class _DrawSpy:
    def __init__(self, monkeypatch):
        self.calls = []
        real = exp.draw

        def draw(model, recipe, domain, guider, spc, generator, **kw):
            state = generator.get_state().clone()
            self.calls.append({"model": model, "guider": guider, "spc": spc, "noise": state, **kw})
            return real(model, recipe, domain, guider, spc, generator, **kw)

        monkeypatch.setattr(exp, "draw", draw)


@pytest.fixture(scope="module")
def quick():
    cfg, seeds = spec_budget(ENTRY, quick=True)
    cfg = {**cfg, "domains": ["gmm"]}
    env = quick_env()
    setup = EXPERIMENT.setup(cfg, env)
    shared = EXPERIMENT.shared(cfg, env, setup)
    state = EXPERIMENT.per_seed(cfg, 0, env, setup, shared)
    return cfg, JobContext(env, setup, shared, state)


def test_arms_share_model_noise_and_budget_and_differ_in_the_schedule(quick, monkeypatch):
    cfg, ctx = quick
    spy = _DrawSpy(monkeypatch)
    names = [arm_name("gmm", s, sch, 2.0) for s in ("ddpm", "ddim") for sch in cfg["schedules"]]
    outs = {a: EXPERIMENT.job(cfg, a, 0, ctx) for a in names + ["gmm_ddpm_unguided"]}
    assert all(c["model"] is spy.calls[0]["model"] for c in spy.calls)
    assert all(torch.equal(c["noise"], spy.calls[0]["noise"]) for c in spy.calls)
    assert {c["steps"] for c in spy.calls} == {int(cfg["steps"])} and {c["spc"] for c in spy.calls} == {4}
    assert [c["sampler"] for c in spy.calls[:-1]] == [parse_arm(cfg, a)[1] for a in names]
    for c, a in zip(spy.calls, names):
        _, _, sch, w = parse_arm(cfg, a)
        assert c["guider"].w == w and c["guider"].schedule is exp.make_schedule(sch)
    assert spy.calls[-1]["guider"] is None
    # the schedule is an effective option: different schedules give different metrics
    fds = {a: outs[a].metrics["fd"] for a in names}
    assert len(set(round(v, 9) for v in fds.values())) > 1


def test_parse_arm_round_trips_and_rejects_unknown(quick):
    cfg, _ = quick
    for a in EXPERIMENT.arms(cfg):
        d, s, sch, w = parse_arm(cfg, a)
        if s is not None and sch is not None:
            assert arm_name(d, s, sch, w) == a
    with pytest.raises(ValueError):
        parse_arm(cfg, "gmm_ddpm_exponential_w2")


def test_fd_at_matched_acc_interpolates_on_the_first_bracketing_segment():
    curve = [(50.0, 2.0), (70.0, 1.0), (90.0, 1.5), (100.0, 3.0)]
    assert fd_at_matched_acc(curve, 60.0) == pytest.approx(1.5)
    assert fd_at_matched_acc(curve, 80.0) == pytest.approx(1.25)
    assert fd_at_matched_acc(curve, 100.0) == pytest.approx(3.0)
    assert math.isnan(fd_at_matched_acc(curve, 40.0))
    assert fd_at_matched_acc([(90.0, 1.0), (100.0, 2.0), (100.0, 3.0)], 100.0) == pytest.approx(2.0)


def test_derived_gap_is_negative_when_the_schedule_dominates():
    cfg = {"domains": ["gmm"], "samplers": ["ddpm"], "schedules": ["constant", "linear_increasing"],
           "guidance_weights": [1.0, 2.0]}
    pts = {"gmm_ddpm_unguided": (50.0, 2.0), arm_name("gmm", "ddpm", "constant", 1.0): (70.0, 1.5),
           arm_name("gmm", "ddpm", "constant", 2.0): (90.0, 1.5),
           arm_name("gmm", "ddpm", "linear_increasing", 1.0): (80.0, 1.0),
           arm_name("gmm", "ddpm", "linear_increasing", 2.0): (95.0, 1.0)}
    table = Table([0], [JobRecord(a, 0, {"class_acc": acc, "fd": fd}) for a, (acc, fd) in pts.items()])
    gap = EXPERIMENT.derive(cfg, table)["gmm_ddpm_pareto"]["fd_gap_linear_increasing"][0]
    # at acc 70 the increasing curve (50,2)->(80,1) has fd 4/3; at acc 90 (80,1)->(95,1) has fd 1
    assert gap == pytest.approx(((4 / 3 - 1.5) + (1.0 - 1.5)) / 2)


def test_quick_budget_runs_and_produces_every_metric(tmp_path):
    derived = {"fd_gap_linear_increasing", "fd_gap_cosine_increasing", "fd_gap_linear_decreasing"}
    t = time.time()
    m = quick_run_metrics(ENTRY, tmp_path, workers=1,
                          skip=lambda arm, metric: (arm.endswith("_pareto")) != (metric in derived))
    assert time.time() - t < 60
    assert set(m["digits_ddpm_pareto"]) == derived


def test_the_entry_depends_on_the_shared_denoisers():
    r = get(ENTRY).spec.reproduction
    assert r is not None and set(r.config["shared_denoiser"]) == {"digits", "gmm"}
