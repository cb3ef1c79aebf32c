"""Finite-width measurements of a torch module at initialisation (THEORY.md section 6).

* :func:`empirical_nngp`: Gram of the last hidden representation (the input of the last
  ``nn.Linear`` executed), divided by its width.
* :func:`empirical_ntk`: ``Theta(x, x') = sum_params scale * <df/dw (x), df/dw (x')>`` of a
  scalar output, from ONE batched forward and ONE batched backward. A layer ``y = W a``
  applied at positions ``p`` (a conv's output pixels; a single position for a plain
  ``Linear``) has per-sample weight gradient ``sum_p g_p(x) u_p(x)^T`` (``u`` its input
  or unfolded patch, ``g`` the output gradient), so its NTK term is
  ``sum_{p,q} <g_p(x), g_q(x')> <u_p(x), u_q(x')>``: for a ``Linear``, ``(A A^T) * (D D^T)``
  elementwise. Biases contribute ``<sum_p g_p(x), sum_q g_q(x')>``; BatchNorm / LayerNorm
  affine parameters ``<sum_p g_p xhat_p, ...>``. Every trainable parameter is covered or
  the call raises ``ValueError`` naming the module.
* :func:`circle_curvature`: Poole et al. (2016) extrinsic curvature along a great circle.

Conventions:

* Measurements run with ``module.eval()`` (restored afterwards): in train mode BatchNorm
  couples the samples of a batch, so a per-sample kernel is not defined. At init the
  running statistics are (0, 1) and eval-mode BatchNorm is a fixed affine map;
  :func:`calibrate_batchnorm` sets them to the statistics of a batch first if wanted.
* Output: the paper's networks have one output. For ``K > 1`` outputs pass
  ``output=k`` (the NTK of output ``k``) or ``output="sum"`` (of ``sum_k f_k``).
* Parameterization: with ``param_scale=None`` this is the NTK of the module's own
  parameters (what SGD on it sees). A module initialised ``W = sigma * omega`` with
  ``omega ~ N(0, 1)`` has the NTK-parameterization kernel of THEORY.md section 4 when each
  weight's term is weighted by ``sigma**2``; :func:`he_init_scales` gives these weights
  for He-normal layers.
* Kernels are accumulated in float64 whatever the module's dtype.
"""

from __future__ import annotations

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
    "calibrate_batchnorm",
    "circle_curvature",
    "empirical_nngp",
    "empirical_ntk",
    "he_init_scales",
    "lambda_min",
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
            m.train(training)


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


# --- NTK: capture ---------------------------------------------------------------------------


@dataclass
class _Record:
    """Every call of one parameterized module: its inputs and the outputs' gradients."""

    name: str
    module: nn.Module
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor] = field(default_factory=list)


def _owners(module: nn.Module) -> list[_Record]:
    """Modules owning trainable parameters; ``ValueError`` for any not covered."""
    records: list[_Record] = []
    owner_of: dict[int, str] = {}
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
        records.append(_Record(name, mod))
    return records


def _capture(module: nn.Module, x: torch.Tensor, output: Output) -> list[_Record]:
    records = _owners(module)

    def hook_for(rec: _Record) -> Callable:
        def hook(_m, inputs, out):
            rec.inputs.append(inputs[0].detach().clone())
            rec.outputs.append(out)
            # Hand the network a copy so later in-place ops (``out += identity``, inplace
            # ReLU) cannot rewrite the tensor whose gradient we ask for.
            return out.clone()

        return hook

    hooks = [rec.module.register_forward_hook(hook_for(rec)) for rec in records]
    try:
        with torch.enable_grad():
            y = _scalar_output(module(x), output)
            flat = [o for rec in records for o in rec.outputs]
            # Samples do not interact in eval mode, so d(sum_n y_n)/d out_n = d y_n / d out_n.
            grads = torch.autograd.grad(y.sum(), flat, allow_unused=True) if flat else ()
    finally:
        for h in hooks:
            h.remove()
    it = iter(grads)
    for rec in records:
        # one iterator over every record's gradients: each record takes as many as it has outputs
        rec.grads = [torch.zeros_like(o) if g is None else g.detach() for o, g in zip(rec.outputs, it)]  # noqa: B905
        rec.outputs = []
    return records


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
    if n * n * positions * positions * (o + k) <= n * o * k * (positions + n):
        return _pairwise_ntk(u, g, block_elems)
    return _per_sample_ntk(u, g, block_elems)


