"""Analyze a space before training: topology, kernels, three predicted scores, the report.

For every architecture:

- topology of its cell(s) (docs/THEORY.md section 2);
- exact infinite-width NNGP and NTK when the architecture is in the exact engine's family
  (docs/THEORY.md section 4), else finite-width measurements of the compiled module at
  initialisation (section 6), and the output says which;
- three predicted scores, each oriented so that higher is better and each carrying its
  provenance:

  * expressivity: the total path depth ``sum_p d_p`` over the network's input-output
    paths, the depth term of the paper's Theorem 4.1 (``E||J|| ~ sum_p exp(-5 d_p / 8m)
    = P - (5 / 8m) sum_p d_p + ...``). The theorem's own curvature ``1 / E||J||`` is
    dominated by the number of paths P, the output's scale, and ranks the losses that
    budget-matched, interpolating networks reach backwards (docs/ANALYZE.md, "The
    expressivity score"); it is kept as the indicator ``curvature_thm41``. A network with
    no input-output path computes a constant: 0.
  * convergence: Theorem 4.4's bound ``lambda_min(K) <= min_{i != j} (K_ii + K_jj)/2 - K_ij``
    (the worst-separated pair of inputs; the paper's ``P - sum_p f^{d_p}(K0_ij)`` is this
    bound on its path-sum approximation) on the exact NNGP, or on the measured one. The
    exact ``lambda_min`` itself is reported in ``kernels``: on low-rank data such as MNIST
    it *rises* with depth along a single path (the ReLU kernel map adds higher Hadamard
    powers, which lift small eigenvalues) while the worst pair falls, so the bound,
    not ``lambda_min``, carries the paper's depth trend.
  * generalization: minus the leading term of the NTK bound (Theorem 4.5),
    ``(sum_p d_p) * sqrt(y^T Theta^-1 y / N)`` with centred one-hot labels averaged over
    classes, or ``(sum_p d_p) / sqrt(lambda_min(Theta))`` without labels (``--dataset none``).
"""

from __future__ import annotations

import csv
import heapq
import json
import math
import time
from array import array
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, NamedTuple, Sequence

import numpy as np
import scipy.linalg
from pydantic import BaseModel

from nflc.analysis import groups
from nflc.analysis import kernels as K
from nflc.analysis.exact import exact_support, network_support, normalize_inputs
from nflc.analysis.indicators import expected_jacobian_norm
from nflc.analysis.progress import format_seconds
from nflc.analysis.report import ASPECTS, NflReport, nfl_report
from nflc.errors import NflcError
from nflc.outputs import PartialFile
from nflc.space import available_memory

if TYPE_CHECKING:
    import networkx as nx
    import torch

    from nflc.space import Architecture, Space

Measure = Literal["auto", "finite", "none"]


class Score(BaseModel):
    value: float
    formula: str
    source: Literal["exact", "closed-form", "finite-width", "topology", "none"]


class ArchAnalysis(BaseModel):
    id: str
    index: int
    params: int
    flops: int
    topology: dict
    kernels: dict
    scores: dict[str, Score]
    # other indicators of the theory, for comparison: curvature_thm41 (the paper's closed
    # form 1 / prod_placements sum_p exp(-5 d_p / 8m), nflc 0.1's expressivity score)
    indicators: dict[str, float] = {}
    group: int = -1  # index of the representative of its computing-graph group (nflc.analysis.groups)
    group_size: int = 1  # architectures of the analysis in that group


class DataInfo(BaseModel):
    name: str
    samples: int
    seed: int
    labels: bool
    note: str


class Analysis(BaseModel):
    space: str
    spec_hash: str
    data: DataInfo
    exact_kernels: bool
    exact_note: str | None
    seconds: float
    architectures: list[ArchAnalysis]
    report: NflReport


# ------------------------------------------------------------------ inputs


def analysis_inputs(space: Space, data: str, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray | None, DataInfo]:
    """(inputs shaped like the space's input, centred one-hot labels or None, description)."""
    from nflc import data as datasets  # lazy: loads torch

    shape = tuple(space.ir.input_shape)
    d = int(np.prod(shape))
    if samples < 2:
        raise NflcError(f"--samples must be at least 2, got {samples}")
    if data == "none":
        x = datasets.canonical_inputs(samples, d, seed=seed).numpy().astype(np.float64)
        note = "data-free: orthonormal inputs, normalized Gram q_in = I (nflc.data.canonical_gram, rho = 0)"
        return x.reshape(samples, *shape), None, DataInfo(name="none", samples=samples, seed=seed, labels=False, note=note)
    size = datasets.dataset_size(data)  # a data file is read and checked here
    if samples > size:
        raise NflcError(f"--samples {samples} is more than dataset '{data}' has ({size})", hint=f"use --samples {size} or fewer")
    ds = datasets.fit_space(datasets.load_dataset(data, seed=seed, n=samples), shape, space.ir.output_shape,
                            f"space '{space.name}'")
    y = np.eye(ds.classes)[ds.y.numpy()]
    y = y - y.mean(axis=0, keepdims=True)
    note = f"{samples} class-stratified samples (seed {seed}); inputs rescaled to |x|^2 = d for the exact kernels"
    return ds.x.numpy().astype(np.float64), y, DataInfo(name=data, samples=samples, seed=seed, labels=True, note=note)


