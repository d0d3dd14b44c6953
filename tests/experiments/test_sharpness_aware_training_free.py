"""Wiring tests for zoo.experiments.sharpness_aware_training_free.

* the saf arm trains with SAFLoss at the configured lambda, tau, lag and start epoch: identical to
  sgd until the KL starts, different afterwards, one gradient evaluation per step;
* the sam arm runs SAM at the configured rho; every arm reports lam_max and step times, and the
  derived log10 step time is the log of the median;
* the spec's claims reference metrics the experiment produces.
"""

from __future__ import annotations

import math

import pytest
import torch

from zoo.catalogue import get, repo_root
from zoo.experiments import _sharpness as sh
from zoo.experiments import sharpness_aware_training_free as exp
from zoo.harness import JobRecord, Table
from zoo.optim import saf as saf_module
from zoo.workloads.optim import get_workload, load


def _cfg() -> dict:
    r = get("sharpness_aware_training_free").spec.reproduction
    assert r is not None
    return {**r.config, **r.quick.config, "sharpness_iters": 2}


def test_saf_equals_sgd_until_the_kl_starts_and_then_departs(monkeypatch):
    cfg = {**_cfg(), "saf": {"digits_mlp": {"lag": 1, "start_epoch": 1}}, "saf_lam": 0.5}
    w = get_workload("digits_mlp")
    d = load(w, repo_root() / "data", "cpu", 200, 100)
    made = []
    real = saf_module.SAFLoss

    def spy(*a, **k):
        made.append(k)
        return real(*a, **k)

    monkeypatch.setattr(sh, "SAFLoss", spy)
    ms = exp._methods(cfg)
    torch.manual_seed(0)
    m_sgd, s_sgd = ms["sgd"].run(cfg, w, d, 0, 4, "cpu")
    torch.manual_seed(0)
    m_saf, s_saf = ms["saf"].run(cfg, w, d, 0, 4, "cpu")
    assert made == [{"device": "cpu", "lam": 0.5, "temperature": 5.0, "lag": 1, "start_epoch": 1}]
    # epochs 0 and 1 (E_start = 1): cross-entropy only, the same run as SGD; from epoch 2 on the KL is added
    assert s_saf["train_loss"][:2] == s_sgd["train_loss"][:2]
    assert s_saf["train_loss"][2] != s_sgd["train_loss"][2]
    assert m_saf["grad_evals"] == m_sgd["grad_evals"]  # one forward-backward pass per step
    assert m_saf["lam_max"] > 0 and m_saf["step_ms"] > 0 and m_saf["step_cpu_ms"] > 0


def test_sam_arm_uses_the_configured_rho(monkeypatch):
    seen = []
    real = exp.sam
    monkeypatch.setattr(exp, "sam", lambda rho: seen.append(rho) or real(rho))
    exp._methods({**_cfg(), "rho": 0.07})
    assert seen == [0.07]


def test_log10_step_ms_is_derived_for_every_arm():
    recs = [JobRecord(a, s, {"step_ms": 10.0 * (1 + s)}, {}) for a in ("x",) for s in (0, 1)]
    derived = {"sgd": {"mnist5k_cnn_step_ms": [10.0, 20.0], "mnist5k_cnn_step_cpu_ms": [100.0, 1.0],
                       "mnist5k_cnn_test_acc": [1.0, 1.0]}}
    exp._derive({}, Table([0, 1], recs), derived)
    assert derived["sgd"]["mnist5k_cnn_log10_step_ms"] == pytest.approx([1.0, math.log10(20.0)])
    assert derived["sgd"]["mnist5k_cnn_log10_step_cpu_ms"] == pytest.approx([2.0, 0.0])
    assert "mnist5k_cnn_log10_test_acc" not in derived["sgd"]


def test_claims_reference_produced_metrics():
    spec = get("sharpness_aware_training_free").spec
    r = spec.reproduction
    for c in spec.active_claims():
        for ref in c.refs():
            arm, metric = ref.split(".")
            assert arm in r.arms and metric in r.metrics, ref
