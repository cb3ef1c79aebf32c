"""The registry of primitive ops: one table row says everything an op is.

Every primitive declares here what the compiler, the cost model, the backend and the
analyzers need, so they cannot disagree (:class:`PrimSpec`): its parameters, its shape rule
(``shape``, in words ``rule``), its parameter and FLOP counts, its semantic class for the
analyzers (``kind``), its torch module (``torch``: a builder of
:mod:`nflc.backends.torch_ops`, named so that this table needs no torch), how its weights
are initialised (``init``), whether the exact infinite-width kernels cover it (``exact``)
and whether it trains in a batched population (``batch``). Composite ops
(``relu >> conv2d(3) >> batchnorm``) are sequences of primitives. FLOPs are
multiply-accumulates of the forward pass of one input: convolutions and linear layers
(bias adds included); element-wise work (ReLU, batch norm, pooling) is not counted.
NAS-Bench-201's published FLOPs count that work too, so on CIFAR-10 they exceed nflc's by
0.16M plus 0.43M per conv edge and 1.29M per pooling edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

Shape = tuple[int, ...]
ArgValue = int | bool


class ShapeError(ValueError):
    """An op cannot take an input of this shape; the message says why and what fits."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: Literal["int", "bool"]
    # a constant, or "required", "in_channels" (the input's channel/feature count),
    # "same_padding" ((k - 1) // 2: size-keeping for odd k), "space_bias" (the space's `bias` option),
    # "true_unset" (true, and left out of the arguments unless given false: `batchnorm` stays
    # `batchnorm`, so specs written before the parameter existed keep their text and hash)
    default: ArgValue | str = "required"


@dataclass(frozen=True)
class Prim:
    """A primitive op with resolved arguments (hashable, used as a cost-table key)."""

    name: str
    args: tuple[tuple[str, ArgValue], ...] = ()

    def arg(self, name: str) -> ArgValue:
        args = dict(self.args)
        if name not in args and any(ps.name == name and ps.default == "true_unset" for ps in PRIMS[self.name].params):
            return True
        return args[name]

    def __str__(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}(" + ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.args) + ")"


# How an op's weights start (read by the torch backend): "none" (it has none), "fixed" (torch's
# own values: a batch norm's scale 1 and shift 0), "scheme" (every linear and convolution
# weight in it is drawn from the space's `init` scheme, one seeded generator per parameter).
Init = Literal["none", "fixed", "scheme"]


@dataclass(frozen=True)
class PrimSpec:
    name: str
    params: tuple[ParamSpec, ...]
    doc: str
    shape: Callable[[Prim, Shape], Shape]
    n_params: Callable[[Prim, Shape], int] = lambda p, s: 0
    flops: Callable[[Prim, Shape, Shape], int] = lambda p, si, so: 0
    parameterized: bool = False
    kind: str = "other"  # semantic class used by the analyzers (docs/CONTRACTS.md)
    kernel: Callable[[Prim], int | None] = lambda p: None
    aliases: tuple[str, ...] = field(default=())
    rule: str = "keeps the shape"  # the shape rule in words (`nflc ops`, docs/LANGUAGE.md)
    # what every op must declare (no default):
    torch: str | None = field(kw_only=True)  # its builder in nflc.backends.torch_ops; None: builds nothing (zero)
    init: Init = field(kw_only=True)
    exact: bool = field(kw_only=True)  # the exact kernel engine has its map (nflc.analysis.kernels)
    batch: bool = field(kw_only=True)  # a batched population implements it (nflc.verify.population)


def _numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _need_rank(p: Prim, shape: Shape, rank: int, fix: str) -> None:
    if len(shape) != rank:
        want = "[features]" if rank == 1 else "[channels, height, width]"
        raise ShapeError(f"{p.name} expects an input of shape {want} but gets {list(shape)}; {fix}")


def _global_pool_shape(p: Prim, s: Shape) -> Shape:
    _need_rank(p, s, 3, "it pools images")
    return (s[0],)


def _linear_shape(p: Prim, s: Shape) -> Shape:
    _need_rank(p, s, 1, "put flatten or global_avg_pool before it")
    return (int(p.arg("out")),)


def _conv_out(size: int, k: int, stride: int, pad: int, who: str) -> int:
    out = (size + 2 * pad - k) // stride + 1
    if out < 1:
        raise ShapeError(f"{who} with kernel {k}, stride {stride}, padding {pad} leaves no output from size {size}")
    return out


