"""L^2 post-training compression: the size term, the calibration data and the entropy stage all matter."""

import torch
import torch.nn.functional as F

from zoo.compress import export, measure
from zoo.quant.l2_post_training import L2Transform, dense_bytes, estimated_bytes, l2_compress, soft_entropy_bits
from zoo.training import MLP


def _trained(seed=0):
    """A small MLP trained on a separable synthetic task, and held-out data from the same task."""
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(32, 4, generator=g)
    x = torch.randn(1200, 32, generator=g) * 2.0
    y = (x @ w_true).argmax(1)
    torch.manual_seed(seed)
    model = MLP(32, [256, 256], 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = F.cross_entropy(model(x[:800]), y[:800])
        opt.zero_grad(); loss.backward(); opt.step()
    return model, x[:800], x[800:], y[800:]


def _acc(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_soft_entropy_value_is_hard_histogram_and_has_gradient():
    u = torch.tensor([0.1, -0.2, 0.9, 1.2, 0.0, 2.1], requires_grad=True)
    h = soft_entropy_bits(u, -8, 7)
    p = torch.tensor([3 / 6, 2 / 6, 1 / 6])
    assert abs(float(h.detach()) - float(-(p * p.log2()).sum())) < 1e-5
    h.backward()
    assert u.grad is not None and u.grad.abs().sum() > 0


def test_counter_tracks_the_ans_coded_size():
    model, xc, _, _ = _trained()
    l2_compress(model, xc, ratio=12.0, steps=40)
    est = float(estimated_bytes(model, None).detach())
    coded = measure(export(model), xc[:8], latency=False).entropy_bytes
    assert abs(est - coded) / coded < 0.15, (est, coded)


def test_size_term_meets_the_budget_and_a_smaller_budget_gives_fewer_bytes():
    sizes = {}
    for ratio in (6.0, 20.0):
        model, xc, _, _ = _trained()
        info = l2_compress(model, xc, ratio=ratio, steps=80)
        ex = export(model)
        sizes[ratio] = measure(ex, xc[:8], latency=False).entropy_bytes
        assert abs(info["est_bytes"] / info["budget_bytes"] - 1) < 0.25, (ratio, info)
    assert sizes[20.0] < 0.6 * sizes[6.0], sizes


def test_entropy_stage_shrinks_below_bit_packing():
    model, xc, _, _ = _trained()
    d = dense_bytes(model)
    l2_compress(model, xc, ratio=15.0, steps=80)
    r = measure(export(model), xc[:8], latency=False)
    assert r.entropy_bytes < 0.7 * r.payload_bytes
    assert d / r.entropy_bytes > 10


def test_calibration_data_matters():
    model, xc, xt, yt = _trained()
    noise, _, _, _ = _trained()
    l2_compress(model, xc, ratio=25.0, steps=80)
    l2_compress(noise, torch.zeros_like(xc), ratio=25.0, steps=80)
    assert _acc(model, xt, yt) > _acc(noise, xt, yt) + 0.05


def test_export_is_exact_and_pruned():
    model, xc, xt, _ = _trained()
    l2_compress(model, xc, ratio=15.0, steps=40)
    with torch.no_grad():
        ex = export(model)
        assert float((model(xt) - ex(xt)).abs().max()) < 1e-4
    qs = [m.parametrizations.weight[0] for m in model.modules() if hasattr(m, "parametrizations")]
    assert all(isinstance(q, L2Transform) and q.hard for q in qs)
    r = measure(ex, xc[:8], latency=False)
    assert r.nonzero < 0.5 * r.params
