"""NATS-Bench's size space (specs/nats_sss.nfl): exact parameter counts.

``arch.params`` (from the IR alone) equals the compiled module's number of parameters, and
both equal the parameters of NATS-Bench's own network, rebuilt here from xautodl's
``DynamicShapeTinyNet`` / ``InferCell`` / ``ResNetBasicblock`` definitions (stem conv3x3 +
bn; cell, resblock(stride 2), cell, resblock(stride 2), cell; bn, relu, pooling, a linear
classifier with bias; in a cell the edges from X0 map C_in to C_out: ReLUConvBN for
nor_conv_3x3, and skip_connect is an identity when C_in == C_out, else a FactorizedReduce
at stride 1, a 1x1 convolution and batch norm).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import nflc

from pathlib import Path

SPECS = Path(__file__).resolve().parents[2] / "specs"

GENOTYPE = [[("nor_conv_3x3", 0)], [("nor_conv_3x3", 0), ("nor_conv_3x3", 1)],
            [("skip_connect", 0), ("nor_conv_3x3", 1), ("nor_conv_3x3", 2)]]


def _relu_conv_bn(c_in, c_out, k, stride):
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, bias=False), nn.BatchNorm2d(c_out))


class _InferCell(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.layers = nn.ModuleList()
        for node in GENOTYPE:
            for op, src in node:
                cin = c_in if src == 0 else c_out
                if op == "nor_conv_3x3":
                    self.layers.append(_relu_conv_bn(cin, c_out, 3, 1))
                elif cin == c_out:
                    self.layers.append(nn.Identity())
                else:  # FactorizedReduce(stride=1)
                    self.layers.append(nn.Sequential(nn.Conv2d(cin, c_out, 1, bias=False), nn.BatchNorm2d(c_out)))


class _ResBlock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.a = _relu_conv_bn(c_in, c_out, 3, 2)
        self.b = _relu_conv_bn(c_out, c_out, 3, 1)
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))


def nats_reference_params(channels: tuple[int, ...], classes: int = 10) -> int:
    c = channels
    parts = [nn.Conv2d(3, c[0], 3, padding=1, bias=False), nn.BatchNorm2d(c[0]),
             _InferCell(c[0], c[0]), _ResBlock(c[0], c[1]), _InferCell(c[1], c[2]), _ResBlock(c[2], c[3]),
             _InferCell(c[3], c[4]), nn.BatchNorm2d(c[4]), nn.Linear(c[4], classes)]
    return sum(p.numel() for m in parts for p in m.parameters())


@pytest.fixture(scope="module")
def sss() -> nflc.Space:
    return nflc.load(SPECS / "nats_sss.nfl")


def test_params_equal_nats_bench_network(sss):
    """A spread of architectures (every value of every stage, many combinations): the IR's
    count against the reference network's."""
    for values in itertools.islice(itertools.product((8, 16, 24, 32, 40, 48, 56, 64), repeat=5), 0, None, 331):
        a = sss.architecture(":".join(map(str, values)))
        assert a.params == nats_reference_params(values), a.id


@pytest.mark.parametrize("ident", ["8:8:8:8:8", "64:64:64:64:64", "16:32:24:8:64", "64:8:64:8:64", "24:24:48:48:8"])
def test_module_numel_and_forward(sss, ident):
    a = sss.architecture(ident)
    m = a.to_module(seed=1)
    assert sum(p.numel() for p in m.parameters()) == a.params == nats_reference_params(tuple(map(int, ident.split(":"))))
    y = m(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    # the width-changing cells: 1x1 projection on the skip edge exactly where NATS has one
    cells = [layer for layer in m.layers if type(layer).__name__ == "CellModule"]
    c = list(map(int, ident.split(":")))
    ins, outs = [c[0], c[1], c[3]], [c[0], c[2], c[4]]
    for cell, cin, cout in zip(cells, ins, outs, strict=True):
        skip = cell.edges["0_3"]
        assert isinstance(skip, nn.Identity) == (cin == cout)


def test_fx_and_onnx_export(sss, tmp_path):
    pytest.importorskip("onnx")
    from nflc.backends.export import export_onnx

    a = sss.architecture("16:32:24:8:64")
    m = a.to_module(seed=0).eval()
    torch.fx.symbolic_trace(m)
    diff = export_onnx(m, tmp_path / "m.onnx", torch.randn(2, 3, 32, 32))
    assert diff is None or diff < 1e-4


@pytest.mark.parametrize("c_in, out, stride", [(4, 6, 1), (4, 6, 2), (5, 7, 2), (4, 4, 1), (4, 4, 2)])
def test_factorized_reduce(c_in, out, stride):
    from nflc import ops
    from nflc.backends.torch import build_prim

    shape = (c_in, 6, 6)
    prim = ops.Prim("factorized_reduce", (("out", out), ("stride", stride)))
    m = build_prim(prim, shape)
    identity = stride == 1 and out == c_in
    assert isinstance(m, nn.Identity) == identity
    assert sum(p.numel() for p in m.parameters()) == ops.prim_params(prim, shape) == (0 if identity else c_in * out + 2 * out)
    y = m.eval()(torch.randn(2, *shape))
    assert tuple(y.shape[1:]) == ops.PRIMS["factorized_reduce"].shape(prim, shape) == (out, 6 // stride, 6 // stride)
    with pytest.raises(ops.ShapeError, match="even height"):
        ops.PRIMS["factorized_reduce"].shape(ops.Prim("factorized_reduce", (("out", 4), ("stride", 2))), (4, 5, 5))