def _conv_shape(p: Prim, s: Shape) -> Shape:
    _need_rank(p, s, 3, "conv2d works on images; check the space's input")
    k, st, pad = int(p.arg("k")), int(p.arg("stride")), int(p.arg("padding"))
    return (int(p.arg("out")), _conv_out(s[1], k, st, pad, "conv2d"), _conv_out(s[2], k, st, pad, "conv2d"))


def _pool_shape(p: Prim, s: Shape) -> Shape:
    _need_rank(p, s, 3, "pooling works on images")
    k, st, pad = int(p.arg("k")), int(p.arg("stride")), int(p.arg("padding"))
    if 2 * pad > k:  # torch: "pad should be at most half of effective kernel size"
        raise ShapeError(f"{p.name} with kernel {k} takes padding of at most {k // 2}, got {pad}; "
                         f"use padding <= {k // 2} or a larger kernel")
    return (s[0], _conv_out(s[1], k, st, pad, p.name), _conv_out(s[2], k, st, pad, p.name))


def _halving_stride(p: Prim, s: Shape, why_stride: str, why_even: str) -> int:
    """The stride (1 or 2) of an op on images whose stride 2 needs an even height and width."""
    _need_rank(p, s, 3, f"{p.name} works on images")
    st = int(p.arg("stride"))
    if st not in (1, 2):
        raise ShapeError(f"{p.name} takes stride 1 or 2, got {st}; {why_stride}")
    if st == 2 and (s[1] % 2 or s[2] % 2):
        raise ShapeError(f"{p.name} with stride 2 needs an even height and width but gets {list(s)}; {why_even}")
    return st


def _resblock_shape(p: Prim, s: Shape) -> Shape:
    # at stride 2 the 3x3 branch gives ceil(h / 2) rows, the avg_pool(2) shortcut floor(h / 2)
    st = _halving_stride(p, s, "NAS-Bench-201's block has no other shortcut",
                         "its two branches would differ in size (pad or pool the map to an even size first)")
    return (int(p.arg("out")), _conv_out(s[1], 3, st, 1, "resblock"), _conv_out(s[2], 3, st, 1, "resblock"))


def resblock_parts(p: Prim, s: Shape) -> list[tuple[Prim, Shape]]:
    """NAS-Bench-201's ResNet basic block as primitives, with their input shapes.

    conv_a = relu >> conv3x3(stride) >> bn, conv_b = relu >> conv3x3 >> bn, and a shortcut:
    avg_pool(2, stride 2) >> conv1x1 when the stride is 2, relu >> conv1x1 >> bn when only
    the channels change, identity otherwise.
    """
    c_in, c_out, st = s[0], int(p.arg("out")), int(p.arg("stride"))
    conv = lambda k, out, stride, pad: Prim("conv2d", (("k", k), ("out", out), ("stride", stride), ("padding", pad), ("bias", False)))  # noqa: E731
    bn = Prim("batchnorm")
    parts: list[tuple[Prim, Shape]] = []
    a_in = s
    a_conv = conv(3, c_out, st, 1)
    mid = _conv_shape(a_conv, a_in)
    parts += [(Prim("relu"), a_in), (a_conv, a_in), (bn, mid)]
    b_conv = conv(3, c_out, 1, 1)
    parts += [(Prim("relu"), mid), (b_conv, mid), (bn, mid)]
    if st == 2:
        pool = Prim("avg_pool", (("k", 2), ("stride", 2), ("padding", 0)))
        pooled = _pool_shape(pool, s)
        parts += [(pool, s), (conv(1, c_out, 1, 0), pooled)]
    elif c_in != c_out:
        parts += [(Prim("relu"), s), (conv(1, c_out, 1, 0), s), (bn, mid)]
    return parts


def _resblock_params(p: Prim, s: Shape) -> int:
    return sum(prim_params(q, qs) for q, qs in resblock_parts(p, s))


def _resblock_flops(p: Prim, s: Shape, so: Shape) -> int:
    return sum(prim_flops(q, qs) for q, qs in resblock_parts(p, s))


def _fr_identity(p: Prim, s: Shape) -> bool:
    return int(p.arg("stride")) == 1 and int(p.arg("out")) == s[0]


