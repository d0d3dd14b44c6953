"""What the SAM and SAF reproductions add to the shared optimizer benchmark: noise, sharpness, step time.

Both entries train on the shared workloads through :func:`zoo.workloads.optim.run` (the one
training loop) with ``Method(run=...)`` arms built by :func:`arm`, which adds to the standard
metrics:

* ``lam_max``, ``log10_lam_max``: the top Hessian eigenvalue of the training loss at the final
  weights, on the first ``sharpness_n`` training examples (with the labels trained on), by
  ``sharpness_iters`` Lanczos steps (:func:`zoo.optim.curvature.top_hessian_eigenvalue`);
* ``step_ms``: the median wall time of one optimizer step, ``step(closure)`` with its forward and
  backward passes (two for SAM) and, for SAF, the memory read/write and the KL, timed inside the
  job (evaluations excluded); ``step_ms_mean``, its mean; ``step_cpu_ms``, the median CPU time of
  the job's thread per step (on a shared CPU the wall time also counts the waits for a core);
* with ``noise > 0``: the training *and validation* labels are corrupted by :func:`symmetric_noise`
  (one seeded draw, the same for every arm and seed; the test labels stay clean), so any selection
  on validation sees noisy labels only, as a practitioner would.

SAF needs each mini-batch's example indices and the epoch: :class:`IndexedData` is the workload's
data with the same batches (it draws them through :meth:`TensorData.batches` itself) that
remembers the current batch's rows and counts epochs, and :func:`saf_loss` reads them.
"""

from __future__ import annotations

import math
import statistics
import time
import types
from typing import Any, Callable, Iterator

import torch
from torch import nn

from zoo.experiments._optbench import tuned_record
from zoo.optim.curvature import top_hessian_eigenvalue
from zoo.optim.saf import SAFLoss
from zoo.training import TensorData
from zoo.workloads.optim import Workload, run

__all__ = ["symmetric_noise", "IndexedData", "saf_loss", "sharpness", "tuned_lr", "arm", "StepTimer"]

# (params, cfg, workload) -> optimizer (the cosine schedule over the run is added by arm())
Build = Callable[[list[nn.Parameter], dict[str, Any], Workload], torch.optim.Optimizer]


def symmetric_noise(data: TensorData, fraction: float, seed: int) -> TensorData:
    """Symmetric label noise: exactly ``round(fraction * n)`` training (and validation) labels,
    drawn without replacement, replaced by a uniformly drawn *other* class.

    One CPU generator seeded with ``seed`` draws the training split's corruption, then the
    validation split's; the inputs and the test split are untouched. ``fraction == 0`` returns
    ``data`` itself.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"noise fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return data
    g = torch.Generator().manual_seed(seed)
    c = data.num_classes

    def corrupt(y: torch.Tensor) -> torch.Tensor:
        n = int(y.shape[0])
        rows = torch.randperm(n, generator=g)[: round(fraction * n)]
        shift = torch.randint(1, c, (rows.numel(),), generator=g)  # 1..c-1: never the true class
        out = y.clone()
        out[rows.to(y.device)] = (y[rows.to(y.device)] + shift.to(y.device)) % c
        return out

    y_train = corrupt(data.y_train)
    y_val = corrupt(data.y_val) if data.y_val is not None else None
    return TensorData(data.x_train, y_train, data.x_test, data.y_test, c, data.name, data.x_val, y_val)


class IndexedData(TensorData):
    """``data`` with the same shuffled batches, remembering each batch's rows and the epoch.

    The batches are drawn by :meth:`TensorData.batches` over the row numbers ``0..n-1`` (the
    same generator calls, hence the same order as every other arm), then the rows are looked up.
    ``index`` is the current batch's rows, ``epoch`` the 0-based epoch (-1 before the first).
    """

    def __init__(self, data: TensorData) -> None:
        super().__init__(data.x_train, data.y_train, data.x_test, data.y_test, data.num_classes, data.name,
                         data.x_val, data.y_val)
        rows = torch.arange(data.n_train, device=data.x_train.device)
        self._rows = TensorData(rows, rows, rows[:0], rows[:0], data.num_classes, data.name)
        self.index = rows[:0]
        self.epoch = -1

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.epoch += 1
        for idx, _ in self._rows.batches(batch_size, generator):
            self.index = idx
            yield self.x_train[idx], self.y_train[idx]


def saf_loss(saf: SAFLoss, data: IndexedData) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The shared loop's ``loss(model, x, y)`` computing SAF's objective for the current batch of ``data``."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return saf(model(x), y, data.index, data.epoch)

    return loss


def sharpness(model: nn.Module, data: TensorData, n: int, iters: int, seed: int = 0) -> float:
    """``lambda_max`` of the cross-entropy Hessian on the first ``n`` training examples (eval mode)."""
    x, y = data.x_train[:n], data.y_train[:n]
    was = model.training
    model.eval()
    try:
        return top_hessian_eigenvalue(lambda: nn.functional.cross_entropy(model(x), y), list(model.parameters()),
                                      iters=iters, seed=seed)
    finally:
        model.train(was)


def tuned_lr(workload: str, baseline: str = "sgdm_cosine") -> float:
    """The family's tuned learning rate of ``baseline`` on ``workload`` (``tuned.json``)."""
    return float(tuned_record()["baselines"][workload][baseline]["lr"])


