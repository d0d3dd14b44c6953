"""Classification metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import torch
from sklearn.metrics import f1_score, fbeta_score

from zoo.metrics.classification import (
    aurc, classification_report, coverage_at_risk, ece, f_beta_binary, macro_f1, memorised_share, reliability,
    risk_coverage,
)


def test_ece_by_hand() -> None:
    # two bins used: confidence 0.9 (2 examples, 1 right) and 0.6 (2 examples, both right)
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 1])
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4
    assert math.isclose(ece(probs, y, bins=15), 40.0, rel_tol=1e-9)
    rel = reliability(probs, y, bins=10)
    assert rel["count"][8] == 2 and rel["count"][5] == 2 and sum(rel["count"]) == 4
    assert math.isclose(rel["accuracy"][8], 0.5) and math.isclose(rel["confidence"][5], 0.6)
    assert math.isnan(rel["accuracy"][0])


def test_f_scores_match_sklearn() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (200,), generator=g)
    pred = torch.where(torch.rand(200, generator=g) < 0.6, y, torch.randint(0, 4, (200,), generator=g))
    assert math.isclose(macro_f1(pred, y, 4), 100 * f1_score(y, pred, average="macro"), rel_tol=1e-9)
    yb, pb = (y == 1).long(), (pred == 1).long()
    for beta in (0.5, 1.0, 2.0):
        assert math.isclose(f_beta_binary(pb, yb, beta), 100 * fbeta_score(yb, pb, beta=beta), rel_tol=1e-9)


def test_memorised_and_risk_coverage() -> None:
    y_noisy = torch.tensor([0, 1, 2, 3])
    noisy = torch.tensor([True, True, False, False])
    assert memorised_share(torch.tensor([0, 0, 2, 3]), y_noisy, noisy) == 50.0
    conf = torch.tensor([0.9, 0.8, 0.7, 0.6])
    correct = torch.tensor([True, False, True, True])
    cov, risk = risk_coverage(conf, correct)
    assert cov == [0.25, 0.5, 0.75, 1.0]
    assert risk == [0.0, 0.5, 1 / 3, 0.25]
    assert math.isclose(aurc(conf, correct), 100 * (0 + 0.5 + 1 / 3 + 0.25) / 4)
    assert coverage_at_risk(conf, correct, 0.3) == 100.0 and coverage_at_risk(conf, correct, 0.2) == 25.0
    assert coverage_at_risk(conf, correct, 0.25) == 100.0


def test_report_of_perfect_predictions() -> None:
    y = torch.arange(10) % 3
    logits = 20.0 * torch.nn.functional.one_hot(y, 3).double()
    r = classification_report(logits, y)
    assert r["acc"] == 100.0 and r["f1"] == 100.0 and r["nll"] < 1e-6 and r["ece"] < 1e-4 and r["aurc"] == 0.0