def _fr_shape(p: Prim, s: Shape) -> Shape:
    # at stride 2 its two 1x1 convolutions read x and x shifted by one pixel: ceil and floor of h / 2
    st = _halving_stride(p, s, "it is a 1x1 projection or a halving", "its two halves would differ in size")
    return (int(p.arg("out")), s[1] // st, s[2] // st)


def _bn(p: Prim, c: int) -> int:
    """Parameters of a batch norm over ``c`` channels inside op ``p`` (none when not affine)."""
    return 2 * c if p.arg("affine") else 0


def _fr_params(p: Prim, s: Shape) -> int:
    if _fr_identity(p, s):
        return 0
    out = int(p.arg("out"))
    return s[0] * out + _bn(p, out)  # 1x1 convolution(s) without bias, then batch norm


def _fr_flops(p: Prim, s: Shape, so: Shape) -> int:
    return 0 if _fr_identity(p, s) else s[0] * so[0] * so[1] * so[2]


def _dw_shape(p: Prim, s: Shape) -> Shape:
    """sep_conv / dil_conv: DARTS's padding dilation * (k - 1) // 2 keeps the size at stride 1."""
    _need_rank(p, s, 3, f"{p.name} works on images")
    k, st = int(p.arg("k")), int(p.arg("stride"))
    if k % 2 == 0:
        raise ShapeError(f"{p.name} takes an odd kernel, got {k}; DARTS pads by dilation * (k - 1) / 2")
    d = int(p.arg("dilation")) if p.name == "dil_conv" else 1
    pad = d * (k - 1) // 2
    size = lambda n: (n + 2 * pad - d * (k - 1) - 1) // st + 1  # noqa: E731
    return (int(p.arg("out")), size(s[1]), size(s[2]))


def _sep_params(p: Prim, s: Shape) -> int:
    k, c, out = int(p.arg("k")), s[0], int(p.arg("out"))
    # relu, dw k x k (stride), 1x1 c -> c, bn(c), relu, dw k x k, 1x1 c -> out, bn(out); no biases
    return 2 * k * k * c + c * c + c * out + _bn(p, c) + _bn(p, out)


def _sep_flops(p: Prim, s: Shape, so: Shape) -> int:
    k, c, out = int(p.arg("k")), s[0], int(p.arg("out"))
    pos = so[1] * so[2]
    return (2 * k * k * c + c * c + c * out) * pos


def _dil_params(p: Prim, s: Shape) -> int:
    k, c, out = int(p.arg("k")), s[0], int(p.arg("out"))
    return k * k * c + c * out + _bn(p, out)  # relu, dw k x k dilated (stride), 1x1 c -> out, bn(out)


def _dil_flops(p: Prim, s: Shape, so: Shape) -> int:
    k, c, out = int(p.arg("k")), s[0], int(p.arg("out"))
    return (k * k * c + c * out) * so[1] * so[2]


def _linear_params(p: Prim, s: Shape) -> int:
    out = int(p.arg("out"))
    return s[0] * out + (out if p.arg("bias") else 0)


def _conv_params(p: Prim, s: Shape) -> int:
    k, out = int(p.arg("k")), int(p.arg("out"))
    return k * k * s[0] * out + (out if p.arg("bias") else 0)


def _conv_flops(p: Prim, s: Shape, so: Shape) -> int:
    k = int(p.arg("k"))
    per_pos = k * k * s[0] * so[0] + (so[0] if p.arg("bias") else 0)
    return per_pos * so[1] * so[2]


def _linear_flops(p: Prim, s: Shape, so: Shape) -> int:
    return s[0] * so[0] + (so[0] if p.arg("bias") else 0)


_POOL_RULE = "[c, h, w] -> [c, (h + 2 padding - k) // stride + 1, same for w]; padding <= k // 2"
_K = ParamSpec("k", "int")
_STRIDE = ParamSpec("stride", "int", 1)
_PAD = ParamSpec("padding", "int", "same_padding")
_BIAS = ParamSpec("bias", "bool", "space_bias")
# batch norms with a learned scale and shift (DARTS's cell ops, as NAS-Bench-301 builds them, have none)
_AFFINE = ParamSpec("affine", "bool", "true_unset")

PRIMS: dict[str, PrimSpec] = {
    spec.name: spec
    for spec in [
        PrimSpec("zero", (), "no edge: contributes nothing, no parameters", lambda p, s: s, kind="zero",
                 torch=None, init="none", exact=True, batch=True),
        PrimSpec("skip", (), "identity", lambda p, s: s, kind="skip", torch="identity", init="none", exact=True, batch=True),
        PrimSpec("relu", (), "ReLU", lambda p, s: s, torch="relu", init="none", exact=True, batch=True),
        PrimSpec("linear", (ParamSpec("out", "int", "in_channels"), _BIAS), "fully connected layer",
                 _linear_shape, _linear_params, _linear_flops, parameterized=True, kind="linear",
                 rule="[d] -> [out]", torch="linear", init="scheme", exact=True, batch=True),
        PrimSpec("conv2d", (_K, ParamSpec("out", "int", "in_channels"), _STRIDE, _PAD, _BIAS),
                 "2-d convolution (k x k; default padding (k - 1) // 2, size-keeping for odd k)",
                 _conv_shape, _conv_params, _conv_flops, parameterized=True, kind="conv",
                 kernel=lambda p: int(p.arg("k")),
                 rule="[c, h, w] -> [out, (h + 2 padding - k) // stride + 1, same for w]",
                 torch="conv2d", init="scheme", exact=False, batch=False),
        PrimSpec("batchnorm", (_AFFINE,), "batch normalisation (affine: a learned scale and shift per channel)",
                 lambda p, s: s, lambda p, s: _bn(p, s[0]), parameterized=True, kind="other",
                 torch="batchnorm", init="fixed", exact=False, batch=False),
        PrimSpec("avg_pool", (_K, _STRIDE, _PAD), "average pooling (padding not counted)",
                 _pool_shape, kind="pool", kernel=lambda p: int(p.arg("k")), rule=_POOL_RULE,
                 torch="avg_pool", init="none", exact=False, batch=False),
        PrimSpec("max_pool", (_K, _STRIDE, _PAD), "max pooling", _pool_shape, kind="pool",
                 kernel=lambda p: int(p.arg("k")), rule=_POOL_RULE, torch="max_pool", init="none", exact=False, batch=False),
        PrimSpec("flatten", (), "[C, H, W] -> [C*H*W]", lambda p, s: (_numel(s),), rule="[c, h, w] -> [c*h*w]",
                 torch="flatten", init="none", exact=False, batch=True),
        PrimSpec("global_avg_pool", (), "[C, H, W] -> [C], mean over positions",
                 _global_pool_shape, rule="[c, h, w] -> [c]", torch="global_avg_pool", init="none", exact=False,
                 batch=False),
        PrimSpec("factorized_reduce", (ParamSpec("out", "int", "in_channels"), _STRIDE, _AFFINE),
                 "NAS-Bench-201's and DARTS's skip between shapes: identity at stride 1 with equal channels, "
                 "else conv1x1 >> batchnorm (stride 1) or relu >> two 1x1 stride-2 convolutions (the second "
                 "shifted by one pixel) concatenated >> batchnorm (stride 2)",
                 _fr_shape, _fr_params, _fr_flops, parameterized=True, kind="conv", kernel=lambda p: 1,
                 rule="[c, h, w] -> [out, h / stride, w / stride] (stride 2: h and w even)",
                 torch="factorized_reduce", init="scheme", exact=False, batch=False),
        PrimSpec("sep_conv", (_K, ParamSpec("out", "int", "in_channels"), _STRIDE, _AFFINE),
                 "DARTS's separable convolution: (relu, depthwise k x k, conv1x1, batchnorm) twice, "
                 "the stride on the first depthwise convolution, the channel change on the last 1x1",
                 _dw_shape, _sep_params, _sep_flops, parameterized=True, kind="conv",
                 kernel=lambda p: int(p.arg("k")),
                 rule="[c, h, w] -> [out, (h - 1) // stride + 1, same for w] (k odd)",
                 torch="sep_conv", init="scheme", exact=False, batch=False),
        PrimSpec("dil_conv", (_K, ParamSpec("out", "int", "in_channels"), _STRIDE, ParamSpec("dilation", "int", 2), _AFFINE),
                 "DARTS's dilated convolution: relu, depthwise k x k with dilation (and stride), conv1x1, batchnorm",
                 _dw_shape, _dil_params, _dil_flops, parameterized=True, kind="conv",
                 kernel=lambda p: int(p.arg("dilation")) * (int(p.arg("k")) - 1) + 1,
                 rule="[c, h, w] -> [out, (h - 1) // stride + 1, same for w] (k odd)",
                 torch="dil_conv", init="scheme", exact=False, batch=False),
        PrimSpec("resblock", (ParamSpec("out", "int"), _STRIDE), "NAS-Bench-201's ResNet basic block",
                 _resblock_shape, _resblock_params, _resblock_flops, parameterized=True, kind="other",
                 kernel=lambda p: 3,
                 rule="[c, h, w] -> [out, h, w] (stride 1), [out, h/2, w/2] (stride 2; h and w even)",
                 torch="resblock", init="scheme", exact=False, batch=False),
    ]
}


def bind(p: Prim, shape: Shape, out: int | None = None) -> Prim:
    """Fill the arguments that default to the input's channel count (known only in place);
    ``out``: the channels of the cell node the op feeds (a cell's ``channels``), used instead."""
    spec = PRIMS[p.name]
    have = dict(p.args)
    missing = [ps.name for ps in spec.params if ps.name not in have and ps.default == "in_channels"]
    if not missing:
        return p
    for name in missing:
        have[name] = out if out is not None else shape[0] if shape else 1
    return Prim(p.name, tuple((ps.name, have[ps.name]) for ps in spec.params if ps.name in have))


def prim_params(p: Prim, shape: Shape) -> int:
    return PRIMS[p.name].n_params(p, shape)


def prim_flops(p: Prim, shape: Shape) -> int:
    return PRIMS[p.name].flops(p, shape, PRIMS[p.name].shape(p, shape))


def seq_bind(prims: tuple[Prim, ...], shape: Shape, channels: int | None = None) -> tuple[Prim, ...]:
    """Bind every primitive of a sequence to the shape flowing into it (``channels``: the
    width of the cell node the sequence feeds, the default of every ``out``)."""
    out = []
    for p in prims:
        p = bind(p, shape, channels)
        out.append(p)
        shape = PRIMS[p.name].shape(p, shape)
    return tuple(out)


def seq_cost(prims: tuple[Prim, ...], shape: Shape, channels: int | None = None) -> tuple[Shape, int, int]:
    """(output shape, parameters, FLOPs) of a sequence of primitives (``channels``: as for
    :func:`seq_bind`)."""
    params = flops = 0
    for p in prims:
        p = bind(p, shape, channels)
        spec = PRIMS[p.name]
        out = spec.shape(p, shape)
        params += spec.n_params(p, shape)
        flops += spec.flops(p, shape, out)
        shape = out
    return shape, params, flops


def seq_kind(prims: tuple[Prim, ...]) -> str:
    """The analyzers' semantic class of an edge op (docs/CONTRACTS.md)."""
    names = [p.name for p in prims]
    if not names or "zero" in names:
        return "zero"
    core = [n for n in names if n != "skip"]
    if not core:
        return "skip"
    if core == ["linear", "relu"] and not prims[names.index("linear")].arg("bias"):
        return "linear_relu"
    for kind in ("conv", "linear", "pool"):
        if any(PRIMS[n].kind == kind for n in core):
            return kind
    return "other"


def seq_kernel(prims: tuple[Prim, ...]) -> int | None:
    ks = [k for p in prims if (k := PRIMS[p.name].kernel(p)) is not None]
    return max(ks) if ks else None


def seq_parameterized(prims: tuple[Prim, ...]) -> bool:
    """Whether the op has trainable weights (a batch norm without affine parameters has none)."""
    return any(PRIMS[p.name].parameterized and not (p.name == "batchnorm" and not p.arg("affine")) for p in prims) \
        and "zero" not in [p.name for p in prims]


def preprocess_prims(channels: int, halve: bool = False) -> tuple[Prim, ...]:
    """DARTS's preprocessing of a two-input cell's input to ``channels``: relu >> conv1x1
    (no bias) >> batchnorm, or a stride-2 factorized_reduce for an input twice as large."""
    if halve:
        return (Prim("factorized_reduce", (("out", channels), ("stride", 2))),)
    return (Prim("relu"), Prim("conv2d", (("k", 1), ("out", channels), ("stride", 1), ("padding", 0), ("bias", False))),
            Prim("batchnorm"))


# Ops every space may use, written in the language itself (NAS-Bench-201's names among them).
PRELUDE = """
op none = zero
op identity = skip
op skip_connect = skip
op nor_conv_1x1 = relu >> conv2d(1) >> batchnorm
op nor_conv_3x3 = relu >> conv2d(3) >> batchnorm
op avg_pool_3x3 = avg_pool(3)
"""
