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
    classes, or ``(sum_p d_p) / sqrt(lambda_min(Theta))`` without labels (``--dataset none``).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
import scipy.linalg
from pydantic import BaseModel

from nflc.analysis import groups
from nflc.analysis import kernels as K
from nflc.analysis.exact import exact_support, network_support, normalize_inputs
from nflc.analysis.indicators import expected_jacobian_norm
from nflc.analysis.report import ASPECTS, NflReport, nfl_report
from nflc.errors import NflcError

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


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def analyze_architecture(arch, topo: dict, kern: dict, source: str, n: int) -> ArchAnalysis:
    sum_depth = topo["sum_depth"]
    kappa = curvature(arch)
    conv = kern.get("nngp", {}).get("pair_bound", math.nan)
    gen, gen_formula = _generalization(sum_depth, kern.get("ntk", {}), n)
    src = {"exact": "exact", "none": "none"}.get(source, "finite-width")
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


class FiniteEstimate(BaseModel):
    """What the finite-width measurements of ``networks`` networks on ``samples`` inputs will cost."""

    networks: int
    samples: int
    bytes_per_network: int  # the largest network's peak, estimated from its activations
    largest: str  # id of that network
    seconds: float | None  # None when not probed (small jobs)
    probe: str  # how the time was estimated


def finite_bytes(arch, x: np.ndarray) -> int:
    """Peak memory of :func:`_finite_kernels` on ``len(x)`` inputs, from one forward pass of
    one input: the NTK keeps every activation for the backward pass, a copy of the input
    and of the output of every parameterized layer and its output gradient (float64), and
    the largest layer's unfolded conv patches; plus the N x N kernels."""
    import torch
    from torch import nn

    module = arch.to_module(seed=0).double()
    acts = [0, 0]  # leaf outputs, parameterized inputs + outputs
    patch = [0]

    def hook(mod, inp, out):
        if not isinstance(out, torch.Tensor):
            return
        if next(mod.children(), None) is None:
            acts[0] += out.numel()
        if next(mod.parameters(recurse=False), None) is not None:
            acts[1] += inp[0].numel() + out.numel()
            if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
                positions = math.prod(out.shape[2:])
                patch[0] = max(patch[0], positions * mod.in_channels * math.prod(mod.kernel_size))

    hooks = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        with torch.no_grad():
            module(torch.zeros(1, *x.shape[1:], dtype=torch.float64))
    finally:
        for h in hooks:
            h.remove()
    n = len(x)
    params = sum(p.numel() for p in module.parameters())
    return 8 * (n * (acts[0] + acts[1] + 2 * patch[0]) + 4 * n * n + 2 * params) + 2 * 8 * 2**24


def estimate_finite(archs: list, x: np.ndarray, seed: int, probe_samples: int = 4) -> FiniteEstimate:
    """Memory of the largest network; time from timing the smallest and the largest network
    (by FLOPs) on ``probe_samples`` inputs, interpolated linearly in FLOPs for the others and
    scaled linearly to ``len(x)`` inputs. Small jobs (under 16 times a probe) are not timed."""
    flops = [a.flops for a in archs]
    big = max(range(len(archs)), key=lambda i: (flops[i], archs[i].params))
    small = min(range(len(archs)), key=lambda i: (flops[i], archs[i].params))
    n = len(x)
    seconds, probe = None, "not timed (a small job)"
    if len(archs) * n > 16 * 2 * probe_samples and n > probe_samples:
        t = {}
        for i in {big, small}:
            t0 = time.perf_counter()
            _finite_kernels(archs[i], x[:probe_samples], None, seed)
            t[i] = time.perf_counter() - t0
        span = flops[big] - flops[small]
        per = [t[small] + (t[big] - t[small]) * ((f - flops[small]) / span if span else 0.0) for f in flops]
        seconds = sum(per) * n / probe_samples
        probe = f"timed on {probe_samples} inputs of the smallest and the largest network, scaled to {n}"
    return FiniteEstimate(networks=len(archs), samples=n, bytes_per_network=finite_bytes(archs[big], x),
                          largest=archs[big].id, seconds=seconds, probe=probe)


WARN_SECONDS = 60.0
WARN_BYTES = 2**30


