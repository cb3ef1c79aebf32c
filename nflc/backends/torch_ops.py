"""The torch module of every primitive op, one builder per op (:data:`nflc.ops.PRIMS`
names each op's builder here, in its ``torch`` field), and the modules they build that
torch does not have: NAS-Bench-201's ResNet block, DARTS's separable, dilated and
factorized-reduce convolutions, a global average pool.

A builder takes the bound primitive, the shape of its input (without the batch axis) and
``skip_init``: with it, large linear and convolution layers are allocated without torch's
default draw, for the caller (who draws them, ``init = "scheme"``) to initialise.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from nflc import ops

Builder = Callable[[ops.Prim, tuple[int, ...], bool], nn.Module]


class GlobalAvgPool(nn.Module):
    """[N, C, H, W] -> [N, C]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class ResBlock(nn.Module):
    """NAS-Bench-201's ResNet basic block (same submodules, so parameter counts agree)."""

    def __init__(self, c_in: int, c_out: int, stride: int, skip_init: bool = False):
        super().__init__()
        conv = lambda *a: _weighted(nn.Conv2d, skip_init, *a, bias=False)  # noqa: E731
        self.downsample: nn.Sequential | None
        self.conv_a = nn.Sequential(nn.ReLU(), conv(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out))
        self.conv_b = nn.Sequential(nn.ReLU(), conv(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out))
        if stride == 2:
            self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), conv(c_in, c_out, 1, 1, 0))
        elif c_in != c_out:
            self.downsample = nn.Sequential(nn.ReLU(), conv(c_in, c_out, 1, 1, 0), nn.BatchNorm2d(c_out))
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


class FactorizedReduce(nn.Module):
    """NAS-Bench-201's (stride 1: conv1x1 >> bn) and DARTS's (stride 2: relu, two 1x1
    stride-2 convolutions, the second on the map shifted by one pixel, concatenated, bn)."""

    def __init__(self, c_in: int, c_out: int, stride: int, skip_init: bool = False, affine: bool = True):
        super().__init__()
        self.stride = stride
        conv = lambda o: _weighted(nn.Conv2d, skip_init, c_in, o, 1, stride, 0, bias=False)  # noqa: E731
        if stride == 1:
            self.conv = conv(c_out)
        else:
            self.relu = nn.ReLU()
            self.conv_1 = conv(c_out // 2)
            self.conv_2 = conv(c_out - c_out // 2)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.bn(self.conv(x))
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def darts_conv(name: str, c_in: int, c_out: int, k: int, stride: int, dilation: int = 1,
               skip_init: bool = False, affine: bool = True) -> nn.Sequential:
    """DARTS's SepConv and DilConv (its ``op`` Sequential, submodules in DARTS's order, so a
    DARTS state dict's ``op.N`` entries map one to one). No convolution has a bias."""
    conv = lambda i, o, kk, st, pad, dil, groups: _weighted(  # noqa: E731
        nn.Conv2d, skip_init, i, o, kk, st, pad, dilation=dil, groups=groups, bias=False)
    pad = dilation * (k - 1) // 2
    if name == "dil_conv":
        return nn.Sequential(nn.ReLU(), conv(c_in, c_in, k, stride, pad, dilation, c_in), conv(c_in, c_out, 1, 1, 0, 1, 1),
                             nn.BatchNorm2d(c_out, affine=affine))
    return nn.Sequential(nn.ReLU(), conv(c_in, c_in, k, stride, pad, 1, c_in), conv(c_in, c_in, 1, 1, 0, 1, 1),
                         nn.BatchNorm2d(c_in, affine=affine), nn.ReLU(), conv(c_in, c_in, k, 1, pad, 1, c_in),
                         conv(c_in, c_out, 1, 1, 0, 1, 1), nn.BatchNorm2d(c_out, affine=affine))


_SKIP_DRAW_NUMEL = 8192  # below this, building on "meta" costs more than torch's own draw


def _weighted(cls: type, skip_init: bool, *args: Any, **kwargs: Any) -> nn.Module:
    """A Linear(in, out) or Conv2d(in, out, k, ...). With ``skip_init`` the caller
    initialises the weights, so large layers skip torch's default draw (allocated, not drawn)."""
    numel = args[0] * args[1] * (args[2] ** 2 if cls is nn.Conv2d else 1)
    if not skip_init or numel < _SKIP_DRAW_NUMEL:
        return cls(*args, **kwargs)
    m = cls(*args, device="meta", **kwargs)
    m.weight = nn.Parameter(torch.empty(m.weight.shape))
    if m.bias is not None:
        m.bias = nn.Parameter(torch.empty(m.bias.shape))
    return m


def identity(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return nn.Identity()


def relu(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return nn.ReLU()


def linear(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return _weighted(nn.Linear, skip_init, shape[0], p.arg("out"), bias=p.arg("bias"))


def conv2d(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return _weighted(nn.Conv2d, skip_init, shape[0], p.arg("out"), p.arg("k"), p.arg("stride"), p.arg("padding"),
                     bias=p.arg("bias"))


def batchnorm(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    affine = bool(p.arg("affine"))
    return nn.BatchNorm2d(shape[0], affine=affine) if len(shape) == 3 else nn.BatchNorm1d(shape[0], affine=affine)


def avg_pool(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return nn.AvgPool2d(p.arg("k"), p.arg("stride"), p.arg("padding"), count_include_pad=False)


def max_pool(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return nn.MaxPool2d(p.arg("k"), p.arg("stride"), p.arg("padding"))


def flatten(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return nn.Flatten()


def global_avg_pool(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return GlobalAvgPool()


def resblock(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return ResBlock(shape[0], int(p.arg("out")), int(p.arg("stride")), skip_init)


def sep_conv(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return darts_conv("sep_conv", shape[0], int(p.arg("out")), int(p.arg("k")), int(p.arg("stride")), 1, skip_init,
                      bool(p.arg("affine")))


def dil_conv(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    return darts_conv("dil_conv", shape[0], int(p.arg("out")), int(p.arg("k")), int(p.arg("stride")),
                      int(p.arg("dilation")), skip_init, bool(p.arg("affine")))


def factorized_reduce(p: ops.Prim, shape: tuple[int, ...], skip_init: bool) -> nn.Module:
    out, stride = int(p.arg("out")), int(p.arg("stride"))
    if stride == 1 and out == shape[0]:
        return nn.Identity()
    return FactorizedReduce(shape[0], out, stride, skip_init, bool(p.arg("affine")))


def builder(name: str) -> Builder:
    """The builder :data:`nflc.ops.PRIMS` names for op ``name``."""
    spec = ops.PRIMS[name]
    fn = globals().get(spec.torch) if spec.torch is not None else None
    if fn is None:
        raise NotImplementedError(f"no torch builder for primitive '{name}'")  # every op but zero has one (tested)
    return fn
