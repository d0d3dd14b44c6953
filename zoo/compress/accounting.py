r"""Size and speed of an exported model, measured on the model itself.

:func:`measure` returns a :class:`SizeReport` of a model from :func:`zoo.compress.export`:

* ``params`` - dense parameter count of the exported architecture (weights, biases, norms):
  what a dense re-implementation of the shrunk network would hold;
* ``nonzero`` - how many of those are non-zero;
* ``payload_bytes`` - bytes of the stored tensors (``numel * element_size`` over the state dict:
  packed codes, CSR indices and values, scales, biases);
* ``bytes`` - the length of ``torch.save(state_dict)``: the file the user ships (pickle framing
  included);
* ``entropy_bytes`` - ``payload_bytes`` with every layer's integer codes entropy-coded
  (:func:`entropy_coded_bytes`); equal to ``payload_bytes`` for a model without integer codes;
* ``macs`` - multiply-accumulates per example of the forward pass (dense layers ``in * out``,
  convolutions ``out_channels * H_out * W_out * in_channels / groups * k_h * k_w``, CSR linear
  layers their stored non-zeros);
* ``latency_ms`` - median wall time of one forward pass over a batch, on one CPU thread.
"""

from __future__ import annotations

import io
import math
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["SizeReport", "measure", "count_macs", "cpu_latency_ms", "entropy_coded_bytes", "serialized_bytes",
           "payload_bytes"]


@dataclass(frozen=True)
class SizeReport:
    params: int
    nonzero: int
    payload_bytes: int
    bytes: int
    entropy_bytes: int
    macs: int
    latency_ms: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def serialized_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def payload_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _dense_count(model: nn.Module) -> tuple[int, int]:
    from zoo.compress.export import _Stored

    params = nonzero = 0
    stored = set()
    for m in model.modules():
        if isinstance(m, _Stored):
            params += m.stored_params()
            nonzero += m.nonzero()
            stored.add(m)
    for m in model.modules():
        if m in stored or any(m is s or _is_child(s, m) for s in stored):
            continue
        for p in m.parameters(recurse=False):
            params += p.numel()
            nonzero += int((p != 0).sum())
    return params, nonzero


def _is_child(parent: nn.Module, m: nn.Module) -> bool:
    return any(c is m for c in parent.modules())


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, per example (``example`` is a batch)."""
    from zoo.compress.export import PackedConv2d, PackedLinear, SparseConv2d, SparseLinear

    total = [0]

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(m, SparseLinear):
            total[0] += int(m.values.numel())
        elif isinstance(m, (nn.Linear, PackedLinear)):
            total[0] += m.weight.shape[0] * m.weight.shape[1]
        elif isinstance(m, (nn.Conv2d, PackedConv2d, SparseConv2d)):
            w = m.weight
            total[0] += out.shape[1] * out.shape[2] * out.shape[3] * w.shape[1] * w.shape[2] * w.shape[3]

    kinds = (nn.Linear, nn.Conv2d, PackedLinear, PackedConv2d, SparseLinear, SparseConv2d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return total[0]


def cpu_latency_ms(model: nn.Module, example: torch.Tensor, repeats: int = 30, warmup: int = 3) -> float:
    """Median milliseconds of ``model(example)`` on one CPU thread (``no_grad``, ``eval()``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(example)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(example)
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
        model.train(was)
    return 1000.0 * statistics.median(times)


def _entropy_code(symbols: np.ndarray) -> int:
    """Bytes of ``symbols`` (ints) range-coded with their empirical distribution, plus the table.

    The table is the symbol offset and the count of every symbol in range, 4 bytes each.
    """
    import constriction

    if symbols.size == 0:
        return 0
    lo = int(symbols.min())
    s = (symbols - lo).astype(np.int32)
    counts = np.bincount(s).astype(np.float64)
    if (counts > 0).sum() == 1:
        return 4 * 2  # one symbol: the offset and the count say it all
    model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(s, model)
    return 4 * coder.num_words() + 4 * (len(counts) + 1)


def entropy_coded_bytes(model: nn.Module) -> int:
    """:func:`payload_bytes` with each packed layer's codes replaced by their range-coded size."""
    from zoo.compress.export import _Packed

    total = payload_bytes(model)
    for m in model.modules():
        if isinstance(m, _Packed):
            codes = torch.round(m.weight / m.scale.reshape(-1, *([1] * (m.weight.dim() - 1)))).long()
            bits = m.bits_per_row()
            live = codes.reshape(codes.shape[0], -1)[bits > 0]
            packed = sum(getattr(m, f"codes_{b}").numel() for b in m.depths)
            total += _entropy_code(live.reshape(-1).cpu().numpy()) - packed
    return total


def measure(model: nn.Module, example: torch.Tensor, *, latency: bool = True, repeats: int = 30) -> SizeReport:
    """The :class:`SizeReport` of an exported ``model``; ``example`` is a batch of inputs (latency is timed on it)."""
    params, nonzero = _dense_count(model)
    return SizeReport(
        params=params, nonzero=nonzero, payload_bytes=payload_bytes(model), bytes=serialized_bytes(model),
        entropy_bytes=entropy_coded_bytes(model), macs=count_macs(model, example),
        latency_ms=cpu_latency_ms(model, example, repeats=repeats) if latency else math.nan,
    )
