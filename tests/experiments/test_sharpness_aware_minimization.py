"""Wiring tests for zoo.experiments.sharpness_aware_minimization and its helpers (_sharpness).

* the label noise: exactly the stated share of training and validation labels, never the true
  class, one seeded draw, the test split untouched;
* the arms build what they name (SGD or SAM, the tuned lr or the grid's, rho) and run twice the
  gradient evaluations where they claim to (SAM, sgd_2x), with lam_max and step times reported;
* the grid arms are picked by VALIDATION accuracy (a hand-made table where validation and test
  disagree) and report the picked rho / lr;
* the noisy arms really train on the noisy labels.
"""

from __future__ import annotations

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.experiments import _sharpness as sh
from zoo.experiments import sharpness_aware_minimization as exp
from zoo.experiments._optbench import tuned_record
from zoo.harness import JobRecord, Table
from zoo.optim.sam import SAM
from zoo.training import TensorData
from zoo.workloads.optim import get_workload, load


def _cfg() -> dict:
    r = get("sharpness_aware_minimization").spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config}


def _digits(n_train=200, n_test=100):
    w = get_workload("digits_mlp")
    return w, load(w, repo_root() / "data", "cpu", n_train, n_test)


def test_symmetric_noise_flips_the_stated_share_to_other_classes_once():
    _, d = _digits(n_train=500)
    noisy = sh.symmetric_noise(d, 0.4, seed=3)
    changed = noisy.y_train != d.y_train
    assert int(changed.sum()) == round(0.4 * d.n_train)  # flipped labels never land on the true class
    assert int((noisy.y_val != d.y_val).sum()) == round(0.4 * d.y_val.shape[0])
    assert torch.equal(noisy.y_test, d.y_test) and torch.equal(noisy.x_train, d.x_train)
    assert int(noisy.y_train.max()) < d.num_classes and int(noisy.y_train.min()) >= 0
    again = sh.symmetric_noise(d, 0.4, seed=3)
    assert torch.equal(again.y_train, noisy.y_train) and torch.equal(again.y_val, noisy.y_val)
    assert not torch.equal(sh.symmetric_noise(d, 0.4, seed=4).y_train, noisy.y_train)
    assert sh.symmetric_noise(d, 0.0, seed=3) is d
    # flips spread over every other class
    shifts = ((noisy.y_train - d.y_train) % d.num_classes)[changed]
    assert set(shifts.tolist()) == set(range(1, d.num_classes))


def test_indexed_data_gives_the_same_batches_and_their_rows():
    _, d = _digits()
    ix = sh.IndexedData(d)
    for epoch in range(2):
        ref = list(TensorData.batches(d, 32, torch.Generator().manual_seed(epoch)))
        got = []
        for xb, yb in ix.batches(32, torch.Generator().manual_seed(epoch)):
            assert torch.equal(d.x_train[ix.index], xb) and torch.equal(d.y_train[ix.index], yb)
            got.append((xb, yb))
        assert ix.epoch == epoch
        assert len(got) == len(ref) and all(torch.equal(a[0], b[0]) for a, b in zip(got, ref))


def test_the_builders_use_the_tuned_lr_and_the_stated_optimizer():
    w = get_workload("digits_mlp")
    lr = float(tuned_record()["baselines"]["digits_mlp"]["sgdm_cosine"]["lr"])
    assert sh.tuned_lr("digits_mlp") == lr
    p = [torch.nn.Parameter(torch.zeros(3))]
    o = exp.sgd()(p, {}, w)
    assert type(o) is torch.optim.SGD and o.param_groups[0]["lr"] == lr and o.param_groups[0]["momentum"] == 0.9
    assert exp.sgd(0.03)(p, {}, w).param_groups[0]["lr"] == 0.03
    s = exp.sam(0.2)(p, {}, w)
    assert isinstance(s, SAM) and s.param_groups[0]["rho"] == 0.2 and s.param_groups[0]["lr"] == lr
    assert exp.sam(0.05, 0.01)(p, {}, w).param_groups[0]["lr"] == 0.01
    assert type(s.base_optimizer) is torch.optim.SGD and s.param_groups[0]["momentum"] == 0.9


