"""Exact infinite-width NNGP and NTK of ``stem -> cell -> readout`` (docs/THEORY.md section 4).

The network is the paper's MLP skeleton (docs/THEORY.md section 1) in the NTK
parameterization: stem ``X0 = sqrt(2) relu(W0 x / sqrt(d))``, cell edges of kind
``zero`` / ``skip`` / ``linear_relu`` (``sqrt(2) relu(W Xs / sqrt(m))``), readout
``f = v . XH / sqrt(m)``, all weights ``N(0, 1)``, no biases.

Per node ``a`` we carry the mean ``mu_a(x)`` (post-ReLU features are not centered, so
sums of edges have cross terms) and, for every pair of nodes, the second moment
``q_ab(x, x')``; backwards, ``P_ab(x, x') = m E[g^a(x) g^b(x')]``. Each is an ``(N, N)``
float64 matrix over the sample (``(N,)`` for means), stored for ``a <= b`` with
``q_ba = q_ab.T``. Node ``b``'s statistics depend only on the edges into nodes ``<= b``,
which is what :func:`space_kernels` shares across a space.

Edges of any other kind raise ``ValueError`` naming the edge: their kernels are not exact
here (use :mod:`nflc.analysis.empirical` for measured kernels).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from nflc import ops
from nflc.space.topology import cell_size, depth_counts

SUPPORTED_KINDS = ("zero", "skip", "linear_relu")  # the edge forms the engine composes (nflc.ops.seq_kind)


def edge_supported(attrs: Mapping[str, Any]) -> bool:
    """Whether the engine computes an edge of a cell graph exactly: a zero edge, or an edge
    of a supported kind every op of which has its map here (``exact`` in :data:`nflc.ops.PRIMS`;
    a graph built by hand may name no op, or ops the table does not know: its kinds decide)."""
    kind = attrs.get("kind")
    if kind == "zero":
        return True
    specs = (ops.PRIMS.get(n) for n in attrs.get("prims", ()))
    return kind in SUPPORTED_KINDS and all(spec.exact for spec in specs if spec is not None)

# edges into one node: ((source, kind), ...) for non-zero edges, sources ascending
InEdges = tuple[tuple[int, str], ...]


# --- Gaussian ReLU moments --------------------------------------------------------------


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(theta, sqrt(AB - C^2))`` of a Gaussian pair; ``theta = 0`` exactly when C^2 = AB.

    ``arctan2`` of ``sqrt(AB - C^2)`` and ``C`` avoids ``arccos(C / sqrt(AB))``, which
    rounds past 1 on the diagonal and needs a division by a possibly zero variance.
    """
    s = np.sqrt(np.maximum(a * b - c * c, 0.0))
    return np.arctan2(s, c), s


