"""The optimizer workload suite: splits, shared initialisation, the optimizer reaching training."""

from __future__ import annotations

import pytest
import torch

from zoo.harness import _seeded
from zoo.training import load_dataset
from zoo.workloads.optim import SPLIT_SEED, WORKLOADS, get_workload, load, run
from tests.conftest import REPO


def _sgd(lr):
    return lambda params, steps: (torch.optim.SGD(params, lr=lr), None)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_every_workload_trains_and_reports_its_metrics(name):
    w = get_workload(name)
    data = load(w, REPO / "data", n_train=400, n_test=200)
    _seeded(0)
    metrics, series = run(w, data, _sgd(0.05 if w.task == "classification" else 0.01), 0, epochs=2)
    steps = 2 * -(-data.n_train // w.batch_size)
    assert metrics["grad_evals"] == steps and metrics["diverged"] == 0
    if w.task == "classification":
        assert set(metrics) == {"val_acc", "test_acc", "train_loss", "grad_evals", "diverged"}
        assert len(series["val_acc"]) == len(series["test_acc"]) == 2
        assert 0 <= metrics["test_acc"] <= 100 and metrics["train_loss"] > 0
    else:
        assert set(metrics) == {"val_loss", "test_loss", "subopt", "train_loss", "grad_evals", "diverged"}
        assert len(series["subopt"]) == 2 and series["subopt"][1] < series["subopt"][0]


def test_the_validation_split_is_carved_from_train_and_fixed():
    w = get_workload("digits_logreg")
    a, b = load(w, REPO / "data"), load(w, REPO / "data")
    assert torch.equal(a.x_val, b.x_val), "the same split for every arm and seed"
    assert a.n_train + a.x_val.shape[0] == 1297 and a.x_test.shape[0] == 500
    full = load_dataset("digits", REPO / "data", flatten=True)
    # train and validation together are exactly the original training rows, each once
    rows = lambda x: sorted(tuple(r.tolist()) for r in x)  # noqa: E731
    assert rows(torch.cat([a.x_train, a.x_val])) == rows(full.x_train)
    assert torch.equal(a.x_test, full.x_test), "the test split is untouched"
    other = full.with_validation(0.2, SPLIT_SEED + 1)
    assert not torch.equal(other.x_val, a.x_val), "the split comes from SPLIT_SEED"


def test_arms_share_the_seed_initialisation_and_the_optimizer_decides():
    w = get_workload("digits_mlp")
    data = load(w, REPO / "data", n_train=300, n_test=100)
    out = {}
    for lr in (0.0, 0.1):
        _seeded(3)
        out[lr] = run(w, data, _sgd(lr), 3, epochs=1)
    _seeded(3)
    again = run(w, data, _sgd(0.1), 3, epochs=1)
    assert again == out[0.1], "same seed, same optimizer: identical"
    assert out[0.0][0] != out[0.1][0], "the optimizer reaches training"
    _seeded(3)
    frozen = run(w, data, _sgd(0.0), 3, epochs=2)
    assert frozen[1]["val_acc"][0] == frozen[1]["val_acc"][1], "lr 0 leaves the seed's initialisation as it was"


def test_unknown_workload_lists_the_suite():
    with pytest.raises(KeyError, match="mnist1d_mlp"):
        get_workload("cifar")


def test_the_convex_workload_knows_its_optimum():
    """F* is the training split's least-squares minimum: gradient descent approaches it, never passes it."""
    from zoo.workloads.optim import least_squares_optimum

    w = get_workload("lstsq")
    data = load(w, REPO / "data")
    f_star = least_squares_optimum(data.x_train, data.y_train)
    a = torch.cat([data.x_train.double(), torch.ones(data.n_train, 1, dtype=torch.float64)], 1)
    sol = torch.linalg.solve(a.T @ a, a.T @ data.y_train.double())  # the normal equations, independently
    assert f_star == pytest.approx(float(((a @ sol - data.y_train.double()) ** 2).mean()), rel=1e-6)
    _seeded(0)
    m_slow, _ = run(w, data, _sgd(0.01), 0, epochs=2)
    _seeded(0)
    m_fast, _ = run(w, data, lambda p, n: (torch.optim.SGD(p, lr=0.05, momentum=0.9), None), 0, epochs=10)
    assert m_fast["subopt"] < m_slow["subopt"] - 1, "more optimisation, closer to F*"
    assert m_fast["train_loss"] > 0.9 * f_star


def test_an_optimizer_with_train_and_eval_is_evaluated_in_eval_mode():
    """Schedule-Free's weights for evaluation are x, not y: the run must switch the optimizer to eval()."""
    from zoo.optim.schedule_free import ScheduleFreeSGD

    w = get_workload("digits_logreg")
    data = load(w, REPO / "data", n_train=300, n_test=100)
    modes = []

    class Spy(ScheduleFreeSGD):
        def eval(self):
            modes.append("eval")
            super().eval()

        def train(self):
            modes.append("train")
            super().train()

    _seeded(0)
    run(w, data, lambda p, n: (Spy(p, lr=0.5), None), 0, epochs=2)
    assert modes[0] == "train" and modes.count("eval") == 2 and modes[-1] == "train"
