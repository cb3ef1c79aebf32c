"""Analyze a space before training: topology, kernels, three predicted scores, the report.

For every architecture:

- topology of its cell(s) (THEORY.md section 2);
- exact infinite-width NNGP and NTK when the architecture is in the exact engine's family
  (THEORY.md section 4), else finite-width measurements of the compiled module at
  initialisation (section 6), and the output says which;
- three predicted scores, each oriented so that higher is better and each carrying its
  provenance:

  * expressivity: the paper's curvature ``kappa = 1 / E||J||`` with
    ``E||J|| = prod over cell placements of sum_p exp(-5 d_p / (8 m))`` (Theorem 4.1 /
    Corollary 4.2 with C = 1; a chain of placements multiplies path sums). Few, deep
    paths give high curvature. A cell with no input-output path computes a constant: 0.
  * convergence: Theorem 4.4's bound ``lambda_min(K) <= min_{i != j} (K_ii + K_jj)/2 - K_ij``
    (the worst-separated pair of inputs; the paper's ``P - sum_p f^{d_p}(K0_ij)`` is this
    bound on its path-sum approximation) on the exact NNGP, or on the measured one. The
    exact ``lambda_min`` itself is reported in ``kernels``: on low-rank data such as MNIST
    it *rises* with depth along a single path (the ReLU kernel map adds higher Hadamard
    powers, which lift small eigenvalues) while the worst pair falls, so the bound,
    not ``lambda_min``, carries the paper's depth trend.
  * generalization: minus the leading term of the NTK bound (Theorem 4.5),
    ``(sum_p d_p) * sqrt(y^T Theta^-1 y / N)`` with centred one-hot labels averaged over
    classes, or ``(sum_p d_p) / sqrt(lambda_min(Theta))`` without labels (``--data none``).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Literal

import numpy as np
import scipy.linalg
from pydantic import BaseModel

from nflc.analysis import kernels as K
from nflc.analysis.exact import exact_support, network_support, normalize_inputs
from nflc.analysis.indicators import expected_jacobian_norm
from nflc.analysis.report import ASPECTS, NflReport, nfl_report
from nflc.errors import NflcError

Measure = Literal["auto", "finite", "none"]


class Score(BaseModel):
    value: float
    formula: str
    source: Literal["exact", "closed-form", "finite-width", "topology"]


class ArchAnalysis(BaseModel):
    id: str
    index: int
    params: int
    flops: int
    topology: dict
    kernels: dict
    scores: dict[str, Score]


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


def analysis_inputs(space, data: str, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray | None, DataInfo]:
    """(inputs shaped like the space's input, centred one-hot labels or None, description)."""
    from nflc import data as datasets

    shape = tuple(space.ir.input_shape)
    d = int(np.prod(shape))
    if samples < 2:
        raise NflcError(f"--samples must be at least 2, got {samples}")
    if data == "none":
        x = datasets.canonical_inputs(samples, d, seed=seed).numpy().astype(np.float64)
        note = "data-free: orthonormal inputs, normalized Gram q_in = I (nflc.data.canonical_gram, rho = 0)"
        return x.reshape(samples, *shape), None, DataInfo(name="none", samples=samples, seed=seed, labels=False, note=note)
    info = datasets.DATASETS.get(data)
    if info is not None and samples > info.size:
        raise NflcError(f"--samples {samples} is more than dataset '{data}' has ({info.size})", hint=f"use --samples {info.size} or fewer")
    ds = datasets.fit_input_shape(datasets.load_dataset(data, seed=seed, n=samples), shape)
    y = np.eye(ds.classes)[ds.y.numpy()]
    y = y - y.mean(axis=0, keepdims=True)
    note = f"{samples} class-stratified samples (seed {seed}); inputs rescaled to |x|^2 = d for the exact kernels"
    return ds.x.numpy().astype(np.float64), y, DataInfo(name=data, samples=samples, seed=seed, labels=True, note=note)


# ------------------------------------------------------------------ per-architecture pieces


def placements(arch) -> list[tuple[str, int]]:
    """(instance, width m) of every cell placement in network order."""
    ir = arch.space.lowered(arch.constants_override)
    return [(st.instance, st.shape_in[0]) for st in ir.network if st.kind == "cell"]


def topology_summary(arch) -> dict:
    """The cell's topology (THEORY section 2), and network-level P and mean depth: paths
    multiply along a chain of cell placements and depths add."""
    insts = {k: arch.topology(k) for k in arch.space.instances}
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


def curvature(arch) -> float:
    """The paper's closed-form curvature ``1 / prod_placements E||J||_cell`` (Thm 4.1 per
    placement, :func:`nflc.analysis.indicators.expected_jacobian_norm`; a chain of
    placements multiplies their path sums). 0.0 when some placement has no path."""
    total = 1.0
    for inst, m in placements(arch):
        total *= expected_jacobian_norm(arch.topology(inst), m)
    return 1.0 / total if total > 0 else 0.0


def _eig_summary(k: np.ndarray, y: np.ndarray | None) -> dict:
    """lambda_min, lambda_max, condition number, the pair bound, and y^T K^-1 y (labels).

    Only the two extreme eigenvalues are computed (LAPACK's syevr on a subset) and
    y^T K^-1 y comes from a Cholesky solve: a full eigendecomposition per architecture
    would dominate the analysis of a space.
    """
    k = (k + k.T) / 2
    n = k.shape[0]
    lo = float(scipy.linalg.eigh(k, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)[0])
    hi = float(scipy.linalg.eigh(k, eigvals_only=True, subset_by_index=[n - 1, n - 1], check_finite=False)[0])
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
    if sum_depth == 0:
        return 0.0, "no parameterized edge on any path: the bound's leading term is 0"
    if "y_inv_y" in ntk:
        q = ntk["y_inv_y"]
        return (-(sum_depth * math.sqrt(q / n)) if math.isfinite(q) else -math.inf,
                "-(sum_p d_p) * sqrt(y^T Theta^-1 y / N)  [paper Thm 4.5, Eq. 8]")
    lam = ntk["lambda_min"]
    return (-(sum_depth / math.sqrt(lam)) if lam > 0 else -math.inf,
            "-(sum_p d_p) / sqrt(lambda_min(Theta))  [paper Thm 4.5, label-free form]")


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def analyze_architecture(arch, topo: dict, kern: dict, source: str, n: int) -> ArchAnalysis:
    sum_depth = topo["sum_depth"]
    kappa = curvature(arch)
    conv = kern.get("nngp", {}).get("pair_bound", math.nan)
    gen, gen_formula = _generalization(sum_depth, kern.get("ntk", {"lambda_min": math.nan}), n)
    src = "exact" if source == "exact" else "finite-width"
    scores = {
        "expressivity": Score(value=kappa, formula="1 / prod_placements sum_p exp(-5 d_p / (8 m))  [paper Thm 4.1, C = 1]",
                              source="closed-form"),
        "convergence": Score(value=conv, formula="min_{i!=j} (K_ii + K_jj)/2 - K_ij of the NNGP K: the upper bound on "
                             "lambda_min(K) of paper Thm 4.4", source=src),
        "generalization": Score(value=gen, formula=gen_formula, source=src),
    }
    return ArchAnalysis(id=arch.id, index=arch.index, params=arch.params, flops=arch.flops, topology=topo,
                        kernels=kern, scores=scores)


# ------------------------------------------------------------------ the whole space


def _finite_kernels(arch, x: np.ndarray, y, seed: int) -> dict:
    import torch

    from nflc.analysis import empirical as E

    module = arch.to_module(seed=seed).double()
    xt = torch.as_tensor(x, dtype=torch.float64)
    nngp = E.empirical_nngp(module, xt)
    ntk = E.empirical_ntk(module, xt, output="sum")
    return {"source": "finite-width", "seed": seed, "nngp": _eig_summary(nngp, None), "ntk": _eig_summary(ntk, y)}


def analyze(space, data: str = "mnist5k", samples: int = 256, seed: int = 0, archs: Iterable | None = None,
            measure: Measure = "auto", progress: Callable[[int, int], None] | None = None) -> Analysis:
    """Analyze ``archs`` (default: the whole space) of ``space`` on ``data``."""
    t0 = time.perf_counter()
    archs = list(space if archs is None else archs)
    if not archs:
        raise NflcError(f"space '{space.name}' has no architecture to analyze", hint="check its budgets and constraints")
    x, y, info = analysis_inputs(space, data, samples, seed)
    net_reason = network_support(space.ir)
    exact = [a for a in archs if measure != "finite" and exact_support(a) is None] if net_reason is None else []
    exact_ids = {a.index for a in exact}
    kern: dict[int, dict] = {}
    done = 0
    if exact:
        xs = normalize_inputs(x)
        for a, ck in zip(exact, K.space_kernels((a.graph for a in exact), xs)):
            kern[a.index] = {"source": "exact", "nngp": _eig_summary(ck.nngp, None), "ntk": _eig_summary(ck.ntk, y)}
            done += 1
            if progress:
                progress(done, len(archs))
    for a in archs:
        if a.index in exact_ids:
            continue
        if measure == "none":
            kern[a.index] = {"source": "none"}
        else:
            kern[a.index] = _finite_kernels(a, x, y, seed)
        done += 1
        if progress:
            progress(done, len(archs))
    results = []
    for a in archs:
        k = kern[a.index]
        results.append(analyze_architecture(a, topology_summary(a), k, k["source"], samples))
    ids = [r.id for r in results]
    scores = {asp: [r.scores[asp].value for r in results] for asp in ASPECTS}
    report = nfl_report(ids, scores, [r.topology["paths"] for r in results], [r.topology["mean_depth"] for r in results])
    note = None
    if len(exact) < len(archs):
        why = net_reason or next((exact_support(a) for a in archs if a.index not in exact_ids), None)
        note = (f"exact infinite-width kernels do not apply to {len(archs) - len(exact)} architecture(s) ({why}); "
                + ("they carry finite-width measurements at initialisation" if measure != "none" else "no kernels computed"))
    return Analysis(space=space.name, spec_hash=space.spec_hash, data=info, exact_kernels=len(exact) == len(archs),
                    exact_note=note, seconds=time.perf_counter() - t0, architectures=results, report=report)


def to_json_dict(analysis: Analysis) -> dict:
    """The documented JSON form (infinities as "inf"/"-inf" strings)."""
    def fix(o):
        if isinstance(o, dict):
            return {k: fix(v) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v) for v in o]
        return _jsonable(o)

    d = analysis.model_dump()
    for a in d["architectures"]:
        a["scores"] = {k: v["value"] for k, v in a["scores"].items()}
    d["provenance"] = {k: v.model_dump(exclude={"value"}) for k, v in analysis.architectures[0].scores.items()}
    return fix(d)
