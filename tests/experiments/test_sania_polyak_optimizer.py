"""Wiring tests for zoo.experiments.sania_polyak_optimizer.

* the scaled copy with the rescaled first layer predicts exactly what the unscaled model does
  (the equivalent initialisation the invariance claims rest on), for both model shapes;
* every arm runs the optimizer it names (class, eps, lr), on scaled data exactly when its name
  says so, and the tuned arm reads its learning rate from the tuned-baselines record;
* the Adam grid on the scaled copy is picked by validation accuracy, not test accuracy;
* the invariance gaps are computed between an arm and its own scaled twin.
"""

from __future__ import annotations

import pytest
import torch

from zoo.catalogue import get
from zoo.experiments import sania_polyak_optimizer as exp
from zoo.harness import JobRecord, Table
from zoo.optim.sania import SANIAAdaGradSQR, SANIAAdamSQR
from zoo.training import MLP, TensorData
from zoo.workloads.optim import get_workload


def _cfg() -> dict:
    r = get("sania_polyak_optimizer").spec.reproduction
    assert r is not None
    return dict(r.config)


def _data(n=40, d=8) -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, d, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return TensorData(x, y, x[:10], y[:10], 3, "toy", x[:5], y[:5])


@pytest.mark.parametrize("hidden", [[], [16]])
def test_the_scaled_copy_from_the_equivalent_init_predicts_the_same(hidden):
    data = _data()
    v = exp.scale_factors(8, 3, 7)
    wide = exp.scale_factors(64, 3, 7)  # the digits features: factors over six decades
    assert wide.min() < 1e-2 and wide.max() > 1e2 and v.dtype == torch.float64
    assert torch.equal(wide[:8], v), "the factors depend on the seed only"
    torch.manual_seed(0)
    model = MLP(8, hidden, 3).double()
    twin = MLP(8, hidden, 3).double()
    twin.load_state_dict(model.state_dict())
    exp.rescale_first_layer(twin, v)
    plain, scaled = exp.scaled_copy(data, None), exp.scaled_copy(data, v)
    assert scaled.x_train.dtype == torch.float64 and torch.equal(scaled.x_train, plain.x_train * v)
    for a, b in ((plain.x_train, scaled.x_train), (plain.x_val, scaled.x_val), (plain.x_test, scaled.x_test)):
        torch.testing.assert_close(twin(b), model(a), rtol=1e-12, atol=1e-12)


def test_every_arm_runs_the_optimizer_it_names(monkeypatch, tmp_path):
    cfg = _cfg()
    seen = {}

    def fake_run(w, data, make, seed, epochs, device, model):
        params = list(model.parameters())
        opt, sched = make(params, 10)
        seen["opt"], seen["x"], seen["model"] = opt, data.x_train, model
        return {"val_acc": 1.0, "test_acc": 1.0, "train_loss": 1.0}, {}

    monkeypatch.setattr(exp, "run", fake_run)
    monkeypatch.setattr(exp, "tuned_record", lambda: {"baselines": {"digits_logreg": {"adam": {"lr": 0.0123}}}})
    w = get_workload("digits_logreg")
    data = _data(d=64)
    expected = {
        "sania_adagrad_inv": (SANIAAdaGradSQR, {"eps": 1e-30, "lr": 1.0}),
        "sania_adam_inv": (SANIAAdamSQR, {"eps": 1e-30, "lr": 1.0}),
        "sania_adagrad": (SANIAAdaGradSQR, {"eps": 0.1, "lr": 1.0}),
        "sania_adam": (SANIAAdamSQR, {"eps": 0.1, "lr": 1.0}),
        "adam_default": (torch.optim.Adam, {"lr": 1e-3}),
        "adam_tuned": (torch.optim.Adam, {"lr": 0.0123}),
    }
    methods = exp._methods(cfg)
    grid = {f"adam_scaled_lr{exp.slug(lr)}" for lr in cfg["adam_lrs"]}
    assert set(methods) == {*expected, *(f"{m}_scaled" for m in expected), *grid}
    v = exp.scale_factors(64, cfg["scale_decades"], cfg["scale_seed"])
    for name, meth in methods.items():
        torch.manual_seed(0)
        meth.run(cfg, w, data, 0, 1, "cpu")
        base = name.removesuffix("_scaled")
        if name in grid:
            cls, kw = torch.optim.Adam, {"lr": float(name.split("lr", 1)[1].replace("_", "."))}
        else:
            cls, kw = expected[base]
        assert type(seen["opt"]) is cls, name
        for k, val in kw.items():
            assert seen["opt"].param_groups[0][k] == val, (name, k)
        scaled = name.endswith("_scaled") or name in grid
        want = data.x_train.double() * v if scaled else data.x_train.double()
        assert torch.equal(seen["x"], want), name
        assert next(seen["model"].parameters()).dtype == torch.float64


def _table(cfg) -> Table:
    seeds = [0, 1, 2]
    recs = []
    lrs = cfg["adam_lrs"]
    for i, lr in enumerate(lrs):
        for s in seeds:
            val = 50.0 + (10.0 if i == 2 else 0.0) + s
            test = 40.0 + (30.0 if i == 5 else 0.0) - s
            recs.append(JobRecord(f"adam_scaled_lr{exp.slug(lr)}__digits_logreg", s,
                                  {"val_acc": val, "test_acc": test, "train_loss": 1.0}))
    return Table(seeds, recs)


def test_the_scaled_adam_grid_is_picked_by_validation_and_gaps_pair_twins():
    cfg = {**_cfg(), "workloads": ["digits_logreg"]}
    table = _table(cfg)
    derived = {}
    for arm in exp.INVARIANCE_PAIRS:
        derived[arm] = {"digits_logreg_train_loss": [1.0, 2.0, 4.0], "digits_logreg_test_acc": [90.0, 91.0, 92.0]}
        derived[f"{arm}_scaled"] = {"digits_logreg_train_loss": [1.0, 2.2, 2.0], "digits_logreg_test_acc": [90.0, 90.0, 93.0]}
    for lr in cfg["adam_lrs"]:
        name = f"adam_scaled_lr{exp.slug(lr)}"
        derived[name] = table.metrics_of(f"{name}__digits_logreg")
        derived[name] = {f"digits_logreg_{k}": v for k, v in derived[name].items()}
    exp._derive_gaps(cfg, table, derived)
    best = derived["adam_grid_scaled"]
    assert best["digits_logreg_lr"] == [cfg["adam_lrs"][2]] * 3
    assert best["digits_logreg_val_acc"] == [60.0, 61.0, 62.0]
    assert best["digits_logreg_test_acc"] == [40.0, 39.0, 38.0], "not the test-best grid point"
    gap = derived["sania_adagrad_inv"]
    assert gap["digits_logreg_loss_gap"] == pytest.approx([0.0, 0.1, 0.5])
    assert gap["digits_logreg_acc_gap"] == pytest.approx([0.0, 1.0, 1.0])