KERNEL_MATRICES = 4  # N x N float64 matrices any analysis holds at once, at least (see check_kernel_memory)


def kernel_bytes(space: Space, samples: int, exact: bool) -> int:
    """A lower bound of the memory an analysis of ``space`` on ``samples`` inputs needs:
    the inputs (twice: as loaded and normalized) and the ``N x N`` float64 matrices held at
    once: for exact kernels the cell's forward statistics (a second moment per pair of its
    ``H`` nodes and three ReLU statistics per node, docs/THEORY.md section 4), else
    :data:`KERNEL_MATRICES` (the NNGP and NTK, their eigendecompositions)."""
    d = int(np.prod(space.ir.input_shape))
    matrices = KERNEL_MATRICES
    if exact:
        h = max([c.nodes for c in space.ir.cells.values()] or [2])
        matrices = max(matrices, h * (h + 1) // 2 + 3 * h)
    return 8 * (2 * samples * d + matrices * samples * samples)


def check_kernel_memory(space: Space, samples: int, data: str, measure: str) -> None:
    """Refuse, before allocating anything, an analysis whose kernels cannot fit in this
    machine's memory (``--samples 200000`` would ask for hundreds of GiB)."""
    exact = network_support(space.ir) is None and measure != "finite"
    need = kernel_bytes(space, samples, exact)
    free = available_memory()
    if free is not None and need > free:
        raise NflcError(f"--samples {samples}: the kernels on {samples:,} inputs need at least {need / 2**30:,.1f} GiB "
                        f"({samples:,} x {samples:,} float64 matrices), more than the {free / 2**30:,.1f} GiB of memory "
                        "available", hint="use fewer --samples (the kernels grow with their square)")


# ------------------------------------------------------------------ per-architecture pieces


def placements(arch: Architecture) -> list[tuple[str, int]]:
    """(instance, width m) of every cell placement in network order."""
    ir = arch.space.lowered(arch.constants_override)
    return [(st.instance, st.shape_in[0]) for st in ir.network if st.kind == "cell"]


def cell_topologies(arch: Architecture) -> dict:
    """Every cell instance's :class:`nflc.space.topology.Topology`, equal to
    ``arch.topology(k)``, computed from the cell's edge tuples without the space's memo
    (:meth:`nflc.space.CellSpace.topology`: a streamed analysis of a million cells would
    otherwise fill it)."""
    sp = arch.space
    return {k: sp.cell(sp.cell_of[k].name).topology(arch.cell_index(k)) for k in sp.instances}


def topology_summary(arch: Architecture, topologies: dict | None = None) -> dict:
    """The cell's topology (docs/THEORY.md section 2), and network-level P and mean depth: paths
    multiply along a chain of cell placements and depths add. ``topologies``: the cells'
    (:func:`cell_topologies`) when the caller has them."""
    insts = topologies if topologies is not None else {k: arch.topology(k) for k in arch.space.instances}
    places = placements(arch)
    paths = math.prod(insts[k].paths for k, _ in places) if places else 1
    mean_depth = sum(insts[k].mean_depth for k, _ in places)
    # sum over network paths of their depth: each placement's depth sum times the path
    # counts of all the other placements (exact integers)
    sum_depth = sum(insts[k].sum_depth * math.prod(insts[j].paths for j, _ in places[:i] + places[i + 1:])
                    for i, (k, _) in enumerate(places))
    cells = {k: {"paths": t.paths, "depths": list(t.depths), "mean_depth": t.mean_depth, "sum_depth": t.sum_depth,
                 "skip_paths": t.skip_paths, "effective_width": t.effective_width,
                 "parameterized_on_paths": t.parameterized_on_paths, "dead_edges": [list(e) for e in t.dead_edges]}
             for k, t in insts.items()}
    if len(cells) == 1 and len(places) <= 1:
        return {**next(iter(cells.values())), "placements": len(places)}
    return {"paths": paths, "mean_depth": mean_depth, "sum_depth": sum_depth, "placements": len(places), "cells": cells}


def curvature(arch: Architecture, topologies: dict | None = None) -> float:
    """The paper's closed-form curvature ``1 / prod_placements E||J||_cell`` (Thm 4.1 per
    placement, :func:`nflc.analysis.indicators.expected_jacobian_norm`; a chain of
    placements multiplies their path sums). 0.0 when some placement has no path."""
    total = 1.0
    for inst, m in placements(arch):
        total *= expected_jacobian_norm(topologies[inst] if topologies is not None else arch.topology(inst), m)
    return 1.0 / total if total > 0 else 0.0


def _eig_summary(k: np.ndarray, y: np.ndarray | None) -> dict:
    """lambda_min, lambda_max, condition number, the pair bound, and y^T K^-1 y (labels).

    The eigenvalues come from one LAPACK call without eigenvectors (the tridiagonal
    reduction dominates; two calls for the two extreme eigenvalues cost a third more) and
    y^T K^-1 y from a Cholesky solve.
    """
    k = (k + k.T) / 2
    n = k.shape[0]
    eig = scipy.linalg.eigh(k, eigvals_only=True, check_finite=False)
    lo, hi = float(eig[0]), float(eig[-1])
    tol = n * np.finfo(np.float64).eps * max(abs(lo), abs(hi), 1e-300)
    lam = 0.0 if abs(lo) <= tol else lo
    diag = np.diag(k)
    sep = (diag[:, None] + diag[None, :]) / 2 - k
    np.fill_diagonal(sep, np.inf)
    out = {"lambda_min": lam, "lambda_max": hi, "condition": hi / lam if lam > 0 else math.inf,
           "pair_bound": float(sep.min()) if n > 1 else math.nan}
    if y is not None:
        out["y_inv_y"] = math.inf
        if lam > 0:
            try:
                cho = scipy.linalg.cho_factor(k, check_finite=False)
                out["y_inv_y"] = float(np.sum(y * scipy.linalg.cho_solve(cho, y, check_finite=False)) / y.shape[1])
            except np.linalg.LinAlgError:
                pass
    return out


def _generalization(sum_depth: int, ntk: dict, n: int) -> tuple[float, str]:
    if not ntk:  # no kernels measured (--measure none)
        return math.nan, "not computed: no kernels (--measure none)"
    if sum_depth == 0:
        return 0.0, "no parameterized edge on any path: the bound's leading term is 0"
    if "y_inv_y" in ntk:
        q = ntk["y_inv_y"]
        return (-(sum_depth * math.sqrt(q / n)) if math.isfinite(q) else -math.inf,
                "-(sum_p d_p) * sqrt(y^T Theta^-1 y / N)  [paper Thm 4.5, Eq. 8]")
    lam = ntk["lambda_min"]
    return (-(sum_depth / math.sqrt(lam)) if lam > 0 else -math.inf,
            "-(sum_p d_p) / sqrt(lambda_min(Theta))  [paper Thm 4.5, label-free form]")


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


EXPRESSIVITY_FORMULA = ("sum_p d_p over input-output paths: the depth term of paper Thm 4.1's "
                        "sum_p exp(-5 d_p / 8m)  [docs/ANALYZE.md]")


def analyze_architecture(arch: Architecture, topo: dict, kern: dict, source: str, n: int, kappa: float | None = None) -> ArchAnalysis:
    sum_depth = topo["sum_depth"]
    kappa = curvature(arch) if kappa is None else kappa
    conv = kern.get("nngp", {}).get("pair_bound", math.nan)
    gen, gen_formula = _generalization(sum_depth, kern.get("ntk", {}), n)
    src = {"exact": "exact", "none": "none"}.get(source, "finite-width")
    scores = {
        "expressivity": Score(value=float(sum_depth), formula=EXPRESSIVITY_FORMULA, source="topology"),
        "convergence": Score(value=conv, formula="min_{i!=j} (K_ii + K_jj)/2 - K_ij of the NNGP K: the upper bound on "
                             "lambda_min(K) of paper Thm 4.4", source=src),
        "generalization": Score(value=gen, formula=gen_formula, source=src),
    }
    return ArchAnalysis(id=arch.id, index=arch.index, params=arch.params, flops=arch.flops, topology=topo,
                        kernels=kern, scores=scores, indicators={"curvature_thm41": kappa})


# ------------------------------------------------------------------ finite-width measurements


class FiniteSettings(BaseModel):
    """How finite-width kernels are measured: the module's floating-point ``precision``
    (float32: convolutions four times faster on a CPU, the same indicators to about 1e-5
    relative; their Grams always accumulate in float64), the working-set budget ``memory``
    (bytes) the streamed computation keeps to (:func:`nflc.analysis.empirical.empirical_kernels`),
    and ``width``: build the modules at this width instead of the space's (None: the space's)."""

    precision: Literal["float32", "float64"] = "float32"
    memory: int = 512 * 2**20
    width: int | None = None


def _torch_dtype(settings: FiniteSettings) -> torch.dtype:
    import torch  # torch: loaded only when a network is built or trained

    return torch.float32 if settings.precision == "float32" else torch.float64


def _finite_module(arch: Architecture, seed: int, settings: FiniteSettings) -> torch.nn.Module:
    return arch.to_module(seed=seed, width=settings.width).to(_torch_dtype(settings))


def _finite_kernels(arch: Architecture, x: np.ndarray, y: Any, seed: int, settings: FiniteSettings | None = None) -> dict:
    import torch  # torch: loaded only when a network is built or trained

    from nflc.analysis import empirical as E  # lazy: loads torch

    settings = settings or FiniteSettings()
    dtype = _torch_dtype(settings)
    module = _finite_module(arch, seed, settings)
    xt = torch.as_tensor(x, dtype=dtype)
    k = E.empirical_kernels(module, xt, output="sum", dtype=dtype, memory=settings.memory)
    assert k.nngp is not None
    out = {"source": "finite-width", "seed": seed, "precision": settings.precision}
    if settings.width is not None:
        out["width"] = settings.width
    return {**out, "nngp": _eig_summary(k.nngp, None), "ntk": _eig_summary(k.ntk, y)}


class FiniteEstimate(BaseModel):
    """What the finite-width measurements of ``networks`` networks on ``samples`` inputs will cost."""

    networks: int
    samples: int
    bytes_per_network: int  # the largest network's peak working set (its streaming plan, its parameters)
    largest: str  # id of that network
    seconds: float | None  # None when not probed (small jobs)
    probe: str  # how the time was estimated
    passes: float = 1.0  # forward + backward passes over the inputs the largest network needs (streamed blocks)


def _finite_plan(arch: Architecture, x: np.ndarray, seed: int, settings: FiniteSettings) -> Any:
    import torch  # torch: loaded only when a network is built or trained

    from nflc.analysis import empirical as E  # lazy: loads torch

    dtype = _torch_dtype(settings)
    module = _finite_module(arch, seed, settings)
    plan = E.plan_kernels(module, torch.as_tensor(x[:1], dtype=dtype).expand(len(x), *x.shape[1:]), output="sum",
                          dtype=dtype, memory=settings.memory)
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    return plan, params


def finite_bytes(arch: Architecture, x: np.ndarray, settings: FiniteSettings | None = None) -> int:
    """Peak memory of :func:`_finite_kernels` on ``len(x)`` inputs: the streamed computation's
    planned working set (what one forward keeps for the backward, times the inputs of a
    chunk; the held per-sample gradients of a block; the N x N kernels; measured by one
    forward and backward of one input) and the module's parameters."""
    plan, params = _finite_plan(arch, x, 0, settings or FiniteSettings())
    return plan.peak_bytes + params


def _gemm_seconds_per_mac() -> float:
    import torch  # torch: loaded only when a network is built or trained

    a = torch.randn(64, 2**15, dtype=torch.float64)
    a @ a.T
    t0 = time.perf_counter()
    a @ a.T
    return (time.perf_counter() - t0) / (64 * 64 * 2**15)


def estimate_finite(archs: list, x: np.ndarray, seed: int, probe_samples: int = 4,
                    settings: FiniteSettings | None = None) -> FiniteEstimate:
    """Memory of the largest network (by FLOPs), from its streaming plan; time from timing
    the smallest, the median and the largest network by FLOPs (after a warm-up on one
    input) on ``probe_samples`` and four times as many inputs: the difference is the cost per
    input and pass, the rest a fixed part (module, plan). Both are interpolated piecewise
    linearly in FLOPs for the others (a per-layer cost makes time not proportional to
    FLOPs), scaled to ``len(x)`` inputs and each network's passes, plus the float64 Gram
    products (``N^2`` times the per-sample gradient entries, at this machine's measured
    rate). Small jobs (under 16 times a probe) are not timed."""
    settings = settings or FiniteSettings()
    flops = [a.flops for a in archs]
    order = sorted(range(len(archs)), key=lambda i: (flops[i], archs[i].params))
    small, mid, big = order[0], order[len(order) // 2], order[-1]
    n = len(x)
    plans = {i: _finite_plan(archs[i], x, seed, settings) for i in {big, small, mid}}
    plan_big, params_big = plans[big]
    seconds, probe = None, "not timed (a small job)"
    if len(archs) * n > 16 * 2 * probe_samples and n > probe_samples:
        knots = sorted({small, mid, big}, key=lambda i: (flops[i], archs[i].params))
        fixed, per = {}, {}
        for i in knots:
            _finite_kernels(archs[i], x[:1], None, seed, settings)  # warm-up: first calls set kernels up
            t = []
            for m in (probe_samples, 4 * probe_samples):
                t0 = time.perf_counter()
                _finite_kernels(archs[i], x[:m], None, seed, settings)
                t.append(time.perf_counter() - t0)
            m1, m2 = probe_samples, min(n, 4 * probe_samples)
            per[i] = max(t[1] - t[0], 0.0) / max(1, m2 - m1)
            fixed[i] = max(0.0, t[0] - m1 * per[i])
        gemm = _gemm_seconds_per_mac()
        total = 0.0
        for f in flops:
            lo, hi = knots[0], knots[-1]
            for a_, b_ in zip(knots[:-1], knots[1:], strict=True):
                if f <= flops[b_]:
                    lo, hi = a_, b_
                    break
            span = flops[hi] - flops[lo]
            w = min(1.0, max(0.0, (f - flops[lo]) / span)) if span else 0.0
            p_lo, p_hi = plans[lo][0], plans[hi][0]
            total += (_lerp(fixed[lo], fixed[hi], w) + _lerp(per[lo], per[hi], w) * n * _lerp(p_lo.passes, p_hi.passes, w)
                      + gemm * n * n * _lerp(p_lo.columns, p_hi.columns, w))
        seconds = total
        probe = (f"timed on {probe_samples} and {4 * probe_samples} inputs of the smallest, the median and the largest "
                 f"network, scaled to {n}")
    return FiniteEstimate(networks=len(archs), samples=n, bytes_per_network=plan_big.peak_bytes + params_big,
                          largest=archs[big].id, seconds=seconds, probe=probe, passes=plan_big.passes)


def _lerp(a: float, b: float, w: float) -> float:
    return a + (b - a) * w


WARN_SECONDS = 60.0
WARN_BYTES = 2**30


def finite_warning(est: FiniteEstimate) -> str | None:
    """A warning when the finite-width measurements will take minutes or gigabytes, else None."""
    slow = est.seconds is not None and est.seconds > WARN_SECONDS
    big = est.bytes_per_network > WARN_BYTES
    if not (slow or big):
        return None
    what = []
    if est.seconds is not None:
        what.append(f"take about {format_seconds(est.seconds)} ({est.probe})")
    mem = f"need about {est.bytes_per_network / 1e9:.1f} GB of memory for the largest network ({est.largest})"
    if est.passes > 1:
        mem += f", streamed in {est.passes:.1f} passes over the inputs"
    avail = available_memory()
    if avail is not None and est.bytes_per_network > avail:
        mem += f", more than the {avail / 1e9:.1f} GB available"
    what.append(mem)
    return (f"the finite-width kernels of {est.networks:,} network(s) on N = {est.samples} inputs will "
            + " and ".join(what) + "; fewer inputs (--samples N), a smaller width (--width W) or fewer networks "
            "(--archs sample:K) cost less, --measure none skips them (topology and expressivity only), "
            "and --memory bounds the memory")


# ------------------------------------------------------------------ the whole space, streamed

CHUNK = 4096  # architectures per step of the streamed passes (a progress update, a flush of the files)
_NONE_KERNELS = {"source": "none"}


class StreamHeader(BaseModel):
    """What is known before the first row: written at the top of the streamed JSON."""

    space: str
    spec_hash: str
    data: DataInfo
    exact_kernels: bool
    exact_note: str | None
    architectures: int
    groups: int


class TopRow(BaseModel):
    """A computing graph's row in the best-K tables."""

    id: str
    group_size: int
    paths: int
    mean_depth: float
    params: int
    scores: dict[str, float]


class StreamSummary(BaseModel):
    """The end of a streamed analysis: its report, the best ``top`` computing graphs by each
    aspect, and (``keep_arrays``) the per-architecture columns a plot needs."""

    model_config = {"arbitrary_types_allowed": True}

    header: StreamHeader
    report: NflReport
    seconds: float
    provenance: dict
    top: dict[str, list[TopRow]]
    columns: dict[str, np.ndarray] | None = None


class _Groups:
    """Computing-graph groups of the analysed architectures, from one pass that keeps 16
    bytes of key, the parameter count and the index per architecture (then sorts)."""

    def __init__(self, group_of: np.ndarray, rep_pos: np.ndarray, size: np.ndarray, index_of: Any) -> None:
        self.group_of, self.rep_pos, self.size, self.index_of = group_of, rep_pos, size, index_of

    @property
    def count(self) -> int:
        return len(self.rep_pos)


def _group_pass(items: Iterable, total: int, chunk: int, progress: Any) -> tuple[_Groups, list | None]:
    """One pass: digest, parameters and index of every architecture, then the groups."""
    digests = array("B")
    params = array("q")
    indices = array("q")
    big_indices: list[int] | None = None
    pos = 0
    for pos, a in enumerate(items, start=1):
        digests.frombytes(groups.function_digest(a))
        params.append(a.params)
        if big_indices is None and a.index < 2**63:
            indices.append(a.index)
        else:
            if big_indices is None:
                big_indices = list(indices)
            big_indices.append(a.index)
        if pos % chunk == 0 and progress:
            progress(pos, total, "grouping")
    n = pos
    if progress:
        progress(n, total, "grouping")
    if n == 0:
        return _Groups(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), indices), None
    dig = np.frombuffer(digests, dtype=np.uint64).reshape(n, 2)
    order = np.lexsort((dig[:, 1], dig[:, 0]))
    sd = dig[order]
    new = np.ones(n, dtype=bool)
    new[1:] = np.any(sd[1:] != sd[:-1], axis=1)
    del sd, dig, digests
    group_of = np.empty(n, dtype=np.int64)
    group_of[order] = np.cumsum(new) - 1
    del order, new
    pr = np.frombuffer(params, dtype=np.int64)
    by = np.lexsort((np.arange(n), pr, group_of))  # group, then fewest parameters, then first in order
    first = np.ones(n, dtype=bool)
    first[1:] = group_of[by[1:]] != group_of[by[:-1]]
    rep_pos = by[first]
    size = np.bincount(group_of, minlength=len(rep_pos))
    index_of = np.frombuffer(indices, dtype=np.int64) if big_indices is None else np.array(big_indices, dtype=object)
    return _Groups(group_of, rep_pos, size, index_of), big_indices


def _group_kernels(space: Space, grouping: _Groups, arch_at: Callable[[int], Architecture], x: np.ndarray,
                   y: np.ndarray | None, seed: int, measure: Measure, finite: FiniteSettings,
                   warn: Callable[[str], None] | None, progress: Callable[..., None] | None
                   ) -> tuple[dict[int, dict], int, str | None]:
    """The kernels of every group, on its representative (representatives in order): exact
    where they apply, else finite-width measurements (none under ``measure="none"``);
    ``(kernels by group, architectures with exact kernels, a note on the others)``."""
    n = len(grouping.group_of)
    n_groups = grouping.count
    net_reason = network_support(space.ir)
    exact_reps: list[int] = []  # positions (architectures are made again when needed: their graphs are large)
    finite_reps: list[int] = []
    for p in np.sort(grouping.rep_pos).tolist():
        if net_reason is None and measure != "finite" and _exact_reason(arch_at(p)) is None:
            exact_reps.append(p)
        else:
            finite_reps.append(p)
    first_reason = None
    if finite_reps:
        first_reason = net_reason or _exact_reason(arch_at(finite_reps[0]))
    kern: dict[int, dict] = {}  # group -> kernels
    done = 0
    if progress:
        progress(0, n_groups)

    def finished() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, n_groups)

    if exact_reps:
        xs = normalize_inputs(x)
        for p, ck in zip(exact_reps, K.space_kernels((_cell_graph(arch_at(p)) for p in exact_reps), xs), strict=True):
            kern[int(grouping.group_of[p])] = {"source": "exact", "nngp": _eig_summary(ck.nngp, None),
                                               "ntk": _eig_summary(ck.ntk, y)}
            finished()
    if finite_reps and measure != "none" and warn is not None:
        message = finite_warning(estimate_finite([arch_at(p) for p in finite_reps], x, seed, settings=finite))
        if message:
            warn(message)
    for p in finite_reps:
        if measure != "none":
            a = arch_at(p)
            kern[int(grouping.group_of[p])] = {**_finite_kernels(a, x, y, seed, finite), "measured_on": a.id}
        finished()
    n_exact = int(sum(grouping.size[grouping.group_of[p]] for p in exact_reps))
    note = None
    if n_exact < n:
        note = (f"exact infinite-width kernels do not apply to {n - n_exact} architecture(s) ({first_reason}); "
                + ("they carry finite-width measurements at initialisation, one per computing graph"
                   if measure != "none" else "no kernels computed (--measure none): no convergence or "
                   "generalization score for them"))
    return kern, n_exact, note


