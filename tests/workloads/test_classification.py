"""The classification workload suite: noise, imbalance, few labels and splits are what they say."""

from __future__ import annotations

import pytest
import torch

from zoo.catalogue import repo_root
from zoo.workloads.classification import (
    MNIST_ASYMMETRIC, UNLABELLED, build_model, few_labels, inject_noise, load_base, long_tail, make_task,
    one_vs_rest,
)

DATA = repo_root() / "data"


def test_symmetric_noise_flips_exactly_the_rate_to_other_classes() -> None:
    y = torch.arange(1000) % 10
    noisy_y, mask = inject_noise(y, 10, "symmetric", 0.4, seed=3)
    assert int(mask.sum()) == 400
    assert torch.equal(mask, noisy_y != y)
    # every other class is a destination, roughly uniformly
    dest = torch.bincount((noisy_y[mask] - y[mask]) % 10, minlength=10)
    assert dest[0] == 0 and (dest[1:] > 20).all()
    again, _ = inject_noise(y, 10, "symmetric", 0.4, seed=3)
    other, _ = inject_noise(y, 10, "symmetric", 0.4, seed=4)
    assert torch.equal(again, noisy_y) and not torch.equal(other, noisy_y)


def test_pairflip_and_asymmetric_maps() -> None:
    y = torch.arange(5000) % 10
    p, m = inject_noise(y, 10, "pairflip", 0.3, seed=0)
    assert torch.equal(p[m], (y[m] + 1) % 10)
    assert 0.25 < float(m.double().mean()) < 0.35
    a, m = inject_noise(y, 10, "asymmetric", 0.5, seed=0)
    for src, dst in MNIST_ASYMMETRIC.items():
        sel = m & (y == src)
        assert sel.any() and (a[sel] == dst).all()
    assert not m[~torch.isin(y, torch.tensor(list(MNIST_ASYMMETRIC)))].any()


def test_few_labels_keeps_k_per_class() -> None:
    y = torch.arange(1000) % 10
    yl = few_labels(y, 10, 7, seed=1)
    kept = yl != UNLABELLED
    assert int(kept.sum()) == 70
    assert torch.equal(torch.bincount(yl[kept], minlength=10), torch.full((10,), 7))
    assert torch.equal(yl[kept], y[kept])


def test_long_tail_profile_and_one_vs_rest_fraction() -> None:
    base = load_base("digits", DATA)
    lt = long_tail(base, 10.0, seed=0)
    counts = torch.bincount(lt.y_train, minlength=10)
    assert counts[0] > 3 * counts[9] and (counts[:-1] >= counts[1:]).all()
    assert torch.equal(lt.y_test, base.y_test)
    ovr = one_vs_rest(base, [3], 0.05, seed=0)
    share = float(ovr.y_train.double().mean())
    assert ovr.num_classes == 2 and 0.045 < share < 0.055
    assert 0.04 < float(ovr.y_test.double().mean()) < 0.06


def test_make_task_noises_train_and_validation_but_not_test() -> None:
    base = load_base("digits", DATA)
    cfg = {"val_fraction": 0.2, "noise": {"kind": "symmetric", "rate": 0.5}}
    task = make_task(cfg, base, seed=0)
    assert task.n_train + task.x_val.shape[0] == base.n_train
    assert abs(float(task.noisy.double().mean()) - 0.5) < 0.01
    assert torch.equal(task.noisy, task.y_train != task.y_train_clean)
    assert float((task.y_val != task.y_val_clean).double().mean()) > 0.4
    assert torch.equal(task.y_test, base.y_test)
    clean = make_task({"val_fraction": 0.2}, base, seed=0)
    assert torch.equal(clean.y_train_clean, task.y_train_clean) and not clean.noisy.any()


@pytest.mark.parametrize("name", ["synth", "breast_cancer"])
def test_generated_and_bundled_datasets(name: str) -> None:
    d = load_base({"name": name, "classes": 20, "n": 1000, "n_test": 500}, DATA)
    assert d.x_train.dtype == torch.float32 and abs(float(d.x_train.mean())) < 0.1
    assert d.num_classes == (20 if name == "synth" else 2)
    assert set(d.y_train.unique().tolist()) == set(range(d.num_classes))


def test_build_model_kinds() -> None:
    task = make_task({}, load_base("digits", DATA), 0)
    assert build_model({"kind": "mlp", "hidden": [32]}, task)(task.x_test).shape == (500, 10)
    assert build_model({"kind": "cnn", "width": 4}, task)(task.x_test).shape == (500, 10)
    assert build_model({"kind": "linear"}, task)(task.x_test).shape == (500, 10)
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model({"kind": "resnet"}, task)
