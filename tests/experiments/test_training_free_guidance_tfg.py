"""The TFG experiment: every method searches the same number of grid points; the guiding classifier is
not the evaluation classifier; arms share the unconditional model and noise; the chosen point reaches
the sampler; the search scores on the validation split and tuning stream; the quick run works."""

from __future__ import annotations

import torch

from tests.experiments.budgets import quick_env, quick_run_metrics, spec_budget
from zoo.experiments import training_free_guidance_tfg as exp
from zoo.harness import JobContext

ENTRY = "training_free_guidance_tfg"


def _ctx(cfg):
    env = quick_env()
    shared = exp._shared(cfg, env, None)
    return JobContext(env, None, shared, exp._per_seed(cfg, 0, env, None, shared))


def test_equal_search_budgets():
    cfg, _ = spec_budget(ENTRY, quick=False)
    sizes = {m: len(exp.grid(cfg, m)) for m in exp.METHODS}
    assert set(sizes.values()) == {int(cfg["grid_size"])}, sizes
    assert len(set(exp.grid(cfg, "tfg"))) == int(cfg["grid_size"])  # distinct points
    assert all(p.gamma > 0 for p in exp.grid(cfg, "tfg"))
    assert all(p.rho == 0 and p.mu > 0 for p in exp.grid(cfg, "mpgd"))


def test_wiring(monkeypatch):
    cfg, _ = spec_budget(ENTRY)
    ctx = _ctx(cfg)
    guide, scorer = ctx.shared["guide"], ctx.shared["scorer"].classifier
    assert guide is not scorer
    assert [p.shape for p in guide.parameters()] != [p.shape for p in scorer.parameters()]
    pts = exp.grid(cfg, "tfg")
    x1, y = exp.sample_method(cfg, pts[0], 0, ctx, 0, 3)
    x2, _ = exp.sample_method(cfg, pts[-1], 0, ctx, 0, 3)
    x0, _ = exp.sample_method(cfg, exp.TFGConfig(), 0, ctx, 0, 3)
    assert not torch.allclose(x1, x2) and not torch.allclose(x1, x0)
    torch.testing.assert_close(exp.sample_method(cfg, pts[0], 0, ctx, 0, 3)[0], x1)  # same noise, same result
    assert not torch.allclose(exp.sample_method(cfg, pts[0], 0, ctx, 1, 3)[0], x1)  # the tuning stream differs
    # the search scores on the validation split and the tuning stream, the report on test and stream 0
    calls = []
    real = exp.sample_method
    monkeypatch.setattr(exp, "sample_method", lambda c, p, s, cx, stream, n: calls.append(stream) or real(c, p, s, cx, stream, n))
    refs = []
    real_score = exp._score
    monkeypatch.setattr(exp, "_score", lambda c, sc, x, l, ref: refs.append(ref) or real_score(c, sc, x, l, ref))
    out = exp._job(cfg, "dps", 0, ctx)
    assert calls == [1] * int(cfg["grid_size"]) + [0] and refs == ["val"] * int(cfg["grid_size"]) + ["test"]
    tuning = out.series["tuning_objective"]
    assert out.metrics["selected"] == max(range(len(tuning)), key=lambda i: tuning[i])


def test_quick_run(tmp_path):
    quick_run_metrics(ENTRY, tmp_path / "quick", workers=1)