class _Scored(NamedTuple):
    cols: dict[str, np.ndarray]
    paths: np.ndarray
    mean_depth: np.ndarray
    sum_depth: np.ndarray
    best: dict[str, list]
    provenance: dict


def _score_pass(items: Iterable[Architecture], grouping: _Groups, kern: dict[int, dict], samples: int, top: int,
                chunk: int, on_rows: Callable[[list[ArchAnalysis]], None] | None,
                progress: Callable[..., None] | None) -> _Scored:
    """The second pass: every architecture's row from its group's kernels, to ``on_rows`` a
    chunk at a time in order, keeping its three scores, P, depths and the best ``top``."""
    n = len(grouping.group_of)
    cols = {asp: np.empty(n) for asp in ASPECTS}
    paths = np.empty(n, dtype=np.float64)
    mean_depth = np.empty(n)
    sum_depth = np.empty(n)
    best: dict[str, list] = {asp: [] for asp in ASPECTS}
    provenance: dict = {}
    rows: list[ArchAnalysis] = []
    for pos, a in enumerate(items):
        g = int(grouping.group_of[pos])
        r = int(grouping.rep_pos[g])
        kk = dict(kern.get(g, _NONE_KERNELS))
        if r == pos:
            kk.pop("measured_on", None)  # a finite-width group's other members say whose module they share
        topos = cell_topologies(a)
        res = analyze_architecture(a, topology_summary(a, topos), kk, kk["source"], samples, curvature(a, topos))
        res.group, res.group_size = int(grouping.index_of[r]), int(grouping.size[g])
        for asp in ASPECTS:
            cols[asp][pos] = res.scores[asp].value
        paths[pos] = res.topology["paths"]
        mean_depth[pos] = res.topology["mean_depth"]
        sum_depth[pos] = res.topology["sum_depth"]
        if pos == 0:
            provenance = {name: v.model_dump(exclude={"value"}) for name, v in res.scores.items()}
        if top and r == pos and res.topology["paths"] > 0:
            _keep_best(best, res, pos, top)
        rows.append(res)
        if len(rows) >= chunk:
            if on_rows:
                on_rows(rows)
            rows = []
            if progress:
                progress(pos + 1, n, "scoring")
    if rows and on_rows:
        on_rows(rows)
    if progress:
        progress(n, n, "scoring")
    return _Scored(cols, paths, mean_depth, sum_depth, best, provenance)


