"""Parameter-free spatial operators: the pool replaces the depthwise conv, shape and semantics kept."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.compress import export, measure
from zoo.layers.parameter_free import InvertedResidual, PfNet, replace_depthwise, spatial_op, spatial_ops


def test_maxpool_block_computes_x_plus_project_of_3x3_max():
    torch.manual_seed(0)
    blk = InvertedResidual(4, 2, "maxpool")
    x = torch.randn(2, 4, 6, 6)
    h = torch.relu(blk.expand(x))
    want = x + blk.project(torch.relu(F.max_pool2d(h, 3, 1, 1)))
    assert torch.allclose(blk(x), want, atol=1e-6)


def test_avgpool_excludes_padding_and_dwconv_is_depthwise():
    x = torch.ones(1, 3, 4, 4)
    assert torch.allclose(spatial_op("avgpool", 3)(x), x)  # border averages only real pixels
    conv = spatial_op("dwconv", 3)
    assert conv.groups == 3 and conv.weight.shape == (3, 1, 3, 3)
    with pytest.raises(ValueError):
        spatial_op("conv", 3)


def test_pool_net_has_no_spatial_parameters_and_fewer_macs():
    x = torch.randn(8, 1, 8, 8)
    dw, mp = PfNet(1, 10, 8, spatial="dwconv"), PfNet(1, 10, 8, spatial="maxpool")
    assert spatial_ops(dw)["dwconv"] == 4 and spatial_ops(mp)["dwconv"] == 0
    n_dw = sum(b.spatial.weight.numel() + b.spatial.bias.numel() for b in dw.modules() if isinstance(b, InvertedResidual))
    rd, rm = measure(dw, x, latency=False), measure(mp, x, latency=False)
    assert rd.params - rm.params == n_dw
    assert rm.macs < rd.macs
    assert mp(x).shape == dw(x).shape == (8, 10)


def test_replace_depthwise_swaps_only_depthwise_convs():
    torch.manual_seed(0)
    net = PfNet(1, 10, 8, spatial="dwconv")
    n_conv = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    assert replace_depthwise(net, "maxpool") == 4
    assert spatial_ops(net) == {"dwconv": 0, "maxpool": 4 + 1, "avgpool": 0}  # +1: the stage's 2x2 downsample
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == n_conv - 4
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(export(net)(x), net.eval()(x), atol=1e-6)
