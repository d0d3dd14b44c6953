"""Self-compression: the size term Q, its gradient, live-input counting, removal of 0-bit channels at export."""

import math

import torch
import torch.nn.functional as F

from zoo.compress import export, measure
from zoo.quant.self_compressing import SelfCompression, remove_zero_bit_channels, scn_size
from zoo.training import MLP


def _model(seed=0):
    torch.manual_seed(seed)
    return MLP(8, [6, 5], 3)


def test_size_is_mean_bits_per_weight_and_differentiable():
    m = _model()
    scn = SelfCompression(m, init_bits=3.0)
    n = 8 * 6 + 6 * 5 + 5 * 3
    assert math.isclose(float(scn.size()), 3.0, rel_tol=1e-6)
    bits, count = scn_size(m)
    assert count == n
    scn.size().backward()
    q0 = scn.quantizers[0]
    # dQ/db_i = I*H*W / N for every channel of the first layer
    assert torch.allclose(q0.bits.grad, torch.full_like(q0.bits, 8 / n))


def test_live_inputs_shrink_next_layer_cost():
    m = _model()
    scn = SelfCompression(m, init_bits=4.0)
    with torch.no_grad():
        scn.quantizers[0].bits[:3] = 0.0  # half of layer 1's channels dead
    full, _ = scn_size(m, live_inputs=False)
    live, _ = scn_size(m, live_inputs=True)
    # layer 2 (5 rows x 6 inputs x 4 bits) pays for 3 live inputs only
    assert math.isclose(float(full - live), 5 * 3 * 4.0, rel_tol=1e-6)


def test_size_loss_lowers_bit_depths_and_removes_channels_at_export():
    m = _model()
    scn = SelfCompression(m, init_bits=2.0)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for _ in range(150):
        loss = scn.loss(F.cross_entropy(m(x), y), gamma=5.0)
        opt.zero_grad(); loss.backward(); opt.step()
    assert scn.bits_per_weight() < 1.5
    removed = remove_zero_bit_channels(m)
    assert removed > 0
    with torch.no_grad():
        before = m(x)
        ex = export(m)
        assert float((ex(x) - before).abs().max()) < 1e-4  # export keeps the function
    dense_params = sum(p.numel() for p in _model().parameters())
    rep = measure(ex, x, latency=False)
    assert rep.nonzero < dense_params
    # exported layers are narrower than the dense ones by the removed channels
    widths = [mod.weight.shape[0] for mod in ex.modules() if hasattr(mod, "weight") and mod.weight.dim() == 2]
    assert sum(widths[:-1]) <= 6 + 5 - 1 or rep.payload_bytes < 4 * dense_params


def test_no_size_loss_keeps_bits():
    m = _model()
    scn = SelfCompression(m, init_bits=2.0)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for _ in range(50):
        loss = scn.loss(F.cross_entropy(m(x), y), gamma=0.0)
        opt.zero_grad(); loss.backward(); opt.step()
    assert scn.bits_per_weight() > 1.8