def analyze_stream(space: Space, data: str = "mnist5k", samples: int = 256, seed: int = 0, archs: Sequence | None = None,
                   measure: Measure = "auto", progress: Callable[..., None] | None = None,
                   warn: Callable[[str], None] | None = None, on_header: Callable[[StreamHeader], None] | None = None,
                   on_rows: Callable[[list[ArchAnalysis]], None] | None = None, top: int = 0, chunk: int = CHUNK,
                   keep_columns: bool = False, finite: FiniteSettings | None = None) -> StreamSummary:
    """Analyze ``archs`` (default: the whole space) without holding them: rows go to
    ``on_rows`` a chunk at a time, in order.

    Three steps, each in chunks of ``chunk`` architectures:

    1. grouping: one pass over the architectures keeps a 16-byte digest of each one's
       computing graph (:func:`nflc.analysis.groups.function_digest`), its parameter count
       and index, then sorts them into groups (``progress(done, total, "grouping")``);
    2. kernels, once per group, on its representative (``progress(done, groups)``, then
       ``on_header``);
    3. scoring: a second pass builds every architecture's row from its group's kernels
       (``progress(done, total, "scoring")``), sends it to ``on_rows`` and keeps its three
       scores, P, mean depth and group for the report (:func:`nflc.analysis.report.nfl_report`).

    What stays in memory is about :data:`nflc.analysis.groups.BYTES_PER_ARCH` bytes per architecture, the
    kernel summaries of the groups, and the best ``top`` rows by each aspect.
    """
    t0 = time.perf_counter()
    finite = finite or FiniteSettings()
    listed = list(archs) if archs is not None else None
    total = len(listed) if listed is not None else space.count()
    if total == 0:
        raise NflcError(f"space '{space.name}' has no architecture to analyze", hint="check its budgets and constraints")
    groups.check_count(space.name, total)
    x, y, info = analysis_inputs(space, data, samples, seed)
    if progress:
        progress(0, total, "grouping")

    def items() -> Iterable:
        return iter(listed) if listed is not None else iter(space)

    grouping, _ = _group_pass(items(), total, chunk, progress)
    n = len(grouping.group_of)
    n_groups = grouping.count

    def arch_at(pos: int) -> Architecture:
        if listed is not None:
            return listed[pos]
        return space.architecture(int(grouping.index_of[pos]))

    kern, n_exact, note = _group_kernels(space, grouping, arch_at, x, y, seed, measure, finite, warn, progress)
    header = StreamHeader(space=space.name, spec_hash=space.spec_hash, data=info, exact_kernels=n_exact == n,
                          exact_note=note, architectures=n, groups=n_groups)
    if on_header:
        on_header(header)

    scored = _score_pass(items(), grouping, kern, samples, top, chunk, on_rows, progress)
    cols, paths, mean_depth, sum_depth = scored.cols, scored.paths, scored.mean_depth, scored.sum_depth
    best, provenance = scored.best, scored.provenance
    ids: dict[int, str] = {}

    def id_of(pos: int) -> str:
        if pos not in ids:
            ids[pos] = arch_at(pos).id
        return ids[pos]

    report = nfl_report(id_of, cols, paths, mean_depth, grouping.group_of, complete=True, sum_depth=sum_depth)
    tops = {asp: [row for _, _, row in sorted(best[asp], key=lambda t: (-t[0], -t[1]))] for asp in ASPECTS}
    columns = {"paths": paths, "mean_depth": mean_depth, **cols} if keep_columns else None
    return StreamSummary(header=header, report=report, seconds=time.perf_counter() - t0, provenance=provenance,
                         top=tops, columns=columns)


