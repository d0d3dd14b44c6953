"""Size accounting: counts, bytes, entropy-coded bytes and MACs against hand-computed values."""

from __future__ import annotations

import io
import math

import numpy as np
import torch

from zoo.compress import count_macs, cpu_latency_ms, export, measure, serialized_bytes
from zoo.compress.accounting import _entropy_code
from zoo.quant import post_training_quantize
from zoo.training import MLP, SmallCNN


def test_dense_mlp_counts():
    torch.manual_seed(0)
    m = MLP(64, [40], 10)
    r = measure(export(m), torch.randn(4, 64), repeats=2)
    n = 64 * 40 + 40 + 40 * 10 + 10
    assert r.params == n and r.nonzero == n and r.payload_bytes == 4 * n and r.macs == 64 * 40 + 40 * 10
    buf = io.BytesIO()
    torch.save(export(m).state_dict(), buf)
    assert r.bytes == buf.getbuffer().nbytes == serialized_bytes(export(m))
    assert r.entropy_bytes == r.payload_bytes  # nothing to entropy-code in a float model
    assert r.latency_ms > 0


def test_cnn_macs():
    cnn = SmallCNN(1, 10, 4, 8)
    # conv1: 4 x 8 x 8 x (1 x 3 x 3); conv2: 8 x 4 x 4 x (4 x 3 x 3); classifier 8*2*2 -> 10
    assert count_macs(export(cnn), torch.randn(2, 1, 8, 8)) == 4 * 64 * 9 + 8 * 16 * 36 + 32 * 10


def test_entropy_code_is_near_the_empirical_entropy():
    rng = np.random.default_rng(0)
    s = rng.choice(8, size=20000, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01])
    counts = np.bincount(s) / s.size
    h_bits = -(counts * np.log2(counts)).sum() * s.size
    got = _entropy_code(s)
    assert h_bits / 8 <= got <= h_bits / 8 * 1.02 + 64
    assert _entropy_code(np.zeros(1000, dtype=np.int64)) == 8


def test_entropy_bytes_of_a_peaked_quantised_model_beat_its_packed_bytes():
    torch.manual_seed(0)
    # a layer large enough that the coder's table (4 bytes per symbol in range) does not dominate
    m = MLP(256, [256], 10)
    with torch.no_grad():
        m[0].weight.mul_(torch.rand_like(m[0].weight) < 0.1)  # mostly zero codes
    e = export(post_training_quantize(m, 8), sparse=False)
    r = measure(e, torch.randn(4, 256), latency=False)
    assert r.entropy_bytes < 0.6 * r.payload_bytes
    assert math.isnan(r.latency_ms)


def test_latency_restores_threads_and_mode():
    m = MLP(8, [8], 2).train()
    threads = torch.get_num_threads()
    cpu_latency_ms(m, torch.randn(4, 8), repeats=2, warmup=1)
    assert torch.get_num_threads() == threads and m.training