def _blocks(n: int, size: int) -> list[slice]:
    size = max(1, min(n, size))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _pairwise_ntk(u: torch.Tensor, g: torch.Tensor, block_elems: int) -> torch.Tensor:
    n, positions, _ = u.shape
    if positions == 1:
        return (u[:, 0] @ u[:, 0].T) * (g[:, 0] @ g[:, 0].T)
    theta = u.new_zeros((n, n))
    side = int(math.sqrt(block_elems / (positions * positions)))
    for bi in _blocks(n, side):
        for bj in _blocks(n, side):
            gg = torch.einsum("ilo,jmo->ijlm", g[bi], g[bj])
            uu = torch.einsum("ilk,jmk->ijlm", u[bi], u[bj])
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


def _dense_terms(rec: _Record, block_elems: int, dtype: torch.dtype = _F64) -> dict[str, torch.Tensor]:
    mod: Any = rec.module  # a Linear, Conv1d or Conv2d (_owners checked it)
    if isinstance(mod, nn.Linear):  # features last: (N, ..., c)
        us = [_positions(a.to(dtype)) for a in rec.inputs]
        gs = [_positions(g.to(dtype)) for g in rec.grads]
        groups = 1
    else:  # channels first: (N, C, *spatial)
        us = [_conv_patches(mod, a.to(dtype)) for a in rec.inputs]
        gs = [g.to(dtype).flatten(2).transpose(1, 2) for g in rec.grads]
        groups = mod.groups
    # Several calls of one module add their positions: J = sum over calls and positions.
    u, g = (us[0], gs[0]) if len(us) == 1 else (torch.cat(us, dim=1), torch.cat(gs, dim=1))
    terms: dict[str, torch.Tensor] = {}
    if mod.weight.requires_grad:
        ku, ko = u.shape[2] // groups, g.shape[2] // groups
        terms["weight"] = sum(  # type: ignore[assignment]  # a tensor: groups >= 1
            weight_ntk(u[:, :, c * ku : (c + 1) * ku], g[:, :, c * ko : (c + 1) * ko], block_elems=block_elems)
            for c in range(groups)
        )
    if mod.bias is not None and mod.bias.requires_grad:
        jb = g.sum(dim=1)
        terms["bias"] = jb @ jb.T
    return terms


def _norm_terms(rec: _Record, dtype: torch.dtype = _F64) -> dict[str, torch.Tensor]:
    mod: Any = rec.module  # a BatchNorm or LayerNorm (_owners checked it)
    jw: Any = 0.0  # becomes an (N, C) tensor: the sum over calls starts from a scalar zero
    jb: Any = 0.0
    for x, g in zip(rec.inputs, rec.grads, strict=True):
        x, g = x.to(dtype), g.to(dtype)
        if isinstance(mod, _BatchNorm):  # eval mode: running statistics, channel axis 1
            shape = (1, -1) + (1,) * (x.dim() - 2)
            assert mod.running_mean is not None and mod.running_var is not None  # _owners refused batch statistics
            xhat = (x - mod.running_mean.to(dtype).view(shape)) / torch.sqrt(
                mod.running_var.to(dtype).view(shape) + mod.eps
            )
            jw = jw + (g * xhat).reshape(x.shape[0], x.shape[1], -1).sum(2)
            jb = jb + g.reshape(x.shape[0], x.shape[1], -1).sum(2)
        else:  # LayerNorm: per-sample statistics over the trailing normalized_shape
            xhat = F.layer_norm(x, mod.normalized_shape, eps=mod.eps)
            n_norm = math.prod(mod.normalized_shape)
            jw = jw + (g * xhat).reshape(x.shape[0], -1, n_norm).sum(1)
            jb = jb + g.reshape(x.shape[0], -1, n_norm).sum(1)
    terms = {}
    if mod.weight is not None and mod.weight.requires_grad:
        terms["weight"] = jw @ jw.T
    if mod.bias is not None and mod.bias.requires_grad:
        terms["bias"] = jb @ jb.T
    return terms