def _plain_cell(arch: Architecture) -> str | None:
    """The instance of a single-cell architecture whose cell graph is its edges alone (no
    frame, no node ops, the space's own shapes), else None."""
    sp = arch.space
    if len(sp.instances) != 1 or (sp.numeric and arch.constants_override):
        return None
    k = sp.instances[0]
    c = sp.cell_of[k]
    return None if c.inputs > 1 or c.output == "concat" or c.is_node_cell else k


def _cell_graph(arch: Architecture) -> nx.DiGraph:
    """``arch.graph``, built without the space's cache of graphs: a pass over a million
    representatives would otherwise fill it with 65,536 graphs (half a gigabyte)."""
    k = _plain_cell(arch)
    if k is None:
        return arch.graph
    return arch.space.cell(arch.space.cell_of[k].name).graph(arch.cell_index(k))


def _exact_reason(arch: Architecture) -> str | None:
    """:func:`nflc.analysis.exact.exact_support`, reading a plain cell's edge kinds from the
    space's edge table instead of building its graph (the same reason, word for word)."""
    k = _plain_cell(arch)
    if k is None:
        return exact_support(arch)
    sp = arch.space
    reason = network_support(sp.ir)
    if reason:
        return reason
    cs = sp.cell(sp.cell_of[k].name)
    edges = zip(cs.ir.edges, cs.edge_table, cs.choice(arch.cell_index(k)), strict=False)
    for e, row, d in sorted(edges, key=lambda t: t[0].src):  # the graph's order: by source, then as declared
        a = row[d]
        if not K.edge_supported(a):
            return (f"edge {e.src} -> {e.dst} is '{a['op']}' (kind {a['kind']}); exact kernels cover zero, skip and "
                    "linear >> relu edges")
    return None