def finite_warning(est: FiniteEstimate) -> str | None:
    """A warning when the finite-width measurements will take minutes or gigabytes, else None."""
    from nflc.analysis.progress import format_seconds
    from nflc.space import available_memory

    slow = est.seconds is not None and est.seconds > WARN_SECONDS
    big = est.bytes_per_network > WARN_BYTES
    if not (slow or big):
        return None
    what = []
    if est.seconds is not None:
        what.append(f"take about {format_seconds(est.seconds)} ({est.probe})")
    mem = f"need about {est.bytes_per_network / 1e9:.1f} GB of memory for the largest network ({est.largest})"
    avail = available_memory()
    if avail is not None and est.bytes_per_network > avail:
        mem += f", more than the {avail / 1e9:.1f} GB available"
    what.append(mem)
    return (f"the finite-width kernels of {est.networks:,} network(s) on N = {est.samples} inputs will "
            + " and ".join(what) + "; fewer inputs (--samples N) or networks (--archs sample:K) cost proportionally less")


def analyze(space, data: str = "mnist5k", samples: int = 256, seed: int = 0, archs: Iterable | None = None,
            measure: Measure = "auto", progress: Callable[[int, int], None] | None = None,
            warn: Callable[[str], None] | None = None) -> Analysis:
    """Analyze ``archs`` (default: the whole space) of ``space`` on ``data``.

    Architectures that compute the same function (:mod:`nflc.analysis.groups`) share one
    kernel computation, that of their group's representative; ``progress(done, total)``
    counts these groups (computing graphs), first with ``done = 0``. ``warn`` receives a
    message before finite-width measurements that will take minutes or gigabytes.
    """
    t0 = time.perf_counter()
    archs = list(space if archs is None else archs)
    if not archs:
        raise NflcError(f"space '{space.name}' has no architecture to analyze", hint="check its budgets and constraints")
    x, y, info = analysis_inputs(space, data, samples, seed)
    rep_of = groups.representatives(archs)
    reps = sorted(set(rep_of))
    members: dict[int, list[int]] = {}
    for i, r in enumerate(rep_of):
        members.setdefault(r, []).append(i)
    net_reason = network_support(space.ir)
    exact_reps = [r for r in reps if measure != "finite" and exact_support(archs[r]) is None] if net_reason is None else []
    exact_set = set(exact_reps)
    finite_reps = [r for r in reps if r not in exact_set]
    kern: dict[int, dict] = {}  # representative position -> kernels
    done = 0
    if progress:
        progress(0, len(reps))

    def finished(r: int) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(reps))

    if exact_reps:
        xs = normalize_inputs(x)
        for r, ck in zip(exact_reps, K.space_kernels((archs[r].graph for r in exact_reps), xs), strict=True):
            kern[r] = {"source": "exact", "nngp": _eig_summary(ck.nngp, None), "ntk": _eig_summary(ck.ntk, y)}
            finished(r)
    if finite_reps and measure != "none" and warn is not None:
        message = finite_warning(estimate_finite([archs[r] for r in finite_reps], x, seed))
        if message:
            warn(message)
    for r in finite_reps:
        kern[r] = {"source": "none"} if measure == "none" else _finite_kernels(archs[r], x, y, seed)
        finished(r)
    results = []
    for i, a in enumerate(archs):
        r = rep_of[i]
        k = dict(kern[r])
        if r != i and k["source"] == "finite-width":
            k["measured_on"] = archs[r].id  # the group shares its representative's module
        res = analyze_architecture(a, topology_summary(a), k, k["source"], samples)
        res.group, res.group_size = archs[r].index, len(members[r])
        results.append(res)
    ids = [r.id for r in results]
    scores: dict[str, Sequence[float]] = {asp: [r.scores[asp].value for r in results] for asp in ASPECTS}
    report = nfl_report(ids, scores, [r.topology["paths"] for r in results], [r.topology["mean_depth"] for r in results],
                        groups=[r.group for r in results], complete=True)
    note = None
    n_exact = sum(len(members[r]) for r in exact_reps)
    if n_exact < len(archs):
        why = net_reason or next((exact_support(archs[r]) for r in finite_reps), None)
        note = (f"exact infinite-width kernels do not apply to {len(archs) - n_exact} architecture(s) ({why}); "
                + ("they carry finite-width measurements at initialisation, one per computing graph"
                   if measure != "none" else "no kernels computed (--measure none): no convergence or "
                   "generalization score for them"))
    return Analysis(space=space.name, spec_hash=space.spec_hash, data=info, exact_kernels=n_exact == len(archs),
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
