"""Finite-width measurements of a torch module at initialisation (docs/THEORY.md section 6).

* :func:`empirical_nngp`: Gram of the last hidden representation (the input of the last
  ``nn.Linear`` executed), divided by its width.
* :func:`empirical_ntk`: ``Theta(x, x') = sum_params scale * <df/dw (x), df/dw (x')>`` of a
  scalar output, and :func:`empirical_kernels` (the NTK and the NNGP together), streamed
  in bounded memory: chunks of inputs through one forward and one backward each, every
  layer's per-sample gradient formed as the backward reaches it, the full Jacobian never
  built (:class:`StreamPlan`, :func:`plan_kernels`). A layer ``y = W a``
  applied at positions ``p`` (a conv's output pixels; a single position for a plain
  ``Linear``) has per-sample weight gradient ``sum_p g_p(x) u_p(x)^T`` (``u`` its input
  or unfolded patch, ``g`` the output gradient), so its NTK term is
  ``sum_{p,q} <g_p(x), g_q(x')> <u_p(x), u_q(x')>``: for a ``Linear``, ``(A A^T) * (D D^T)``
  elementwise, kept as activations (``pairwise``); a conv's per-sample gradient comes from
  its own weight-gradient kernel. Biases contribute ``<sum_p g_p(x), sum_q g_q(x')>``;
  BatchNorm / LayerNorm affine parameters ``<sum_p g_p xhat_p, ...>``. Every trainable
  parameter is covered or the call raises ``ValueError`` naming the module; so does a
  layer input modified in place after the layer read it.
* :func:`circle_curvature`: Poole et al. (2016) extrinsic curvature along a great circle,
  a chunk of points at a time.

Conventions:

* Measurements run with ``module.eval()`` (restored afterwards): in train mode BatchNorm
  couples the samples of a batch, so a per-sample kernel is not defined. At init the
  running statistics are (0, 1) and eval-mode BatchNorm is a fixed affine map;
  :func:`calibrate_batchnorm` sets them to the statistics of a batch first if wanted.
* Output: the paper's networks have one output. For ``K > 1`` outputs pass
  ``output=k`` (the NTK of output ``k``) or ``output="sum"`` (of ``sum_k f_k``).
* Parameterization: with ``param_scale=None`` this is the NTK of the module's own
  parameters (what SGD on it sees). A module initialised ``W = sigma * omega`` with
  ``omega ~ N(0, 1)`` has the NTK-parameterization kernel of docs/THEORY.md section 4 when each
  weight's term is weighted by ``sigma**2``; :func:`he_init_scales` gives these weights
  for He-normal layers.
* Kernels are accumulated in float64 whatever the module's dtype (Grams of float32
  per-sample gradients are formed from float64 copies of a slab of columns at a time).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nflc.analysis.kernels import lambda_min

__all__ = [
    "CircleCurvature",
    "EmpiricalKernels",
    "OverMemory",
    "StreamPlan",
    "calibrate_batchnorm",
    "circle_curvature",
    "empirical_kernels",
    "empirical_nngp",
    "empirical_ntk",
    "he_init_scales",
    "lambda_min",
    "plan_kernels",
]

Output = int | Literal["sum"] | None

_COVERED = (nn.Linear, nn.Conv1d, nn.Conv2d, _BatchNorm, nn.LayerNorm)
_F64 = torch.float64


# --- shared plumbing ------------------------------------------------------------------------


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training  # each module's own flag: train() would recurse into every child again


def _scalar_output(out: torch.Tensor, output: Output) -> torch.Tensor:
    out = out.reshape(out.shape[0], -1)
    if output is None:
        if out.shape[1] != 1:
            raise ValueError(
                f"the module has {out.shape[1]} outputs; pass output=k for the NTK of output k "
                "or output='sum' for the NTK of their sum"
            )
        return out[:, 0]
    if output == "sum":
        return out.sum(dim=1)
    return out[:, output]


def _run_with_readout_input(
    module: nn.Module, x: torch.Tensor, layer: nn.Linear | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(module(x), input of the readout)``; readout = ``layer`` or the last Linear run."""
    seen: list[torch.Tensor] = []
    targets = [layer] if layer is not None else [m for m in module.modules() if isinstance(m, nn.Linear)]
    hooks = [m.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0])) for m in targets]
    try:
        out = module(x)
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ValueError("no nn.Linear ran in the forward pass: there is no readout whose input to measure")
    return out, seen[-1]


# --- NNGP ---------------------------------------------------------------------------------


def empirical_nngp(module: nn.Module, x: torch.Tensor, *, layer: nn.Linear | None = None) -> np.ndarray:
    """``F F^T / width`` of the readout input ``F`` (flattened per sample), float64 (N, N)."""
    with _eval_mode(module), torch.no_grad():
        _, feats = _run_with_readout_input(module, x, layer)
    f = feats.reshape(feats.shape[0], -1).to(_F64)
    return (f @ f.T / f.shape[1]).numpy()


# --- NTK: which parameters, and how each one's per-sample gradient is held ---------------------


