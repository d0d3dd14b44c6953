"""The LR range test: the schedule by hand, smoothing and the divergence stop, and a differential
test against ``torch_lr_finder.LRFinder`` (torch-lr-finder 0.2.2): same model, optimizer and
batches, lock-step; the lr and smoothed-loss histories agree to 1e-12 (float64), and so does the
steepest-gradient suggestion of ``LRFinder.plot(suggest_lr=True)``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from zoo.optim.lr_range_test import RangeTest, lr_range_test, range_lr

torch_lr_finder = pytest.importorskip("torch_lr_finder")


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).double()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)]
    return model, batches


def _ce(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


def test_schedule_by_hand() -> None:
    assert range_lr(0, 5, 1e-4, 1.0) == pytest.approx(1e-4)
    assert range_lr(4, 5, 1e-4, 1.0) == pytest.approx(1.0)
    assert range_lr(2, 5, 1e-4, 1.0) == pytest.approx(1e-2)  # geometric midpoint
    assert range_lr(2, 5, 0.0 + 1e-4, 1.0, "linear") == pytest.approx(1e-4 + 0.5 * (1.0 - 1e-4))
    with pytest.raises(ValueError):
        range_lr(0, 5, 1e-4, 1.0, "cosine")  # type: ignore[arg-type]


def test_each_step_runs_at_its_lr_and_the_loss_is_smoothed() -> None:
    model, batches = _problem()
    seen: list[float] = []

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    res = lr_range_test(model, Spy(model.parameters(), lr=123.0), lambda: batches, _ce,
                        start_lr=1e-3, end_lr=1e-1, num_iter=9, smooth_f=0.3, diverge_th=1e9)
    assert seen == pytest.approx([range_lr(i, 9, 1e-3, 1e-1) for i in range(9)]) and res.lrs == seen
    assert len(res.raw_losses) == 9, "9 steps over 6-batch epochs: the batches restart"
    want = [res.raw_losses[0]]
    for v in res.raw_losses[1:]:
        want.append(0.3 * v + 0.7 * want[-1])
    assert res.losses == pytest.approx(want, rel=1e-12)
    assert not res.diverged


def test_stops_when_the_smoothed_loss_exceeds_diverge_th_times_its_minimum() -> None:
    model, batches = _problem()
    res = lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9), lambda: batches, _ce,
                        start_lr=1e-3, end_lr=1e4, num_iter=200, smooth_f=0.0, diverge_th=3.0)
    assert res.diverged and len(res.lrs) < 200
    last = res.losses[-1]
    assert (not math.isfinite(last)) or last > 3.0 * min(res.losses[:-1])
    assert all(v <= 3.0 * min(res.losses[: k + 1]) for k, v in enumerate(res.losses[:-1]))


def test_read_outs() -> None:
    r = RangeTest(lrs=[1.0, 2.0, 3.0, 4.0, 5.0], losses=[5.0, 4.0, 1.0, 0.5, 3.0], raw_losses=[0.0] * 5, diverged=False)
    assert r.min_loss_lr() == 4.0
    # numpy.gradient: [-1, -2, -1.75, 1, 2.5] -> steepest at index 1
    assert r.steepest_lr(skip_start=0, skip_end=0) == 2.0
    with pytest.raises(ValueError):
        r.steepest_lr(skip_start=4, skip_end=1)



@pytest.mark.parametrize("mode", ["exp", "linear"])
@pytest.mark.parametrize("smooth_f", [0.05, 0.0])
def test_matches_torch_lr_finder(mode: str, smooth_f: float) -> None:
    end = 10.0 if mode == "exp" else 0.5  # a linear sweep to 10 diverges within 10 steps
    model, batches = _problem()
    ref_model = copy.deepcopy(model)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=False)
    ours = lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), lambda: batches, _ce,
                         start_lr=1e-4, end_lr=end, num_iter=60, mode=mode, smooth_f=smooth_f, diverge_th=5.0)
    opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9)
    finder = torch_lr_finder.LRFinder(ref_model, opt, torch.nn.CrossEntropyLoss(), device="cpu")
    finder.range_test(loader, start_lr=1e-4, end_lr=end, num_iter=60, step_mode=mode, smooth_f=smooth_f,
                      diverge_th=5.0)
    assert ours.lrs == pytest.approx(finder.history["lr"], rel=1e-12)
    assert ours.losses == pytest.approx(finder.history["loss"], rel=1e-12)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    _, suggestion = finder.plot(ax=ax, suggest_lr=True)
    plt.close(fig)
    assert ours.steepest_lr() == pytest.approx(suggestion, rel=1e-12)


def test_invalid_arguments() -> None:
    model, batches = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for kw in ({"num_iter": 1}, {"smooth_f": 1.0}, {"start_lr": 1.0, "end_lr": 0.1}, {"mode": "cos"}):
        with pytest.raises(ValueError):
            lr_range_test(model, opt, lambda: batches, _ce, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no mini-batch"):
        lr_range_test(model, opt, lambda: [], _ce, num_iter=3)