def _keep_best(best: dict[str, list], res: ArchAnalysis, pos: int, top: int) -> None:
    """The ``top`` best computing graphs by each aspect (ties: the first in order), in heaps."""
    row = TopRow(id=res.id, group_size=res.group_size, paths=res.topology["paths"], mean_depth=res.topology["mean_depth"],
                 params=res.params, scores={asp: res.scores[asp].value for asp in ASPECTS})
    for asp in ASPECTS:
        v = res.scores[asp].value
        if math.isnan(v):
            continue
        item = (v, -pos, row)
        if len(best[asp]) < top:
            heapq.heappush(best[asp], item)
        elif item[:2] > best[asp][0][:2]:
            heapq.heapreplace(best[asp], item)


def analyze(space: Space, data: str = "mnist5k", samples: int = 256, seed: int = 0, archs: Iterable | None = None,
            measure: Measure = "auto", progress: Callable[..., None] | None = None,
            warn: Callable[[str], None] | None = None, finite: FiniteSettings | None = None) -> Analysis:
    """Analyze ``archs`` (default: the whole space) of ``space`` on ``data``, in memory.

    Architectures that compute the same function (:mod:`nflc.analysis.groups`) share one
    kernel computation, that of their group's representative; ``progress(done, total)``
    counts these groups (computing graphs), first with ``done = 0``; the passes over the
    architectures before and after call ``progress(done, total, stage)`` with stage
    ``"grouping"`` and ``"scoring"``. ``warn`` receives a message before finite-width
    measurements that will take minutes or gigabytes. :func:`analyze_stream` is the same
    analysis without holding the rows (what ``nflc analyze`` runs).
    """
    rows: list[ArchAnalysis] = []
    summary = analyze_stream(space, data=data, samples=samples, seed=seed, archs=None if archs is None else list(archs),
                             measure=measure, progress=progress, warn=warn, on_rows=rows.extend, finite=finite)
    h = summary.header
    return Analysis(space=h.space, spec_hash=h.spec_hash, data=h.data, exact_kernels=h.exact_kernels,
                    exact_note=h.exact_note, seconds=summary.seconds, architectures=rows, report=summary.report)