@dataclass
class _Param:
    """One trainable parameter of a covered module and where its gradient goes."""

    name: str  # as in ``named_parameters``
    attr: str  # "weight" or "bias"
    numel: int
    scale: float  # its weight in the kernel (``param_scale``)
    pairwise: bool = False  # a dense weight held as its layer's activations and contracted pairwise
    buf: int = 0  # per-sample route: 0 the buffer of positive scales, 1 of negative ones
    offset: int = 0  # its first column in that buffer


@dataclass
class _Layer:
    """A module owning trainable parameters; ``calls``: ``(positions, k, o)`` of every call
    of a dense module on one input (from a probe forward)."""

    name: str
    module: nn.Module
    params: list[_Param] = field(default_factory=list)
    calls: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def dense(self) -> bool:
        return isinstance(self.module, (nn.Linear, nn.Conv1d, nn.Conv2d))


def _owners(module: nn.Module, scale: Mapping[str, float] | None = None) -> list[_Layer]:
    """Modules owning trainable parameters; ``ValueError`` for any not covered."""
    layers: list[_Layer] = []
    owner_of: dict[int, str] = {}
    scale = scale or {}
    for name, mod in module.named_modules():
        own = [(n, p) for n, p in mod.named_parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if not isinstance(mod, _COVERED) or any(n not in ("weight", "bias") for n, _ in own):
            raise ValueError(
                f"module {name!r} ({type(mod).__name__}) has trainable parameters the factorised "
                "NTK does not cover; covered: Linear, Conv1d, Conv2d, BatchNorm, LayerNorm"
            )
        if isinstance(mod, _BatchNorm) and mod.running_mean is None:
            raise ValueError(
                f"module {name!r} ({type(mod).__name__}) has track_running_stats=False: it "
                "normalises with batch statistics even in eval mode, coupling the samples"
            )
        for _, p in own:
            if id(p) in owner_of:
                raise ValueError(
                    f"modules {owner_of[id(p)]!r} and {name!r} share a parameter: tied weights "
                    "are not covered by the per-module factorisation"
                )
            owner_of[id(p)] = name
        params = []
        for attr, p in own:
            full = f"{name}.{attr}" if name else attr
            params.append(_Param(full, attr, p.numel(), float(scale.get(full, 1.0))))
        layers.append(_Layer(name, mod, params))
    return layers


# --- NTK: per-layer terms -------------------------------------------------------------------


def weight_ntk(u: torch.Tensor, g: torch.Tensor, *, block_elems: int = 2**24) -> torch.Tensor:
    """``Theta[i, j] = sum_{p,q} <g[i,p], g[j,q]> <u[i,p], u[j,q]>`` for ``u`` (N, L, k), ``g`` (N, L, o).

    This is ``<J_i, J_j>`` with ``J_i = sum_p g[i,p] u[i,p]^T`` the per-sample weight
    gradient. Two exact routes, the cheaper one chosen by multiply count: pairwise position
    Grams (``N^2 L^2 (o + k)``, best for a Linear's ``L = 1``) or per-sample gradients
    (``N o k (L + N)``, best for wide convs). Both work in blocks of at most
    ``block_elems`` elements.
    """
    n, positions, k = u.shape
    o = g.shape[2]
    if _pairwise_cheaper(n, positions, k, o):
        return _pairwise_ntk(u, g, block_elems)
    return _per_sample_ntk(u, g, block_elems)


def _pairwise_cheaper(n: int, positions: int, k: int, o: int) -> bool:
    return n * n * positions * positions * (o + k) <= n * o * k * (positions + n)


def _blocks(n: int, size: int) -> list[slice]:
    size = max(1, min(n, size))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _pairwise_ntk(u: torch.Tensor, g: torch.Tensor, block_elems: int) -> torch.Tensor:
    return _pairwise_cross(u, g, u, g, block_elems)


def _pairwise_cross(u1: torch.Tensor, g1: torch.Tensor, u2: torch.Tensor, g2: torch.Tensor,
                    block_elems: int) -> torch.Tensor:
    """``sum_{p,q} <g1[i,p], g2[j,q]> <u1[i,p], u2[j,q]>``, (N1, N2), in blocks of at most
    ``block_elems`` position pairs."""
    n1, positions, _ = u1.shape
    if positions == 1:
        return (u1[:, 0] @ u2[:, 0].T) * (g1[:, 0] @ g2[:, 0].T)
    theta = u1.new_zeros((n1, u2.shape[0]))
    side = int(math.sqrt(block_elems / (positions * positions)))
    for bi in _blocks(n1, side):
        for bj in _blocks(u2.shape[0], side):
            gg = torch.einsum("ilo,jmo->ijlm", g1[bi], g2[bj])
            uu = torch.einsum("ilk,jmk->ijlm", u1[bi], u2[bj])
            theta[bi, bj] = (gg * uu).sum(dim=(2, 3))
    return theta


def _per_sample_ntk(u: torch.Tensor, g: torch.Tensor, block_elems: int) -> torch.Tensor:
    n, _, k = u.shape
    o = g.shape[2]
    blocks = _blocks(n, block_elems // (o * k))
    if len(blocks) == 1:
        jac = torch.einsum("nlo,nlk->nok", g, u).reshape(n, -1)
        return jac @ jac.T
    theta = u.new_zeros((n, n))
    for bi in blocks:  # recompute rather than hold all N per-sample gradients
        ji = torch.einsum("nlo,nlk->nok", g[bi], u[bi]).reshape(bi.stop - bi.start, -1)
        for bj in blocks:
            jj = torch.einsum("nlo,nlk->nok", g[bj], u[bj]).reshape(bj.stop - bj.start, -1)
            theta[bi, bj] = ji @ jj.T
    return theta


def _positions(t: torch.Tensor) -> torch.Tensor:
    """(N, ..., c) -> (N, L, c): every leading non-batch index is a position."""
    return t.reshape(t.shape[0], -1, t.shape[-1])


def _conv_patches(conv: nn.Conv1d | nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Unfolded input patches ``(N, L, C_in * prod(kernel))`` exactly as the conv sees them."""
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    x = F.pad(x, conv._reversed_padding_repeated_twice, mode=mode)
    k: tuple[int, ...]
    d: tuple[int, ...]
    s: tuple[int, ...]
    if isinstance(conv, nn.Conv1d):  # unfold is 2-d only: a 1-d conv is a 1 x k conv
        x = x.unsqueeze(2)
        k, d, s = (1, conv.kernel_size[0]), (1, conv.dilation[0]), (1, int(conv.stride[0]))
    else:
        k, d, s = tuple(conv.kernel_size), tuple(conv.dilation), tuple(int(v) for v in conv.stride)
    return F.unfold(x, k, dilation=d, padding=0, stride=s).transpose(1, 2)


def _dense_factors(mod: Any, u: torch.Tensor, g: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, G)``: a dense module's inputs per position (``(b, L, k)``, unfolded patches for a
    conv) and its output gradients per position (``(b, L, o)``)."""
    if isinstance(mod, nn.Linear):  # features last: (b, ..., c)
        return _positions(u.to(dtype)), _positions(g.to(dtype))
    return _conv_patches(mod, u.to(dtype)), g.to(dtype).flatten(2).transpose(1, 2)  # channels first


def _conv_sample_grads(conv: nn.Conv1d | nn.Conv2d, x: torch.Tensor, g: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per-sample weight gradients ``(b, weight.numel())`` of a conv with input ``x`` and output
    gradient ``g``: the conv's own weight-gradient kernel, run once on the batch folded into
    the channels (``b * groups`` groups), so sample n's gradient is group block n."""
    b = x.shape[0]
    x, g = x.to(dtype), g.to(dtype)
    dims = x.dim() - 2
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=mode)
        padding = [0] * dims
    else:
        padding = [int(v) for v in conv.padding]
    w = conv.weight
    weight = g.new_empty(1).expand(b * w.shape[0], *w.shape[1:])
    grad = torch.ops.aten.convolution_backward(
        g.reshape(1, b * g.shape[1], *g.shape[2:]), x.reshape(1, b * x.shape[1], *x.shape[2:]), weight, None,
        [int(v) for v in conv.stride], padding, [int(v) for v in conv.dilation], False, [0] * dims, b * conv.groups,
        [False, True, False])[1]
    return grad.reshape(b, -1)


def _norm_factors(mod: Any, x: torch.Tensor, g: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample gradients ``(b, C)`` of a BatchNorm's / LayerNorm's weight and bias."""
    x, g = x.to(dtype), g.to(dtype)
    if isinstance(mod, _BatchNorm):  # eval mode: running statistics, channel axis 1
        shape = (1, -1) + (1,) * (x.dim() - 2)
        assert mod.running_mean is not None and mod.running_var is not None  # _owners refused batch statistics
        xhat = (x - mod.running_mean.to(dtype).view(shape)) / torch.sqrt(mod.running_var.to(dtype).view(shape) + mod.eps)
        return (g * xhat).reshape(x.shape[0], x.shape[1], -1).sum(2), g.reshape(x.shape[0], x.shape[1], -1).sum(2)
    xhat = F.layer_norm(x, mod.normalized_shape, eps=mod.eps)  # LayerNorm: statistics over the trailing shape
    n_norm = math.prod(mod.normalized_shape)
    return (g * xhat).reshape(x.shape[0], -1, n_norm).sum(1), g.reshape(x.shape[0], -1, n_norm).sum(1)


# --- streamed kernels: plan -----------------------------------------------------------------

DEFAULT_MEMORY = 512 * 2**20  # bytes for one kernel computation's working set
_GRAM_SLAB = 2**23  # at most this many bytes of float64 columns upcast at a time for a Gram product


@dataclass(frozen=True)
class StreamPlan:
    """How :func:`empirical_kernels` streams ``samples`` inputs through a module.

    Inputs go through the module ``chunk`` at a time (one forward and one backward each);
    the per-sample gradients (``columns`` entries per sample, plus ``pair_floats``
    activation entries for layers contracted pairwise) of ``block`` samples are held at once,
    and every later chunk is recomputed against each held block, so the module runs
    ``passes`` times over the inputs. ``peak_bytes`` is the working set this needs (the
    module's parameters and the Python process not included).
    """

    samples: int
    chunk: int
    block: int
    columns: int
    pair_floats: int
    act_bytes: int  # per sample: what one forward keeps for the backward, and the largest transient
    itemsize: int  # bytes per held entry (the contraction dtype)
    memory: int  # the budget the plan was made for

    @property
    def blocks(self) -> int:
        return -(-self.samples // self.block)

    @property
    def passes(self) -> float:
        """Forward + backward passes over the inputs, in units of all ``samples``."""
        n, b = self.samples, self.block
        return sum(n - i for i in range(0, n, b)) / n

    @property
    def rep_bytes(self) -> int:
        """Held per sample: its per-sample gradient and the pairwise layers' activations."""
        return (self.columns + self.pair_floats) * self.itemsize

    @property
    def slab(self) -> int:
        """Bytes of float64 columns upcast at a time for a Gram product (1/16 of the budget, 1 to 8 MiB)."""
        return max(2**20, min(_GRAM_SLAB, self.memory // 16))

    @property
    def peak_bytes(self) -> int:
        n = self.samples
        held = self.block * self.rep_bytes
        later = self.chunk * self.rep_bytes if self.blocks > 1 else 0
        upcast = 2 * self.slab if self.itemsize < 8 else 0
        return held + later + self.chunk * self.act_bytes + 3 * 8 * n * n + upcast


def _probe_shapes(module: nn.Module, layers: list[_Layer], x1: torch.Tensor, readout: nn.Linear | None) -> nn.Linear | None:
    """One forward of one input: every dense layer's ``(positions, k, o)`` per call, and the
    readout (``readout`` or the last Linear to run)."""
    order: list[nn.Module] = []
    by_mod = {id(ly.module): ly for ly in layers}
    for ly in layers:
        ly.calls = []

    def hook(mod: Any, inputs: Any, out: Any) -> None:
        order.append(mod)
        ly = by_mod.get(id(mod))
        if ly is None or not ly.dense:
            return
        if isinstance(mod, nn.Linear):
            k, o = mod.in_features, mod.out_features
            ly.calls.append((inputs[0].numel() // k, k, o))
        else:
            k = mod.in_channels * math.prod(mod.kernel_size)
            ly.calls.append((math.prod(out.shape[2:]), k, mod.out_channels))

    hooks = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Linear) or id(m) in by_mod]
    try:
        with torch.no_grad():
            module(x1)
    finally:
        for h in hooks:
            h.remove()
    linears = [m for m in order if isinstance(m, nn.Linear)]
    return readout if readout is not None else (linears[-1] if linears else None)


def _assign_columns(layers: list[_Layer], n: int) -> tuple[int, int, int]:
    """Route every dense weight (per-sample gradient or pairwise, as :func:`weight_ntk` would
    for ``n`` inputs) and give every per-sample parameter its columns. Returns the widths of
    the positive- and negative-scale buffers and the pairwise entries held per sample."""
    width = [0, 0]
    pair = 0
    for ly in layers:
        for p in ly.params:
            if ly.dense and p.attr == "weight" and ly.calls:
                positions = sum(c[0] for c in ly.calls)
                _, k, o = ly.calls[0]
                groups = getattr(ly.module, "groups", 1)
                p.pairwise = _pairwise_cheaper(n, positions, k // groups, o // groups)
                if p.pairwise:
                    pair += positions * (k + o)
                    continue
            p.buf = 1 if p.scale < 0 else 0
            p.offset = width[p.buf]
            width[p.buf] += p.numel
    return width[0], width[1], pair


# --- streamed kernels: one chunk ------------------------------------------------------------


class _Stream:
    """Forward and backward passes of chunks of inputs, reduced layer by layer as the
    backward reaches each layer: a chunk's per-sample gradients land in the rows of a
    buffer, the pairwise layers' activations in ``pairs``, the readout input in ``feats``."""

    def __init__(self, module: nn.Module, layers: list[_Layer], output: Output, dtype: torch.dtype,
                 readout: nn.Linear | None, widths: tuple[int, int]):
        self.module, self.layers, self.output, self.dtype = module, layers, output, dtype
        self.readout, self.widths = readout, widths
        self.saved_bytes = 0  # a probe's count of what the forward keeps for the backward
        self.transient = 0  # the largest per-layer reduction temporaries (bytes, per sample)

    def run(self, x: torch.Tensor, bufs: tuple[torch.Tensor, torch.Tensor], want_feats: bool,
            probe: bool = False) -> tuple[dict[int, list[tuple[torch.Tensor, torch.Tensor]]], torch.Tensor | None]:
        b = x.shape[0]
        pairs: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        feats: list[torch.Tensor] = []
        leaves: list[tuple[torch.Tensor, Callable]] = []
        handles = []
        stored: dict[int, int] = {}

        def reducer(idx: int, box: list, version: int) -> Callable:
            ly = self.layers[idx]

            def reduce(g: torch.Tensor) -> None:
                u = box.pop()
                if u._version != version:
                    raise ValueError(f"the input of module {ly.name!r} was modified in place after the module read "
                                     "it: its gradient cannot be formed")
                with torch.no_grad():
                    self._reduce(idx, ly, u.detach(), g.detach(), bufs, pairs, b)

            return reduce

        def forward_hook(idx: int) -> Callable:
            def hook(_m: Any, inputs: Any, out: Any) -> None:
                if not isinstance(out, torch.Tensor):
                    raise ValueError(f"module {self.layers[idx].name!r} returned {type(out).__name__}, not a tensor")
                u = inputs[0]
                if probe:
                    stored[u.untyped_storage().data_ptr()] = u.untyped_storage().nbytes()
                cb = reducer(idx, [u], u._version)
                if out.requires_grad:
                    out.register_hook(cb)
                else:  # nothing before it depends on the input: its output starts a graph
                    out = out.detach().requires_grad_()
                    leaves.append((out, cb))
                # The network gets a copy, so later in-place ops (``out += identity``, an
                # in-place ReLU) do not rewrite the tensor whose gradient the hook receives.
                return out.clone()

            return hook

        def feature_hook(_m: Any, inputs: Any, _o: Any) -> None:
            feats.append(inputs[0].detach().reshape(b, -1).to(_F64))

        saved: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        try:
            for i, ly in enumerate(self.layers):
                handles.append(ly.module.register_forward_hook(forward_hook(i)))
            if want_feats and self.readout is not None:
                handles.append(self.readout.register_forward_hook(feature_hook))
            xg = x.detach().requires_grad_() if x.is_floating_point() else x
            ctx = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if probe else contextlib.nullcontext()
            with torch.enable_grad(), ctx:
                y = _scalar_output(self.module(xg), self.output)
            for h in handles:
                h.remove()
            handles = []
            if probe:
                self.saved_bytes = sum(saved.values()) + sum(v for k, v in stored.items() if k not in saved)
            inputs = ([xg] if xg.requires_grad else []) + [t for t, _ in leaves]
            if y.requires_grad and inputs:
                # Samples do not interact in eval mode, so d(sum_n y_n)/d out_n = d y_n / d out_n.
                grads = torch.autograd.grad(y.sum(), inputs, allow_unused=True)
                for (_, cb), g in zip(leaves, grads[len(inputs) - len(leaves):], strict=True):
                    if g is not None:
                        cb(g)
        finally:
            for h in handles:
                h.remove()
        return pairs, (feats[-1] if feats else None)

    def _reduce(self, idx: int, ly: _Layer, u: torch.Tensor, g: torch.Tensor, bufs: tuple[torch.Tensor, torch.Tensor],
                pairs: dict, b: int) -> None:
        mod: Any = ly.module
        dt = self.dtype
        if ly.dense and not isinstance(mod, nn.Linear) and not any(p.pairwise for p in ly.params):
            for p in ly.params:  # a conv's per-sample gradients straight from the conv's own backward
                jac = _conv_sample_grads(mod, u, g, dt) if p.attr == "weight" else g.to(dt).flatten(2).sum(2)
                self._put(bufs, p, jac)
            self.transient = max(self.transient, (u.numel() + g.numel()) * torch.finfo(dt).bits // 8 // b)
        elif ly.dense:
            uu, gg = _dense_factors(mod, u, g, dt)
            self.transient = max(self.transient, (uu.numel() + gg.numel()) * uu.element_size() // b)
            groups = getattr(mod, "groups", 1)
            for p in ly.params:
                if p.attr == "bias":
                    self._put(bufs, p, gg.sum(dim=1))
                elif p.pairwise:
                    pairs.setdefault(idx, []).append((uu, gg))
                else:
                    ku, ko = uu.shape[2] // groups, gg.shape[2] // groups
                    for c in range(groups):
                        jac = torch.einsum("nlo,nlk->nok", gg[:, :, c * ko:(c + 1) * ko], uu[:, :, c * ku:(c + 1) * ku])
                        self._put(bufs, p, jac.reshape(b, -1), c * ko * ku)
        else:
            jw, jb = _norm_factors(mod, u, g, dt)
            for p in ly.params:
                self._put(bufs, p, jw if p.attr == "weight" else jb)

    @staticmethod
    def _put(bufs: tuple[torch.Tensor, torch.Tensor], p: _Param, jac: torch.Tensor, at: int = 0) -> None:
        """Add ``sqrt(|scale|) * jac`` to the parameter's columns (several calls of one module add)."""
        start = p.offset + at
        view = bufs[p.buf][:, start:start + jac.shape[1]]
        if p.scale == 1.0:
            view += jac
        else:
            view.add_(jac, alpha=math.sqrt(abs(p.scale)))


# --- streamed kernels -----------------------------------------------------------------------


@dataclass
class EmpiricalKernels:
    """Finite-width NNGP (None unless asked) and NTK, float64 ``(N, N)``, and the plan they ran by."""

    ntk: np.ndarray
    nngp: np.ndarray | None
    plan: StreamPlan


def _gram(a: torch.Tensor, c: torch.Tensor, slab: int = _GRAM_SLAB) -> torch.Tensor:
    """``a @ c.T`` accumulated in float64 (columns upcast ``slab`` bytes at a time)."""
    if a.shape[1] == 0:
        return torch.zeros((a.shape[0], c.shape[0]), dtype=_F64)
    if a.dtype == _F64 and c.dtype == _F64:
        return a @ c.T
    out = torch.zeros((a.shape[0], c.shape[0]), dtype=_F64)
    step = max(1, slab // (8 * max(a.shape[0], c.shape[0])))
    for s in range(0, a.shape[1], step):
        ca = a[:, s:s + step].to(_F64)
        out += ca @ (ca.T if c is a else c[:, s:s + step].to(_F64).T)
    return out


def _held_gram(layers: list[_Layer], ja: tuple[torch.Tensor, torch.Tensor], pa: dict, jc: tuple[torch.Tensor, torch.Tensor],
               pc: dict, block_elems: int, slab: int) -> torch.Tensor:
    """The kernel between two sets of samples from their held per-sample gradients and pairwise activations."""
    theta = _gram(ja[0], jc[0], slab)
    if ja[1].shape[1]:
        theta -= _gram(ja[1], jc[1], slab)
    for idx, ly in enumerate(layers):
        if idx not in pa or idx not in pc:
            continue
        p = next(p for p in ly.params if p.pairwise)
        groups = getattr(ly.module, "groups", 1)
        ua, ga = _cat_positions(pa[idx])
        uc, gc = (ua, ga) if pc is pa else _cat_positions(pc[idx])
        ku, ko = ua.shape[2] // groups, ga.shape[2] // groups
        for c in range(groups):
            su, so = slice(c * ku, (c + 1) * ku), slice(c * ko, (c + 1) * ko)
            term = _pairwise_cross(ua[:, :, su].to(_F64), ga[:, :, so].to(_F64), uc[:, :, su].to(_F64),
                                   gc[:, :, so].to(_F64), block_elems)
            theta += p.scale * term
    return theta


def _cat_positions(calls: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Several calls of one module add their positions: J = sum over calls and positions."""
    if len(calls) == 1:
        return calls[0]
    return torch.cat([u for u, _ in calls], dim=1), torch.cat([g for _, g in calls], dim=1)


def _cat_samples(parts: list[dict]) -> dict:
    """Pairwise activations of consecutive chunks, joined along the samples."""
    out = {}
    for idx in parts[0] if parts else {}:
        cat = [_cat_positions(p[idx]) for p in parts]
        out[idx] = [(torch.cat([u for u, _ in cat]), torch.cat([g for _, g in cat]))]
    return out


def plan_kernels(module: nn.Module, x: torch.Tensor, *, output: Output = None, param_scale: Mapping[str, float] | None = None,
                 dtype: torch.dtype = _F64, memory: int = DEFAULT_MEMORY, chunk: int | None = None,
                 block: int | None = None, layer: nn.Linear | None = None) -> StreamPlan:
    """The plan :func:`empirical_kernels` follows on ``x`` (one probe forward and backward of one input)."""
    return _prepare(module, x, output, param_scale, dtype, memory, chunk, block, layer)[0]


def _prepare(module: Any, x: Any, output: Any, param_scale: Any, dtype: Any, memory: Any, chunk: Any, block: Any, layer: Any) -> Any:
    scale = dict(param_scale or {})
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    unknown = sorted(set(scale) - names)
    if unknown:
        raise ValueError(f"param_scale names no trainable parameter of the module: {unknown}")
    n = x.shape[0]
    layers = _owners(module, scale)
    with _eval_mode(module), _frozen(module):
        readout = _probe_shapes(module, layers, x[:1], layer)
        wpos, wneg, pair = _assign_columns(layers, n)
        stream = _Stream(module, layers, output, dtype, readout, (wpos, wneg))
        one = (torch.zeros((1, wpos), dtype=dtype), torch.zeros((1, wneg), dtype=dtype))
        stream.run(x[:1], one, want_feats=True, probe=True)
    itemsize = torch.empty((), dtype=dtype).element_size()
    feat = 8 * (readout.in_features if readout is not None else 0)
    act = stream.saved_bytes + 2 * stream.transient + feat + (wpos + wneg) * itemsize
    rep = (wpos + wneg + pair) * itemsize
    if chunk is None:
        chunk = max(1, min(n, (memory // 4) // max(1, act + rep)))
    chunk = max(1, min(n, chunk))
    if block is None:
        block = n if n * rep <= memory // 2 else max(1, (memory // 2) // max(1, rep))
    block = max(1, min(n, block))
    if block < n:
        block = max(chunk, block // chunk * chunk)
    plan = StreamPlan(samples=n, chunk=chunk, block=block, columns=wpos + wneg, pair_floats=pair, act_bytes=act,
                      itemsize=itemsize, memory=memory)
    return plan, layers, stream


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Parameters without ``requires_grad`` while streaming: the backward then forms only
    the layer-output gradients, and autograd keeps no layer input for weight gradients."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class OverMemory(ValueError):
    """The streaming plan needs more memory than the caller allows; nothing was computed."""

    def __init__(self, plan: StreamPlan, limit: int):
        self.plan, self.limit = plan, limit
        super().__init__(f"the kernels need about {plan.peak_bytes / 2**20:,.0f} MiB, over the limit of "
                         f"{limit / 2**20:,.0f} MiB")


def empirical_kernels(
    module: nn.Module,
    x: torch.Tensor,
    *,
    output: Output = None,
    param_scale: Mapping[str, float] | None = None,
    nngp: bool = True,
    layer: nn.Linear | None = None,
    dtype: torch.dtype = _F64,
    memory: int = DEFAULT_MEMORY,
    chunk: int | None = None,
    block: int | None = None,
    block_elems: int = 2**24,
    limit: int | None = None,
) -> EmpiricalKernels:
    """Finite-width NTK (and NNGP) of the module on ``x`` in bounded memory.

    Streams the inputs: ``chunk`` at a time through one forward and one backward, each
    layer's per-sample gradient formed from its input and output gradient as soon as the
    backward reaches it (no full Jacobian, no batch of every activation). The per-sample
    gradients of ``block`` inputs are held (a block's Gram is one product); every later
    chunk is recomputed against each held block. ``memory`` (bytes) bounds the working set
    when ``chunk`` / ``block`` are not given: a quarter for a chunk's forward and backward,
    half for the held block. Exact: the same numbers as one batched pass, to round-off.
    ``dtype``: of the per-sample gradients held; their Grams accumulate in float64.
    ``limit`` (bytes): raise :class:`OverMemory` before any streaming when the plan's working
    set exceeds it (one input's forward and backward alone can exceed any ``memory``).
    """
    plan, layers, stream = _prepare(module, x, output, param_scale, dtype, memory, chunk, block, layer)
    if limit is not None and plan.peak_bytes > limit:
        raise OverMemory(plan, limit)
    n = x.shape[0]
    theta = torch.zeros((n, n), dtype=_F64)
    feats: list[torch.Tensor | None] = [None] * n
    wpos, wneg = stream.widths
    chunks = _blocks(n, plan.chunk)
    blocks = _blocks(n, plan.block)
    with _eval_mode(module), _frozen(module):
        for bi, blk in enumerate(blocks):
            rows = blk.stop - blk.start
            held = (torch.zeros((rows, wpos), dtype=dtype), torch.zeros((rows, wneg), dtype=dtype))
            held_pairs = []
            for c in chunks:
                if blk.start <= c.start < blk.stop:
                    sub = slice(c.start - blk.start, c.stop - blk.start)
                    pairs, f = stream.run(x[c], (held[0][sub], held[1][sub]), want_feats=nngp and bi == 0)
                    held_pairs.append(pairs)
                    if f is not None:
                        feats[c.start] = f
            pa = _cat_samples(held_pairs)
            theta[blk, blk] = _held_gram(layers, held, pa, held, pa, block_elems, plan.slab)
            for c in chunks:
                if c.start < blk.stop:
                    continue
                buf = (torch.zeros((c.stop - c.start, wpos), dtype=dtype), torch.zeros((c.stop - c.start, wneg), dtype=dtype))
                pairs, f = stream.run(x[c], buf, want_feats=nngp and bi == 0)
                if f is not None:
                    feats[c.start] = f
                term = _held_gram(layers, held, pa, buf, pairs, block_elems, plan.slab)
                theta[blk, c] = term
                theta[c, blk] = term.T
            del held, held_pairs, pa
    k = None
    if nngp:
        got = [f for f in feats if f is not None]
        if not got:
            raise ValueError("no nn.Linear ran in the forward pass: there is no readout whose input to measure")
        fm = torch.cat(got)
        k = (fm @ fm.T / fm.shape[1]).numpy()
    return EmpiricalKernels(ntk=theta.numpy(), nngp=k, plan=plan)


def empirical_ntk(
    module: nn.Module,
    x: torch.Tensor,
    *,
    output: Output = None,
    param_scale: Mapping[str, float] | None = None,
    block_elems: int = 2**24,
    dtype: torch.dtype = _F64,
    memory: int = DEFAULT_MEMORY,
    chunk: int | None = None,
    block: int | None = None,
) -> np.ndarray:
    """Finite-width NTK of the module's scalar output on batch ``x``, float64 (N, N).

    ``param_scale[name]`` multiplies the term of parameter ``name`` (as in
    ``named_parameters``; missing names weigh 1). ``output``: see the module docstring.
    ``dtype`` of the per-sample gradients: float64 by default; float32 halves their memory
    and matches a float32 module's own per-sample gradients to float32 round-off (their
    Grams still accumulate in float64). ``memory``, ``chunk``, ``block``: see
    :func:`empirical_kernels`, which this calls without the NNGP.
    """
    return empirical_kernels(module, x, output=output, param_scale=param_scale, nngp=False, dtype=dtype, memory=memory,
                             chunk=chunk, block=block, block_elems=block_elems).ntk


def he_init_scales(module: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Init variances ``gain / fan_in`` of He-normal weights, for ``empirical_ntk(param_scale=)``.

    Covers the paper's skeleton: every Linear / Conv weight is followed by a ReLU (gain 2)
    except the readout, the last Linear to run on ``x`` (gain 1). Biases and normalization
    parameters are not listed (weight 1). With these weights a He-initialised module's NTK
    is the NTK-parameterization kernel of docs/THEORY.md section 4.
    """
    order: list[nn.Module] = []
    dense = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    hooks = [m.register_forward_hook(lambda m, _i, _o: order.append(m)) for m in dense]
    try:
        with _eval_mode(module), torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    linears = [m for m in order if isinstance(m, nn.Linear)]
    readout = linears[-1] if linears else None
    scales = {}
    for name, mod in module.named_modules():
        if mod in order and mod.weight.requires_grad:
            gain = 1.0 if mod is readout else 2.0
            scales[f"{name}.weight" if name else "weight"] = gain / mod.weight[0].numel()
    return scales


def calibrate_batchnorm(module: nn.Module, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of batch ``x`` (in place).

    One train-mode forward with cumulative averaging (``momentum=None``) from reset stats,
    so eval-mode BatchNorm then normalises ``x`` the way train mode would (up to torch's
    unbiased running variance).
    """
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    flags = [(m, m.training) for m in module.modules()]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        module.train()
        with torch.no_grad():
            module(x)
    finally:
        for norm, momentum in saved:
            norm.momentum = momentum
        for mod, training in flags:
            mod.training = training


# --- curvature ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CircleCurvature:
    """Curvature ``kappa(theta)`` and speed ``|dz/dtheta|`` of the trajectory ``z(theta)``."""

    theta: np.ndarray
    kappa: np.ndarray
    speed: np.ndarray

    @property
    def mean_kappa(self) -> float:
        return float(self.kappa.mean())

    @property
    def length(self) -> float:
        """Length of the closed trajectory, ``integral of |v| dtheta`` (uniform grid)."""
        return float(self.speed.mean() * 2 * math.pi)


def curve_curvature(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``sqrt(|v|^2 |a|^2 - (v.a)^2) / |v|^3`` per row (Poole et al. 2016); 0 where ``v = 0``.

    Evaluated as ``|a_perp| / |v|^2`` with ``a_perp`` the part of ``a`` orthogonal to
    ``v`` (the same number): the difference of squares loses half the digits when ``a``
    is nearly parallel to ``v``. A stationary point (a constant output) traces no curve;
    0 keeps the result finite.
    """
    vv = (v * v).sum(1)
    safe = np.where(vv > 0, vv, 1.0)
    a_perp = a - ((v * a).sum(1) / safe)[:, None] * v
    return np.where(vv > 0, np.linalg.norm(a_perp, axis=1) / safe, 0.0)


def _orthonormal(u0: torch.Tensor, u1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    e0 = u0 / u0.norm()
    r = u1 - (u1 * e0).sum() * e0
    if r.norm() <= 1e-6 * u1.norm():
        raise ValueError("u0 and u1 are parallel: they do not span a plane for the circle")
    return e0, r / r.norm()


def circle_curvature(
    module: nn.Module,
    u0: torch.Tensor,
    u1: torch.Tensor,
    *,
    n_points: int = 64,
    target: Literal["features", "output"] = "features",
    chunk: int = 16,
) -> CircleCurvature:
    """Extrinsic curvature of ``z(theta)`` for ``x(theta) = sqrt(N0) (u0 cos t + u1 sin t)``.

    ``u0, u1`` (one input's shape, ``N0`` its element count) are orthonormalised
    (Gram-Schmidt), so ``|x|^2 = N0``. ``z`` is the readout input (``target="features"``,
    the hidden manifold Poole et al. study) or the output; a scalar output is a curve in
    R^1 with curvature 0. Derivatives are exact forward-mode (``torch.func.jvp``, twice),
    ``chunk`` points of the circle at a time (each point is independent), so memory does
    not grow with ``n_points``.
    """
    e0, e1 = _orthonormal(u0, u1)
    theta = torch.linspace(0.0, 2 * math.pi, n_points + 1, dtype=e0.dtype)[:-1]
    radius = math.sqrt(e0.numel())
    shape = (-1,) + (1,) * e0.dim()

    def z(t: torch.Tensor) -> torch.Tensor:
        x = radius * (torch.cos(t).view(shape) * e0 + torch.sin(t).view(shape) * e1)
        z_t = _run_with_readout_input(module, x, None)[1] if target == "features" else module(x)
        return z_t.reshape(t.shape[0], -1)

    def dz(t: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(z, (t,), (torch.ones_like(t),))[1]

    vs, accs = [], []
    with _eval_mode(module):
        for part in _blocks(n_points, chunk):
            t = theta[part]
            v, a = torch.func.jvp(dz, (t,), (torch.ones_like(t),))  # type: ignore[misc]  # (primal, tangent)
            vs.append(v.detach().to(_F64))
            accs.append(a.detach().to(_F64))
    v64, a64 = torch.cat(vs).numpy(), torch.cat(accs).numpy()
    return CircleCurvature(
        theta=theta.to(_F64).numpy(), kappa=curve_curvature(v64, a64), speed=np.sqrt((v64 * v64).sum(1))
    )