def empirical_ntk(
    module: nn.Module,
    x: torch.Tensor,
    *,
    output: Output = None,
    param_scale: Mapping[str, float] | None = None,
    block_elems: int = 2**24,
    dtype: torch.dtype = _F64,
) -> np.ndarray:
    """Finite-width NTK of the module's scalar output on batch ``x``, (N, N).

    ``param_scale[name]`` multiplies the term of parameter ``name`` (as in
    ``named_parameters``; missing names weigh 1). ``output``: see the module docstring.
    ``dtype`` of the contractions: float64 by default; float32 halves the cost and
    matches a float32 module's own per-sample gradients to float32 round-off.
    """
    scale = dict(param_scale or {})
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    unknown = sorted(set(scale) - names)
    if unknown:
        raise ValueError(f"param_scale names no trainable parameter of the module: {unknown}")
    n = x.shape[0]
    with _eval_mode(module):
        records = _capture(module, x, output)
    theta = torch.zeros((n, n), dtype=dtype)
    for rec in records:
        if not rec.inputs:  # never ran: its parameters do not move the output
            continue
        if isinstance(rec.module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            terms = _dense_terms(rec, block_elems, dtype)
        else:
            terms = _norm_terms(rec, dtype)
        for pname, term in terms.items():
            full = f"{rec.name}.{pname}" if rec.name else pname
            theta += scale.get(full, 1.0) * term
    return theta.numpy()


def he_init_scales(module: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Init variances ``gain / fan_in`` of He-normal weights, for ``empirical_ntk(param_scale=)``.

    Covers the paper's skeleton: every Linear / Conv weight is followed by a ReLU (gain 2)
    except the readout, the last Linear to run on ``x`` (gain 1). Biases and normalization
    parameters are not listed (weight 1). With these weights a He-initialised module's NTK
    is the NTK-parameterization kernel of THEORY.md section 4.
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
            mod.train(training)


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
) -> CircleCurvature:
    """Extrinsic curvature of ``z(theta)`` for ``x(theta) = sqrt(N0) (u0 cos t + u1 sin t)``.

    ``u0, u1`` (one input's shape, ``N0`` its element count) are orthonormalised
    (Gram-Schmidt), so ``|x|^2 = N0``. ``z`` is the readout input (``target="features"``,
    the hidden manifold Poole et al. study) or the output; a scalar output is a curve in
    R^1 with curvature 0. Derivatives are exact forward-mode (``torch.func.jvp``, twice).
    """
    e0, e1 = _orthonormal(u0, u1)
    theta = torch.linspace(0.0, 2 * math.pi, n_points + 1, dtype=e0.dtype)[:-1]
    radius = math.sqrt(e0.numel())
    shape = (-1,) + (1,) * e0.dim()

    def z(t: torch.Tensor) -> torch.Tensor:
        x = radius * (torch.cos(t).view(shape) * e0 + torch.sin(t).view(shape) * e1)
        z_t = _run_with_readout_input(module, x, None)[1] if target == "features" else module(x)
        return z_t.reshape(t.shape[0], -1)

    ones = torch.ones_like(theta)

    def dz(t: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(z, (t,), (ones,))[1]

    with _eval_mode(module):
        v, a = torch.func.jvp(dz, (theta,), (ones,))  # type: ignore[misc]  # (primal, tangent)
    v64, a64 = v.detach().to(_F64).numpy(), a.detach().to(_F64).numpy()
    return CircleCurvature(
        theta=theta.to(_F64).numpy(), kappa=curve_curvature(v64, a64), speed=np.sqrt((v64 * v64).sum(1))
    )