def row_json(a: ArchAnalysis) -> dict:
    """One architecture as the documented JSON writes it (scores as values, infinities as
    strings): ``ArchAnalysis.model_dump`` with each score's value, built directly."""
    return {"id": a.id, "index": a.index, "params": a.params, "flops": a.flops, "topology": _fix(a.topology),
            "kernels": _fix(a.kernels), "scores": {k: _jsonable(v.value) for k, v in a.scores.items()},
            "indicators": {k: _jsonable(v) for k, v in a.indicators.items()}, "group": a.group, "group_size": a.group_size}


def _fix(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _fix(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_fix(v) for v in o]
    return _jsonable(o)


def to_json_dict(analysis: Analysis) -> dict:
    """The documented JSON form (infinities as "inf"/"-inf" strings)."""
    d = analysis.model_dump()
    for a in d["architectures"]:
        a["scores"] = {k: v["value"] for k, v in a["scores"].items()}
    d["provenance"] = {k: v.model_dump(exclude={"value"}) for k, v in analysis.architectures[0].scores.items()}
    return _fix(d)


CSV_COLUMNS = ("index", "id", "group", "group_size", "params", "flops", "paths", "mean_depth", "sum_depth", *ASPECTS)


def csv_row(a: ArchAnalysis) -> list:
    return [a.index, a.id, a.group, a.group_size, a.params, a.flops, a.topology["paths"], a.topology["mean_depth"],
            a.topology["sum_depth"], *(a.scores[x].value for x in ASPECTS)]


class StreamWriter:
    """The JSON and CSV of a streamed analysis, written as it goes.

    The JSON is the documented object with its keys in the order they become known:
    ``space`` .. ``exact_note`` (after the kernels), ``architectures`` one per line, then
    ``report``, ``provenance`` and ``seconds``. Each file grows as ``PATH.partial``
    (:class:`nflc.outputs.PartialFile`), flushed after every chunk of rows, and replaces
    ``PATH`` when :meth:`finish` is called. A run stopped early leaves ``PATH`` as it was,
    and in ``PATH.partial`` the CSV's header and complete rows, and a JSON whose lines
    between ``"architectures": [`` and the cut are complete architectures (each but the
    last followed by a comma); only its closing part is missing.
    """

    def __init__(self, json_path: Any = None, csv_path: Any = None) -> None:
        self.json_path, self.csv_path = json_path, csv_path
        self.json: Any = None
        self.csv_fh: Any = None
        self.csv: Any = None
        self.first = True

    def header(self, h: StreamHeader) -> None:
        """Open the files (nothing is written before the kernels are done) and write the heads."""
        if self.csv_path is not None:
            self.csv_fh = PartialFile(self.csv_path, newline="")
            self.csv = csv.writer(self.csv_fh)
            self.csv.writerow(CSV_COLUMNS)
            self.csv_fh.flush()
        if self.json_path is None:
            return
        self.json = PartialFile(self.json_path)
        head = {"space": h.space, "spec_hash": h.spec_hash, "data": h.data.model_dump(), "exact_kernels": h.exact_kernels,
                "exact_note": h.exact_note}
        self.json.write("{\n" + "".join(f"{json.dumps(k)}: {json.dumps(_fix(v))},\n" for k, v in head.items())
                        + '"architectures": [\n')
        self.json.flush()

    def rows(self, rows: list[ArchAnalysis]) -> None:
        if self.json is not None:
            parts = []
            for a in rows:
                parts.append(("" if self.first else ",\n") + json.dumps(row_json(a)))
                self.first = False
            self.json.write("".join(parts))
            self.json.flush()
        if self.csv is not None:
            self.csv.writerows(csv_row(a) for a in rows)
            self.csv_fh.flush()

    def finish(self, summary: StreamSummary) -> None:
        """Write the JSON's closing part and put both files in place."""
        if self.json is not None:
            tail = {"report": summary.report.model_dump(), "provenance": summary.provenance, "seconds": summary.seconds}
            self.json.write("\n],\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(_fix(v))}" for k, v in tail.items())
                            + "\n}\n")
        for fh in (self.csv_fh, self.json):
            if fh is not None:
                fh.commit()
        self.json = self.csv_fh = None

    def partial_paths(self) -> list:
        """The outputs left as ``PATH.partial`` (their work stopped before :meth:`finish`)."""
        return [fh.path for fh in (self.json, self.csv_fh) if fh is not None]

    def close(self) -> None:
        """Stop writing; files not finished stay as ``PATH.partial``."""
        for fh in (self.json, self.csv_fh):
            if fh is not None:
                fh.abandon()
