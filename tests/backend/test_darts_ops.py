"""DARTS's operations (sep_conv, dil_conv, factorized_reduce at stride 2) against DARTS's own
definitions (quark0/darts, cnn/operations.py, copied below): the same parameter count from
the IR, and the same outputs with the same weights (the state dicts map one to one)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nflc import ops
from nflc.backends.torch import build_prim


class SepConv(nn.Module):  # DARTS
    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size=kernel_size, stride=stride, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size=kernel_size, stride=1, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):  # DARTS
    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):  # DARTS
    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


# DARTS's OPS table: name -> (reference module, nflc primitive), for C channels and a stride
CASES = {
    "sep_conv_3x3": (lambda C, s: SepConv(C, C, 3, s, 1), lambda C, s: ops.Prim("sep_conv", (("k", 3), ("out", C), ("stride", s)))),
    "sep_conv_5x5": (lambda C, s: SepConv(C, C, 5, s, 2), lambda C, s: ops.Prim("sep_conv", (("k", 5), ("out", C), ("stride", s)))),
    "dil_conv_3x3": (lambda C, s: DilConv(C, C, 3, s, 2, 2),
                     lambda C, s: ops.Prim("dil_conv", (("k", 3), ("out", C), ("stride", s), ("dilation", 2)))),
    "dil_conv_5x5": (lambda C, s: DilConv(C, C, 5, s, 4, 2),
                     lambda C, s: ops.Prim("dil_conv", (("k", 5), ("out", C), ("stride", s), ("dilation", 2)))),
    "skip_connect": (lambda C, s: FactorizedReduce(C, C), lambda C, s: ops.Prim("factorized_reduce", (("out", C), ("stride", s)))),
}


# DARTS's skip_connect is FactorizedReduce only at stride 2 (an identity at stride 1)
@pytest.mark.parametrize("name, stride", [(n, s) for n in CASES for s in (1, 2) if (n, s) != ("skip_connect", 1)])
def test_darts_op_params_and_outputs(name, stride):
    c, shape = 6, (6, 8, 8)
    ref_fn, prim_fn = CASES[name]
    torch.manual_seed(0)
    ref = ref_fn(c, stride).eval()
    prim = prim_fn(c, stride)
    ours = build_prim(prim, shape).eval()
    n = sum(p.numel() for p in ref.parameters())
    assert sum(p.numel() for p in ours.parameters()) == n == ops.prim_params(prim, shape)
    ref_state = list(ref.state_dict().values())
    ours.load_state_dict(dict(zip(ours.state_dict().keys(), ref_state, strict=True)))
    x = torch.randn(2, *shape)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape and tuple(got.shape[1:]) == ops.PRIMS[prim.name].shape(prim, shape)
    torch.testing.assert_close(got, want)


def test_even_kernels_are_refused():
    with pytest.raises(ops.ShapeError, match="odd kernel"):
        ops.PRIMS["sep_conv"].shape(ops.Prim("sep_conv", (("k", 4), ("out", 4), ("stride", 1))), (4, 8, 8))
