"""The components of nflc's training-free ranking: the paper's three aspects, cost, and their aggregate.

Each component is a number per architecture, oriented so that higher predicts a better
network (docs/ANALYZE.md, "Ranking components", has the derivations):

* ``expressivity`` -- the data-free graph score of :mod:`nflc.analysis.rank_score` (mean
  path depth, each layer weighted by ``ln(1 + params)``); milliseconds, no forward pass.
* ``convergence`` -- ``lambda_min / lambda_max`` of the network's NTK ``Theta`` at
  initialisation on ``N`` data-free inputs: the contraction rate of gradient descent on the
  linearised network at its largest stable step (scale-free).
* ``generalization`` -- ``-sqrt(E_y[y^T Theta_n^-1 y] / N) = -sqrt(mean_i 1 / lambda_i(Theta_n))``,
  the NTK term of the paper's Theorem 4.5 averaged over white labels, with ``Theta_n = Theta /
  mean(diag Theta)`` (scale-free).
* ``flops`` / ``params`` -- cost, as nflc counts it for the architecture.
* ``aggregate`` -- AZ-NAS's parameter-free rank aggregation of expressivity, convergence,
  generalization and flops: ``sum_c ln(rank_c / n)`` (rank ``n`` = best of the ``n``
  architectures ranked together).

Two theory-literal forms are reported for reference: ``convergence_nngp`` (Theorem 4.4's
pair bound on the normalised NNGP, ``min_{i != j} 1 - K_ij / sqrt(K_ii K_jj)``) and
``generalization_bound`` (Theorem 4.5 with its depth factor: ``-expressivity *
sqrt(mean 1/lambda(Theta_n))``).

Kernels (:func:`measure_kernels`): for architectures in the exact engine's family (the
paper's MLP skeleton) the exact infinite-width NNGP and NTK on the canonical input Gram
``q_in = I``; for every other network the finite-width NNGP (readout input) and NTK (sum
of the logits) of the compiled module at initialisation (``seed``), its batch norms set to
the statistics of the batch (the network normalises as it does in training), streamed in
bounded memory by :func:`nflc.analysis.empirical.empirical_kernels` on ``N`` orthonormal
data-free inputs (:func:`nflc.data.canonical_inputs`), at a reduced channel width
(:func:`kernel_space`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata

from nflc.analysis.exact import architecture_kernels, exact_support
from nflc.space import Space

if TYPE_CHECKING:
    from nflc.space import Architecture, Space

__all__ = [
    "ASPECT_OF",
    "AGGREGATED",
    "COMPONENTS",
    "KERNEL_COMPONENTS",
    "KernelFailure",
    "KernelSettings",
    "Kernels",
    "aggregate",
    "channel_constants",
    "component",
    "convergence",
    "convergence_nngp",
    "generalization",
    "generalization_bound",
    "kernel_space",
    "measure_kernels",
    "white_label_quadratic",
]

# name -> the aspect it predicts; every name is a `nflc rank --score` choice
ASPECT_OF = {
    "expressivity": "expressivity",
    "convergence": "convergence",
    "generalization": "generalization",
    "flops": "cost",
    "params": "cost",
    "convergence_nngp": "convergence",
    "generalization_bound": "generalization",
}
COMPONENTS = tuple(ASPECT_OF)
KERNEL_COMPONENTS = ("convergence", "generalization", "convergence_nngp", "generalization_bound")
AGGREGATED = ("expressivity", "convergence", "generalization", "flops")  # the aggregate's components

# a spectrum whose smallest eigenvalue is below this fraction of the largest is singular
_SINGULAR = 1e-12


class KernelSettings(BaseModel):
    """How the kernels are measured. ``width``: the channel constants of a conv space are
    scaled down so its first cell reads at most this many channels (None: the space's own);
    ``memory``: a network whose planned working set (with its parameters) exceeds it is not
    measured; the streamed computation plans within half of it."""

    model_config = ConfigDict(frozen=True)

    samples: int = Field(16, ge=2)
    seed: int = 0
    width: int | None = Field(16, ge=1)
    memory: int = Field(2**30, ge=1)
    precision: Literal["float32", "float64"] = "float32"

    def key_fields(self) -> dict:
        """What the measured numbers depend on (``memory`` only decides whether they are measured)."""
        return {"samples": self.samples, "seed": self.seed, "width": self.width, "precision": self.precision}


@dataclass(frozen=True)
class Kernels:
    """The NTK and NNGP (float64, N x N) of one architecture and how they were obtained."""

    ntk: np.ndarray
    nngp: np.ndarray
    source: Literal["exact", "finite-width"]
    seconds: float
    peak_bytes: int  # planned working set (finite-width; 0 for exact kernels)
    constants: dict  # the constants the module was built with (the reduced width)


class KernelFailure(Exception):
    """The kernels of an architecture could not be computed (the reason is the message);
    ``needed``: the bytes the smallest streaming plan needs, when memory was the reason."""

    def __init__(self, reason: str, needed: int | None = None):
        super().__init__(reason)
        self.needed = needed


# ------------------------------------------------------------------ the reduced width


def channel_constants(space: Space) -> dict[str, int]:
    """The space's integer constants that set its cells' channel counts: those whose doubling
    changes the input channels of the first cell stage (``classes`` never does)."""
    ir = space.ir
    first = _first_cell_channels(ir)
    if first is None:
        return {}
    found = {}
    for name, value in ir.constants.items():
        if name == "classes" or not isinstance(value, int) or isinstance(value, bool) or value < 1:
            continue
        try:
            doubled = _first_cell_channels(space.lowered({name: 2 * value}))
        except Exception:  # noqa: BLE001 - a constant that cannot be doubled sets no plain channel count
            continue
        if doubled is not None and doubled != first:
            found[name] = value
    return found


def _first_cell_channels(ir: Any) -> int | None:
    for st in ir.network:
        if st.kind == "cell":
            return int(st.shape_in[0])
    return None


_SPACES: dict[tuple[str, int | None], tuple[Space, dict[str, int]]] = {}


def kernel_space(space: Space, width: int | None) -> tuple[Space, dict[str, int]]:
    """``(space at the reduced width, the constants changed)``: every channel constant scaled
    by ``width / (channels of the first cell's input)`` (rounded, at least 1), never up. The
    space itself with ``{}`` when ``width`` is None, when nothing would shrink, when the space
    solves its width per architecture (a budget) or when the reduced space does not lower."""
    key = (space.spec_hash, width)
    hit = _SPACES.get(key)
    if hit is not None:
        return hit
    out: tuple[Space, dict[str, int]] = (space, {})
    first = _first_cell_channels(space.ir)
    if width is not None and first is not None and width < first and not space.numeric:
        scale = width / first
        over = {k: max(1, round(v * scale)) for k, v in channel_constants(space).items()}
        over = {k: v for k, v in over.items() if v != space.ir.constants[k]}
        if over:
            try:
                out = (Space(space.lowered(over), space.source, space.warnings), over)
            except Exception:  # noqa: BLE001 - the space's own width is always measurable
                out = (space, {})
    if len(_SPACES) > 64:
        _SPACES.clear()
    _SPACES[key] = out
    return out


# ------------------------------------------------------------------ measuring


def measure_kernels(arch: Architecture, settings: KernelSettings | None = None) -> Kernels:
    """The architecture's NTK and NNGP on ``settings.samples`` data-free inputs.

    Exact infinite-width kernels for the paper's MLP skeleton (the canonical Gram ``q_in = I``);
    otherwise finite-width kernels of the module at ``kernel_space(...)``'s width. Raises
    :class:`KernelFailure` (never anything else for a network that cannot be measured) when
    the module does not build, its planned working set exceeds ``settings.memory`` or the
    computation fails."""
    settings = settings or KernelSettings()
    t0 = time.perf_counter()
    try:
        exact = exact_support(arch) is None
    except Exception:  # noqa: BLE001 - not in the exact family
        exact = False
    if exact:
        d = int(np.prod(arch.space.ir.input_shape))
        x = np.sqrt(d) * np.eye(settings.samples, d) if d >= settings.samples else None
        if x is not None:
            k = architecture_kernels(arch, x)
            return Kernels(ntk=np.asarray(k.ntk, dtype=np.float64), nngp=np.asarray(k.nngp, dtype=np.float64),
                           source="exact", seconds=time.perf_counter() - t0, peak_bytes=0, constants={})
    return _finite(arch, settings, t0)


def _finite(arch: Architecture, settings: KernelSettings, t0: float) -> Kernels:
    import torch  # torch: loaded only when a network is built or trained

    from nflc.analysis import empirical as E  # lazy: loads torch
    from nflc.data import canonical_inputs  # lazy: loads torch

    dtype = torch.float32 if settings.precision == "float32" else torch.float64
    try:
        # an architecture with its own constants (numeric choices, a width solved for a budget) is
        # measured as it is: its constants are part of what it is
        space, over = kernel_space(arch.space, None if arch.constants_override else settings.width)
        built = space.architecture(arch.id) if over else arch
        module = built.to_module(seed=settings.seed).to(dtype)
    except Exception as exc:  # noqa: BLE001 - a module that does not build is a failure, not a crash
        raise KernelFailure(f"the module does not build: {exc}") from None
    shape = tuple(arch.space.ir.input_shape)
    x = canonical_inputs(settings.samples, int(np.prod(shape)), seed=settings.seed).reshape(settings.samples, *shape)
    x = x.to(dtype)
    param_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    try:
        E.calibrate_batchnorm(module, x)
        k = E.empirical_kernels(module, x, output="sum", dtype=dtype, memory=settings.memory // 2,
                                limit=settings.memory - param_bytes)
    except E.OverMemory as exc:
        needed = exc.plan.peak_bytes + param_bytes
        raise KernelFailure(f"needs about {needed / 2**20:,.1f} MiB, over the memory limit of "
                            f"{settings.memory / 2**20:,.1f} MiB", needed=needed) from None
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise KernelFailure(f"{type(exc).__name__}: {exc}") from None
    if k.nngp is None:  # pragma: no cover - empirical_kernels computes it by default
        raise KernelFailure("no readout layer: the NNGP is undefined")
    return Kernels(ntk=np.asarray(k.ntk, dtype=np.float64), nngp=np.asarray(k.nngp, dtype=np.float64),
                   source="finite-width", seconds=time.perf_counter() - t0,
                   peak_bytes=int(k.plan.peak_bytes + param_bytes), constants=dict(over))


# ------------------------------------------------------------------ components from kernels


def _spectrum(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    if not np.all(np.isfinite(k)):
        return np.full(len(k), np.nan)
    return np.linalg.eigvalsh((k + k.T) / 2)


def convergence(ntk: np.ndarray) -> float:
    """``lambda_min(Theta) / lambda_max(Theta)`` in [0, 1]; 0 for a singular or zero NTK."""
    ev = _spectrum(ntk)
    if not np.all(np.isfinite(ev)) or ev[-1] <= 0 or ev[0] <= _SINGULAR * ev[-1]:
        return 0.0
    return float(ev[0] / ev[-1])


def white_label_quadratic(ntk: np.ndarray) -> float:
    """``E_y[y^T Theta_n^-1 y] / N = mean_i 1 / lambda_i(Theta_n)`` for labels with ``E[y y^T] = I``,
    ``Theta_n = Theta / mean(diag Theta)``; ``inf`` for a singular or zero NTK."""
    ntk = np.asarray(ntk, dtype=np.float64)
    scale = float(np.mean(np.diag(ntk))) if ntk.size else 0.0
    if not (scale > 0 and math.isfinite(scale)):
        return math.inf
    ev = _spectrum(ntk / scale)
    if not np.all(np.isfinite(ev)) or ev[0] <= _SINGULAR * ev[-1]:
        return math.inf
    return float(np.mean(1.0 / ev))


def generalization(ntk: np.ndarray) -> float:
    """``-sqrt(mean_i 1 / lambda_i(Theta_n))``: the NTK term of Theorem 4.5, white labels; ``-inf`` when singular."""
    return -math.sqrt(white_label_quadratic(ntk))


def generalization_bound(ntk: np.ndarray, expressivity: float) -> float:
    """Theorem 4.5 with its depth factor: ``-depth * sqrt(mean 1/lambda(Theta_n))``, the depth
    being the expressivity score (mean path depth); 0 when no path has a parameterized layer
    (the bound's leading term vanishes), ``-inf`` without an input-output path."""
    if not math.isfinite(expressivity):
        return -math.inf
    if expressivity <= 0:
        return 0.0
    return -expressivity * math.sqrt(white_label_quadratic(ntk))


def convergence_nngp(nngp: np.ndarray) -> float:
    """Theorem 4.4's pair bound on the normalised NNGP: ``min_{i != j} 1 - K_ij / sqrt(K_ii K_jj)``;
    0 when an input's feature vector is zero (nothing separates it)."""
    k = np.asarray(nngp, dtype=np.float64)
    d = np.diag(k)
    if len(k) < 2 or not np.all(d > 0) or not np.all(np.isfinite(k)):
        return 0.0
    r = k / np.sqrt(np.outer(d, d))
    off = r[~np.eye(len(k), dtype=bool)]
    return float(1.0 - off.max())


def component(name: str, kernels: Kernels | None, expressivity: float) -> float:
    """The value of kernel component ``name`` (``-inf`` when the kernels could not be computed)."""
    if kernels is None:
        return -math.inf
    if name == "convergence":
        return convergence(kernels.ntk)
    if name == "generalization":
        return generalization(kernels.ntk)
    if name == "convergence_nngp":
        return convergence_nngp(kernels.nngp)
    if name == "generalization_bound":
        return generalization_bound(kernels.ntk, expressivity)
    raise ValueError(f"'{name}' is not a kernel component")


# ------------------------------------------------------------------ the aggregate


def aggregate(columns: Sequence[np.ndarray | Sequence[float]], last: np.ndarray | Sequence[bool] | None = None) -> np.ndarray:
    """AZ-NAS's rank aggregation: ``sum over columns of ln(rank / n)``.

    Each column ranks the ``n`` architectures ascending (the highest value gets ``n``, ties
    share their mean rank, NaN and ``-inf`` rank lowest); no weight or constant. Architectures
    flagged in ``last`` (their kernels could not be computed, or they have no input-output
    path) get ``-inf``: ranked after every other."""
    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    if not cols:
        raise ValueError("aggregate needs at least one column")
    n = len(cols[0])
    if any(len(c) != n for c in cols):
        raise ValueError("aggregate's columns must have one value per architecture")
    total = np.zeros(n)
    for c in cols:
        total += np.log(rankdata(np.where(np.isnan(c), -np.inf, c), method="average") / n)
    if last is not None:
        total[np.asarray(last, dtype=bool)] = -np.inf
    return total