class StepTimer:
    """Wraps an optimizer's ``step`` (a bound method set on the instance) to record each call's time.

    ``times``: wall time (``perf_counter``, after a CUDA synchronisation on a GPU); ``cpu_times``:
    the calling thread's CPU time (``thread_time``). On a CPU with one torch thread every forward
    and backward kernel runs in the calling thread, so the CPU time is the step's compute cost
    whatever else the machine is running, where the wall time also counts the waits for a core.
    """

    def __init__(self, opt: torch.optim.Optimizer, device: str | torch.device) -> None:
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        inner = opt.step
        cuda = torch.device(device).type == "cuda"

        def step(_opt: torch.optim.Optimizer, closure: Any = None) -> Any:
            if cuda:
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.thread_time()
            out = inner(closure)
            if cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - t0)
            self.cpu_times.append(time.thread_time() - c0)
            return out

        opt.step = types.MethodType(step, opt)  # type: ignore[method-assign]  # bound: schedulers re-wrap it


def arm(build: Build, *, saf: dict[str, Any] | None = None, noise: bool = False,
        epochs_factor: int = 1) -> Callable[..., tuple[dict[str, float], dict[str, list[float]]]]:
    """A ``Method(run=...)`` training ``build``'s optimizer, with a cosine schedule over the run
    (``CosineAnnealingLR(T_max=steps)``, as the tuned ``sgdm_cosine`` baseline), on the workload
    (SAF's loss if ``saf``).

    ``saf`` holds :class:`zoo.optim.saf.SAFLoss`'s options (``lam``, ``temperature``, ``lag``,
    ``start_epoch``); ``noise`` corrupts the labels by ``cfg["noise"]`` (seed ``cfg["noise_seed"]``);
    ``epochs_factor`` multiplies the workload's epochs (2: SGD at SAM's gradient evaluations).
    Config keys read: ``noise``, ``noise_seed``, ``sharpness_n``, ``sharpness_iters``.
    """

    def go(cfg: dict[str, Any], w: Workload, data: TensorData, seed: int, epochs: int,
           device: str) -> tuple[dict[str, float], dict[str, list[float]]]:
        if noise:
            data = symmetric_noise(data, float(cfg["noise"]), int(cfg["noise_seed"]))
        model = w.model(data)  # the seed's initialisation, as run() would build it
        loss = None
        if saf is not None:
            data = IndexedData(data)
            loss = saf_loss(SAFLoss(data.n_train, data.num_classes, device=device, **saf), data)
        timer: list[StepTimer] = []

        def make(params: list[nn.Parameter], steps: int) -> tuple[torch.optim.Optimizer, Any]:
            opt = build(params, cfg, w)
            timer.append(StepTimer(opt, device))  # before the scheduler wraps step()
            return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

        metrics, series = run(w, data, make, seed, epochs=epochs * epochs_factor, device=device, loss=loss, model=model)
        lam = sharpness(model, data, int(cfg["sharpness_n"]), int(cfg["sharpness_iters"]))
        metrics["lam_max"] = lam if math.isfinite(lam) else 1e30
        metrics["log10_lam_max"] = math.log10(lam) if math.isfinite(lam) and lam > 0 else 30.0
        times = timer[0].times
        metrics["step_ms"] = 1000.0 * statistics.median(times)
        metrics["step_ms_mean"] = 1000.0 * statistics.fmean(times)
        metrics["step_cpu_ms"] = 1000.0 * statistics.median(timer[0].cpu_times)
        return metrics, series

    return go