def arccos_k1(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``2 E[relu(u) relu(u')]`` for variances ``a, b`` and covariance ``c`` (the paper's f).

    ``sqrt(AB) (sin t + (pi - t) cos t) / pi`` written without the division; a zero
    variance gives 0 (``c`` is 0 there too).
    """
    theta, s = _angle(a, b, c)
    return (s + (np.pi - theta) * c) / np.pi


def arccos_k0(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``2 E[1(u > 0) 1(u' > 0)] = (pi - theta) / pi`` (the paper's f-dot).

    A zero variance gives 0, as torch does: ``relu'(0) = 0``.
    """
    theta, _ = _angle(a, b, c)
    return np.where(a * b > 0.0, (np.pi - theta) / np.pi, 0.0)


def relu_mean(a: np.ndarray) -> np.ndarray:
    """``sqrt(2) E[relu(u)] = sqrt(a / pi)`` for ``u ~ N(0, a)``."""
    return np.sqrt(np.maximum(a, 0.0) / np.pi)


def _k1(q: np.ndarray) -> np.ndarray:
    d = np.diag(q)
    return arccos_k1(d[:, None], d[None, :], q)


def _k0(q: np.ndarray) -> np.ndarray:
    d = np.diag(q)
    return arccos_k0(d[:, None], d[None, :], q)


# --- cell decoding ----------------------------------------------------------------------


def in_edges(cell: nx.DiGraph) -> tuple[InEdges, ...]:
    """``result[t]`` = the non-zero edges into node t; ``ValueError`` names an unsupported edge."""
    h = cell_size(cell)
    groups: list[list[tuple[int, str]]] = [[] for _ in range(h + 1)]
    for s, t in sorted(cell.edges):
        attrs = cell.edges[s, t]
        kind = attrs.get("kind")
        if not edge_supported(attrs):
            raise ValueError(
                f"edge ({s}, {t}) has kind {kind!r} (op {attrs.get('op')!r}); exact kernels "
                f"cover only {', '.join(SUPPORTED_KINDS)}: measure this cell with "
                "nflc.analysis.empirical instead"
            )
        if kind != "zero":
            groups[t].append((s, kind))
    return tuple(tuple(g) for g in groups)


# --- forward: node means and second moments ---------------------------------------------


@dataclass(frozen=True)
class _Forward:
    """Statistics of nodes ``0 .. b``. ``relu_*[a]`` feed linear edges out of ``a``."""

    mu: tuple[np.ndarray, ...]
    q: Mapping[tuple[int, int], np.ndarray]
    relu_k1: tuple[np.ndarray, ...]
    relu_k0: tuple[np.ndarray, ...]
    relu_mu: tuple[np.ndarray, ...]

    def pair(self, a: int, b: int) -> np.ndarray:
        return self.q[a, b] if a <= b else self.q[b, a].T


def _stem(q_in: np.ndarray) -> _Forward:
    mu0 = relu_mean(np.diag(q_in))
    return _with_relu_stats(_Forward((mu0,), {(0, 0): _k1(q_in)}, (), (), ()))


def _with_relu_stats(state: _Forward) -> _Forward:
    """Add ``k1, k0, m1`` of the newest node (needed only if a linear edge leaves it)."""
    b = len(state.mu) - 1
    q = state.q[b, b]
    return _Forward(
        state.mu,
        state.q,
        state.relu_k1 + (_k1(q),),
        state.relu_k0 + (_k0(q),),
        state.relu_mu + (relu_mean(np.diag(q)),),
    )


def _edge_mean(state: _Forward, s: int, kind: str) -> np.ndarray:
    return state.mu[s] if kind == "skip" else state.relu_mu[s]


def _add_node(state: _Forward, edges: InEdges, n: int) -> _Forward:
    """Append node ``b = len(state.mu)`` whose inputs are ``edges`` (docs/THEORY.md section 4, forward)."""
    b = len(state.mu)
    zero_vec, zero_mat = np.zeros(n), np.zeros((n, n))
    mu_b = sum((_edge_mean(state, s, k) for s, k in edges), zero_vec)
    q = dict(state.q)
    for a in range(b):
        q_ab = zero_mat
        for s, kind in edges:
            if kind == "skip":
                q_ab = q_ab + state.pair(a, s)
            else:  # the edge's fresh weights decouple it from X^a: product of means
                q_ab = q_ab + np.outer(state.mu[a], state.relu_mu[s])
        q[a, b] = q_ab
    q_bb = zero_mat
    for i, (s, ks) in enumerate(edges):
        for j, (t, kt) in enumerate(edges):
            if i == j:
                q_bb = q_bb + (state.relu_k1[s] if ks == "linear_relu" else state.q[s, s])
            elif ks == kt == "skip":
                q_bb = q_bb + state.pair(s, t)
            else:  # at least one linear edge: independent weights, product of means
                q_bb = q_bb + np.outer(_edge_mean(state, s, ks), _edge_mean(state, t, kt))
    q[b, b] = q_bb
    return _Forward(state.mu + (mu_b,), q, state.relu_k1, state.relu_k0, state.relu_mu)


class _PrefixCache:
    """LRU of forward states keyed by the edges into nodes ``1 .. b`` (bounded in bytes)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.items: OrderedDict[tuple[InEdges, ...], tuple[_Forward, int]] = OrderedDict()

    def get(self, key: tuple[InEdges, ...]) -> _Forward | None:
        hit = self.items.get(key)
        if hit is None:
            return None
        self.items.move_to_end(key)
        return hit[0]

    def put(self, key: tuple[InEdges, ...], state: _Forward, nbytes: int) -> None:
        self.items[key] = (state, nbytes)
        self.bytes += nbytes
        while self.bytes > self.max_bytes and len(self.items) > 1:
            _, (_, freed) = self.items.popitem(last=False)
            self.bytes -= freed


def _forward(edges: tuple[InEdges, ...], stem: _Forward, n: int, cache: _PrefixCache) -> _Forward:
    """Forward statistics of all nodes; states of inner nodes come from / go to ``cache``."""
    h = len(edges) - 1
    state, start = stem, 1
    for b in range(h - 1, 0, -1):  # longest cached prefix first
        hit = cache.get(edges[1 : b + 1])
        if hit is not None:
            state, start = hit, b + 1
            break
    for b in range(start, h + 1):
        state = _add_node(state, edges[b], n)
        if b < h:  # the output node has no out-edges: no ReLU statistics, nothing to share
            state = _with_relu_stats(state)
            # new arrays: q_ab for a <= b, k1 and k0 (N x N float64); the vectors are noise
            cache.put(edges[1 : b + 1], state, (b + 3) * n * n * 8)
    return state


# --- backward: gradient second moments --------------------------------------------------


def _backward(edges: tuple[InEdges, ...], fwd: _Forward) -> dict[tuple[int, int], np.ndarray]:
    """``P[a, b]`` for ``a <= b`` by the backward rules of docs/THEORY.md section 4, in reverse topological order.

    Values may be numpy scalars where they are constant (``P_HH = 1``, zeros): they
    broadcast like the ``(N, N)`` matrices they stand for.
    """
    h = len(edges) - 1
    out: list[list[tuple[int, str]]] = [[] for _ in range(h + 1)]
    for t, group in enumerate(edges):
        for s, kind in group:
            out[s].append((t, kind))
    # entries are (N, N) arrays or scalars that broadcast like them
    p: dict[tuple[int, int], Any] = {(h, h): np.float64(1.0)}

    def get(a: int, b: int) -> Any:
        return p[a, b] if a <= b else np.transpose(p[b, a])

    for a in range(h - 1, -1, -1):
        skips = [t for t, k in out[a] if k == "skip"]
        linears = [t for t, k in out[a] if k == "linear_relu"]
        p_aa = sum((get(t, u) for t in skips for u in skips), np.float64(0.0))
        if linears:
            p_aa = p_aa + fwd.relu_k0[a] * sum(get(t, t) for t in linears)
        p[a, a] = p_aa
        # Expand only the earlier node: linear out-edges of a carry weights independent of
        # everything in g^b, so only skips from a contribute; t may lie before, at or after b.
        for b in range(a + 1, h + 1):
            p[a, b] = sum((get(t, b) for t in skips), np.float64(0.0))
    return p


# --- public API -------------------------------------------------------------------------


@dataclass(frozen=True)
class CellKernels:
    """Exact infinite-width kernels of one architecture on one sample, ``(N, N)`` float64."""

    nngp: np.ndarray
    ntk: np.ndarray


@dataclass(frozen=True)
class CellMoments:
    """All node statistics of one architecture (for inspection and tests).

    ``mu[a]`` is ``(N,)``; ``q[a, b]`` and ``p[a, b]`` are ``(N, N)`` for ``a <= b``, with
    ``q[b, a] = q[a, b].T``; ``k0[a] = k0(q_aa)`` for every node but the output.
    """

    mu: tuple[np.ndarray, ...]
    q: Mapping[tuple[int, int], np.ndarray]
    p: Mapping[tuple[int, int], np.ndarray]
    k0: tuple[np.ndarray, ...]


def input_gram(x: np.ndarray) -> np.ndarray:
    """``q_in = X X^T / d`` in float64 for raw inputs ``X`` of shape ``(N, d)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"inputs must be a 2-d array (N, d), got shape {x.shape}")
    return x @ x.T / x.shape[1]


def _ntk(edges: tuple[InEdges, ...], fwd: _Forward, p: Mapping, q_in: np.ndarray) -> np.ndarray:
    """Readout + stem + every linear edge (the NTK sum of docs/THEORY.md section 4; elementwise products)."""
    h = len(edges) - 1
    theta = fwd.q[h, h] + _k0(q_in) * q_in * p[0, 0]  # readout + stem weights
    for t, group in enumerate(edges):
        for s, kind in group:
            if kind == "linear_relu":
                theta = theta + fwd.relu_k0[s] * fwd.q[s, s] * p[t, t]
    return theta


def _kernels(
    edges: tuple[InEdges, ...], stem: _Forward, q_in: np.ndarray, cache: _PrefixCache
) -> tuple[_Forward, dict[tuple[int, int], np.ndarray], np.ndarray]:
    n = q_in.shape[0]
    fwd = _forward(edges, stem, n, cache)
    p = _backward(edges, fwd)
    return fwd, p, _ntk(edges, fwd, p, q_in)


def cell_moments(cell: nx.DiGraph, x: np.ndarray) -> CellMoments:
    """Means, second moments and gradient moments of every node of ``cell`` on ``x``."""
    edges = in_edges(cell)
    q_in = input_gram(x)
    fwd, p, _ = _kernels(edges, _stem(q_in), q_in, _PrefixCache(0))
    n = q_in.shape[0]
    full = {k: np.broadcast_to(v, (n, n)) for k, v in p.items()}
    return CellMoments(fwd.mu, dict(fwd.q), full, fwd.relu_k0)


def cell_kernels(cell: nx.DiGraph, x: np.ndarray) -> CellKernels:
    """Exact NNGP (``q_HH``) and NTK of the paper's network with this cell, on inputs ``x``."""
    return next(space_kernels([cell], x))


def space_kernels(
    cells: Iterable[nx.DiGraph], x: np.ndarray, *, cache_bytes: int = 512 * 2**20
) -> Iterator[CellKernels]:
    """Kernels of many cells on one sample, yielded lazily in input order.

    Forward statistics of inner nodes are shared between cells with the same edges into
    those nodes (an LRU of at most ``cache_bytes``): enumerating a space in the order of
    its edge choices hits the cache for every prefix. Backward moments depend on the
    whole cell and are computed per cell.
    """
    q_in = input_gram(x)
    stem = _stem(q_in)
    cache = _PrefixCache(cache_bytes)
    for cell in cells:
        edges = in_edges(cell)
        fwd, _, ntk = _kernels(edges, stem, q_in, cache)
        yield CellKernels(nngp=fwd.q[len(edges) - 1, len(edges) - 1], ntk=ntk)


def path_sum(counts: Sequence[int], k: np.ndarray) -> np.ndarray:
    """``sum_p f^{d_p}(K)``, with ``counts[d]`` paths of depth ``d`` and ``f`` the ReLU map.

    ``f(K) = k1(K)`` keeps the diagonal, so on a unit-diagonal ``K`` this is the paper's
    normalized ``sum_p f^{d_p}(K0_ij)``.
    """
    k = np.asarray(k, dtype=np.float64)
    total, layer = np.zeros_like(k), k
    for d, count in enumerate(counts):
        if d > 0:
            layer = _k1(layer)
        total = total + count * layer
    return total


def path_sum_nngp(cell: nx.DiGraph, x: np.ndarray) -> np.ndarray:
    """APPROXIMATION (the paper's): ``K^H ~ sum_p f^{d_p}(K^0)`` with ``K^0`` the stem NNGP.

    It drops every cross term between paths (and the non-zero means of ReLU features);
    :func:`cell_kernels` is exact. Only the graph's depths matter, so any edge kind works.
    """
    return path_sum(depth_counts(cell), _k1(input_gram(x)))


# --- summaries ----------------------------------------------------------------------------


def _eigvalsh(k: np.ndarray) -> tuple[np.ndarray, float]:
    """Eigenvalues of a symmetric kernel and the tolerance below which they count as 0."""
    k = np.asarray(k, dtype=np.float64)
    w = np.linalg.eigvalsh((k + k.T) / 2)
    scale = max(abs(w[0]), abs(w[-1]))
    return w, k.shape[0] * np.finfo(np.float64).eps * scale


def lambda_min(k: np.ndarray) -> float:
    """Smallest eigenvalue; values within ``N * eps * |lambda|_max`` of 0 are reported as 0.0.

    Round-off makes a singular kernel's smallest eigenvalue a tiny number of either sign;
    reporting exactly 0 keeps singular architectures tied instead of ordered by noise.
    """
    w, tol = _eigvalsh(k)
    return 0.0 if abs(w[0]) <= tol else float(w[0])


def condition_number(k: np.ndarray) -> float:
    """``lambda_max / lambda_min``; ``inf`` for a singular (or all-zero) kernel."""
    w, tol = _eigvalsh(k)
    return float(w[-1] / w[0]) if w[0] > tol else float("inf")


def inverse_quadratic(k: np.ndarray, y: np.ndarray) -> float:
    """``y^T K^{-1} y``; ``inf`` when ``K`` is singular, 0.0 when ``y = 0``.

    Solved in ``K``'s eigenbasis, which also tells singular from ill-conditioned.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if not np.any(y):
        return 0.0
    k = np.asarray(k, dtype=np.float64)
    w, v = np.linalg.eigh((k + k.T) / 2)
    tol = k.shape[0] * np.finfo(np.float64).eps * max(abs(w[0]), abs(w[-1]))
    if w[0] <= tol:
        return float("inf")
    return float(np.sum((v.T @ y) ** 2 / w))