def test_arms_count_gradient_evaluations_and_report_sharpness_and_step_time():
    cfg = {**_cfg(), "sharpness_iters": 3}
    w, d = _digits()
    ms = exp._methods(cfg)
    out = {}
    for name in ("sgd", "sgd_2x", "sam"):
        torch.manual_seed(0)
        out[name], series = ms[name].run(cfg, w, d, 0, 2, "cpu")
    steps = 2 * -(-d.n_train // w.batch_size)
    assert out["sgd"]["grad_evals"] == steps
    assert out["sgd_2x"]["grad_evals"] == 2 * steps and out["sam"]["grad_evals"] == 2 * steps
    for m in out.values():
        assert m["lam_max"] > 0 and m["step_ms"] > 0 and m["step_ms_mean"] > 0
    assert len(series["test_acc"]) == 2
    assert out["sam"]["test_acc"] != out["sgd"]["test_acc"] or out["sam"]["train_loss"] != out["sgd"]["train_loss"]


def test_noisy_arms_train_on_the_noisy_labels(monkeypatch):
    cfg = {**_cfg(), "sharpness_iters": 2}
    w, d = _digits()
    seen = []
    real = sh.run

    def spy(workload, data, *a, **k):
        seen.append(data.y_train.clone())
        return real(workload, data, *a, **k)

    monkeypatch.setattr(sh, "run", spy)
    ms = exp._methods(cfg)
    noisy = [m for m in ms if m.startswith("sgd_noisy")][0]
    ms["sgd"].run(cfg, w, d, 0, 1, "cpu")
    ms[noisy].run(cfg, w, d, 0, 1, "cpu")
    assert torch.equal(seen[0], d.y_train)
    assert torch.equal(seen[1], sh.symmetric_noise(d, cfg["noise"], cfg["noise_seed"]).y_train)
    assert not torch.equal(seen[1], d.y_train)


def _record(arm, seed, val, test):
    return JobRecord(arm, seed, {"val_acc": val, "test_acc": test, "lam_max": 1.0}, {})


def test_grid_arms_are_picked_by_validation_not_test():
    cfg = {**_cfg(), "rhos": [0.05, 0.2], "noisy_lrs": [0.03, 0.3], "grid_workloads": ["digits_mlp"],
           "noisy_workloads": ["digits_mlp"]}
    recs = []
    for s in (0, 1):
        # rho 0.05 (the `sam` arm) has the better test accuracy, rho 0.2 the better validation accuracy
        recs += [_record("sam__digits_mlp", s, 90.0, 99.0), _record("sam_rho0_2__digits_mlp", s, 95.0, 91.0)]
        recs += [_record("sgd_noisy_lr0_03__digits_mlp", s, 80.0, 70.0), _record("sgd_noisy_lr0_3__digits_mlp", s, 70.0, 80.0)]
        recs += [_record("sgd_2x_noisy_lr0_03__digits_mlp", s, 60.0, 90.0), _record("sgd_2x_noisy_lr0_3__digits_mlp", s, 61.0, 50.0)]
        recs += [_record("sam_noisy_rho0_05__digits_mlp", s, 70.0, 50.0), _record("sam_noisy_rho0_2__digits_mlp", s, 69.0, 90.0)]
        recs += [_record("sam_noisy_rho0_05_lr0_03__digits_mlp", s, 60.0, 99.0),
                 _record("sam_noisy_rho0_05_lr0_3__digits_mlp", s, 65.0, 40.0)]
    table = Table([0, 1], recs)
    derived = {"sam": {"digits_mlp_test_acc": [99.0, 99.0]}, "sam_rho0_2": {}, "sgd_noisy_lr0_03": {}}
    exp._derive(cfg, table, derived)
    assert derived["sam_tuned"]["digits_mlp_rho"] == [0.2, 0.2] and derived["sam_tuned"]["digits_mlp_test_acc"] == [91.0, 91.0]
    assert derived["sgd_noisy"]["digits_mlp_lr"] == [0.03, 0.03] and derived["sgd_noisy"]["digits_mlp_test_acc"] == [70.0, 70.0]
    assert derived["sgd_2x_noisy"]["digits_mlp_lr"] == [0.3, 0.3]
    assert derived["sam_noisy"]["digits_mlp_rho"] == [0.05, 0.05]
    assert derived["sam_noisy_lr_tuned"]["digits_mlp_lr"] == [0.3, 0.3]
    assert derived["sam_noisy_lr_tuned"]["digits_mlp_test_acc"] == [40.0, 40.0]
    assert "sam" in derived and "sam_rho0_2" not in derived and "sgd_noisy_lr0_03" not in derived


def test_the_spec_arms_cover_the_derived_arms_and_the_quick_config_runs_every_arm_kind():
    r = get("sharpness_aware_minimization").spec.reproduction
    assert set(r.arms) == {"sgd", "sgd_2x", "sam", "sam_tuned", "sgd_noisy", "sgd_2x_noisy", "sam_noisy",
                           "sam_noisy_lr_tuned"}
    ms = exp._methods({**r.config, **r.quick.config})
    assert {"sgd", "sgd_2x", "sam"} <= set(ms) and any(m.startswith("sam_noisy") for m in ms)
