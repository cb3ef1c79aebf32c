"""specs/darts.nfl compiles to NAS-Bench-301's network (issue #14).

* For every architecture of ``../shared/data/nb301/nb301_cifar10.json``, nflc's parameter
  count from the IR equals the file's ``params`` (millions, 6 decimals), and so does the
  compiled module's (checked on a sample: building all 362 modules takes a while).
* The module computes what DARTS's code computes: a reference network written here after
  DARTS's ``model.py`` (``NetworkCIFAR``/``Cell``: ``s0, s1 = s1, cell(s0, s1)``, nodes from
  the genotype's (op, input) pairs in genotype order, ``torch.cat(states[2:])``) and
  ``operations.py`` with NAS-Bench-301's (NASLib's) op choices (batch norms of the cells' ops
  without affine weights, a batch norm after pooling), gets the same weights and gives the
  same logits.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from torch import nn

import nflc
from nflc.encodings import genotype_to_id

SPECS = Path(__file__).resolve().parents[2] / "specs"
C, LAYERS, CLASSES = 32, 8, 10


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def sep_conv(c, k, stride):
    p = k // 2
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, p, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
                         nn.BatchNorm2d(c, affine=False), nn.ReLU(), nn.Conv2d(c, c, k, 1, p, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))


def dil_conv(c, k, stride):
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, k - 1, dilation=2, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))


OPS = {
    "max_pool_3x3": lambda c, s: nn.Sequential(nn.MaxPool2d(3, s, 1), nn.BatchNorm2d(c, affine=False)),
    "avg_pool_3x3": lambda c, s: nn.Sequential(nn.AvgPool2d(3, s, 1, count_include_pad=False),
                                               nn.BatchNorm2d(c, affine=False)),
    "skip_connect": lambda c, s: nn.Identity() if s == 1 else FactorizedReduce(c, c, affine=False),
    "sep_conv_3x3": lambda c, s: sep_conv(c, 3, s),
    "sep_conv_5x5": lambda c, s: sep_conv(c, 5, s),
    "dil_conv_3x3": lambda c, s: dil_conv(c, 3, s),
    "dil_conv_5x5": lambda c, s: dil_conv(c, 5, s),
}


class Cell(nn.Module):
    def __init__(self, pairs, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c)
        self.preprocess1 = ReLUConvBN(c_p, c)
        self.pairs = pairs
        self._ops = nn.ModuleList(OPS[op](c, 2 if reduction and j < 2 else 1) for op, j in pairs)

    def forward(self, s0, s1):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(4):
            (_, a), (_, b) = self.pairs[2 * i], self.pairs[2 * i + 1]
            states.append(self._ops[2 * i](states[a]) + self._ops[2 * i + 1](states[b]))
        return torch.cat(states[2:], dim=1)


class NetworkCIFAR(nn.Module):
    def __init__(self, genotype):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
        c_pp, c_p, c = 3 * C, 3 * C, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(LAYERS):
            reduction = i in (LAYERS // 3, 2 * LAYERS // 3)
            c = 2 * c if reduction else c
            cell = Cell(genotype["reduce" if reduction else "normal"], c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c
        self.classifier = nn.Linear(c_p, CLASSES)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean((2, 3)))


@pytest.fixture(scope="module")
def darts() -> nflc.Space:
    return nflc.load(SPECS / "darts.nfl")


@pytest.fixture(scope="module")
def entries(shared_data) -> list[dict]:
    return json.loads(Path(shared_data("nb301/nb301_cifar10.json")).read_text())["architectures"]


def test_params_equal_the_files_for_every_architecture(darts, entries):
    assert len(entries) >= 300
    for e in entries:
        arch = darts.architecture(genotype_to_id(e["genotype"]))
        assert round(arch.params / 1e6, 6) == e["params"], e["genotype"]


def _copy(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters and buffers in order; the shapes must agree one to one."""
    a = list(src.parameters()) + list(src.buffers())
    b = list(dst.parameters()) + list(dst.buffers())
    assert [t.shape for t in a] == [t.shape for t in b]
    with torch.no_grad():
        for x, y in zip(a, b, strict=True):
            y.copy_(x)


def _load_into_reference(net, ref: NetworkCIFAR) -> None:
    layers = list(net.layers)
    _copy(nn.Sequential(layers[0], layers[1]), ref.stem)
    cells = [m for m in layers if m.__class__.__name__ == "ConcatCellModule"]
    assert len(cells) == LAYERS
    for mine, theirs in zip(cells, ref.cells, strict=True):
        _copy(mine.preprocess0, theirs.preprocess0)
        _copy(mine.preprocess1, theirs.preprocess1)
        for k, (_, j) in enumerate(theirs.pairs):
            _copy(mine.edges[f"{j}_{k // 2 + 2}"], theirs._ops[k])
    _copy(layers[-1], ref.classifier)


def test_module_params_and_logits_equal_dartss_network(darts, entries):
    rng = random.Random(0)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    for e in rng.sample(entries, 4):
        g = e["genotype"]
        arch = darts.architecture(genotype_to_id(g))
        net = arch.to_module(seed=1)
        ref = NetworkCIFAR(g)
        assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in ref.parameters()) == arch.params
        _load_into_reference(net, ref)
        for mode in (True, False):  # batch statistics, then running statistics
            net.train(mode)
            ref.train(mode)
            with torch.no_grad():
                assert torch.allclose(net(x), ref(x), rtol=1e-4, atol=1e-5), (mode, g)


def test_fx_and_onnx(darts, tmp_path):
    pytest.importorskip("onnx")
    from nflc.backends.export import export_onnx

    arch = darts.architecture(123456789)
    net = arch.to_module().eval()
    x = torch.randn(2, 3, 32, 32)
    gm = torch.fx.symbolic_trace(net)
    with torch.no_grad():
        assert torch.equal(gm(x), net(x))
    diff = export_onnx(net, tmp_path / "darts.onnx", x)
    assert (tmp_path / "darts.onnx").stat().st_size > 100_000
    assert diff is None or diff < 1e-4
