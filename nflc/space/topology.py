"""Topology of a cell (docs/THEORY.md section 2): paths, path depths, dead edges.

One implementation, two doors. The dynamic programmes work on *edge tuples*
``(source, target, parameterized)`` sorted by target, then source (a topological order:
a cell's nodes are numbered topologically), zero edges left out: that is what a space
walks per architecture, without building a graph (:func:`edge_depth_counts`,
:func:`on_path_edges`, :func:`topology_of_edges`). A cell given as a ``networkx.DiGraph``
(``docs/CONTRACTS.md``: integer nodes ``0 .. H``, edges ``s < t`` with attributes ``kind``
and ``parameterized``) is read into those tuples (:func:`parameterized_edges`) and goes
through the same functions.

An edge of kind ``"zero"`` (or a missing pair) is no edge at all. An end-to-end path is a
sequence of non-zero edges from ``X0`` to ``XH``; its depth ``d_p`` is the number of
parameterized edges on it. Paths are never enumerated: the number of paths of each depth is
one dynamic programme over the topological order (``counts[t][k]`` = paths ``0 -> t`` with
``k`` parameterized edges), polynomial in ``H`` although ``P`` can grow like ``2**(H-1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, Optional

import networkx as nx
from pydantic import BaseModel, ConfigDict

ZERO = "zero"

Edge = tuple[int, int]
PathEdge = tuple[int, int, int]  # (source, target, parameterized layers on the edge: 0 or 1; node cells up to 3)


# ---------------------------------------------------------------- edge tuples
def on_path_edges(edges: Any, h: int) -> tuple:
    """The edges on some path from node 0 to node ``h`` (the *live* edges), in their order.

    ``edges``: tuples whose first two items are source and target, sorted by target, then
    source, the ``zero`` edges left out. In a DAG an edge lies on an input-output path iff
    the input reaches its source and its target reaches the output: one forward and one
    backward pass.
    """
    reach, coreach = {0}, {h}
    for e in edges:
        if e[0] in reach:
            reach.add(e[1])
    for e in reversed(edges):
        if e[1] in coreach:
            coreach.add(e[0])
    return tuple(e for e in edges if e[0] in reach and e[1] in coreach)


def split_live(edges: Sequence, h: int) -> tuple[list, list]:
    """``edges`` (as for :func:`on_path_edges`) split into (on some end-to-end path, on none):
    live and dead, each in the given order."""
    live = set(on_path_edges(edges, h))
    return [e for e in edges if e in live], [e for e in edges if e not in live]


def edge_depth_counts(edges: Sequence[PathEdge], h: int) -> tuple[int, ...]:
    """``counts[k]`` = end-to-end paths (node 0 to node ``h``) with ``k`` parameterized edges.

    ``edges``: ``(source, target, parameterized)`` sorted by target, then source, the zero
    edges left out. One dynamic programme over the topological order (``counts[t][k]`` =
    paths ``0 -> t`` with ``k`` parameterized edges).
    """
    counts: list[list[int]] = [[] for _ in range(h + 1)]
    counts[0] = [1]
    for s, t, parameterized in edges:
        src, acc = counts[s], counts[t]
        if not src:
            continue
        shift = int(parameterized)
        if len(acc) < len(src) + shift:
            acc.extend([0] * (len(src) + shift - len(acc)))
        for k, n in enumerate(src):
            acc[k + shift] += n
    out = counts[h]
    while out and out[-1] == 0:
        out.pop()
    return tuple(out)


class Topology(BaseModel):
    """Topological summary of one cell.

    ``depth_counts[k]`` is the number of end-to-end paths with exactly ``k``
    parameterized edges (the multiset ``{d_p}`` in compact form; ``depths`` expands it).
    Degenerate cases, chosen so every field stays a finite number:

    * ``P = 0`` (no end-to-end path, the output is identically zero): ``connected`` is
      False, ``mean_depth`` = 0.0 and ``effective_width`` = 0.0.
    * ``P > 0`` but every path is skip-only (``mean_depth`` = 0): ``effective_width`` =
      0.0; the 2022 paper's ratio is 0/0 there, and no path carries a trainable layer.
    """

    model_config = ConfigDict(frozen=True)

    n_nodes: int
    paths: int
    depth_counts: tuple[int, ...]
    mean_depth: float
    sum_depth: int
    skip_paths: int
    effective_width: float
    connected: bool
    parameterized_on_paths: int
    dead_edges: tuple[Edge, ...]

    @property
    def depths(self) -> tuple[int, ...]:
        """The sorted multiset ``{d_p}``, one entry per path (length ``P``)."""
        return tuple(d for d, n in enumerate(self.depth_counts) for _ in range(n))


def topology_of_edges(edges: Sequence[PathEdge], h: int, n_nodes: int) -> Topology:
    """Paths, depths, effective width and dead edges of the cell whose non-zero edges are
    ``edges`` (sorted by target, then source) over nodes ``0 .. h`` (``n_nodes`` of them)."""
    counts = edge_depth_counts(edges, h)
    paths = sum(counts)
    sum_depth = sum(d * n for d, n in enumerate(counts))
    mean_depth = sum_depth / paths if paths else 0.0
    skip_paths = counts[0] if counts else 0
    deep_paths = paths - skip_paths
    live, dead = split_live(edges, h)
    return Topology(
        n_nodes=n_nodes,
        paths=paths,
        depth_counts=counts,
        mean_depth=mean_depth,
        sum_depth=sum_depth,
        skip_paths=skip_paths,
        effective_width=deep_paths / mean_depth if deep_paths else 0.0,
        connected=paths > 0,
        parameterized_on_paths=sum(1 for e in live if e[2]),
        dead_edges=tuple(e[:2] for e in dead),
    )


def node_edge_layers(s: int, t: int, layers: int, node: dict[int, int]) -> int:
    """Parameterized layers a path of a node cell passes from node ``s`` to node ``t`` over a
    non-zero edge carrying ``layers`` of its own: the 1x1 projection (conv, batch norm,
    relu) when ``s`` is X0, and node ``t``'s op (``node[t]``: 1 when parameterized; the
    output, a concatenation, has none). NAS-Bench-101's cell computes exactly this."""
    return layers + (1 if s == 0 else 0) + node.get(t, 0)


# ---------------------------------------------------------------- a cell as a graph
def cell_size(cell: nx.DiGraph) -> int:
    """``H`` of a cell over nodes ``0 .. H``; raises ``ValueError`` if the graph is not one."""
    nodes = sorted(cell.nodes)
    if not nodes or nodes != list(range(len(nodes))):
        raise ValueError(f"a cell's nodes must be the integers 0 .. H, got {nodes}")
    for s, t in cell.edges:
        if not s < t:
            raise ValueError(f"edge ({s}, {t}) goes backwards; a cell's edges must run s < t")
    if len(nodes) < 2:
        raise ValueError("a cell needs at least the input node 0 and an output node H >= 1")
    return len(nodes) - 1


def active_edges(cell: nx.DiGraph) -> Iterator[tuple[int, int, dict]]:
    """The non-zero edges ``(s, t, attrs)`` in topological order (by target, then source)."""
    for s, t in sorted(cell.edges, key=lambda e: (e[1], e[0])):
        attrs = cell.edges[s, t]
        if attrs["kind"] != ZERO:
            yield s, t, attrs


def parameterized_edges(cell: nx.DiGraph) -> list[PathEdge]:
    """The cell's non-zero edges as the tuples the dynamic programmes read: ``(s, t, layers)``,
    the parameterized layers a path passes from s to t (the edge's op; in a node cell also
    the projection of an edge from X0, and node t's op: :func:`node_edge_layers`)."""
    node = {v: int(a["parameterized"]) for v, a in cell.nodes(data=True) if "parameterized" in a}
    if not node:
        return [(s, t, int(attrs["parameterized"])) for s, t, attrs in active_edges(cell)]
    return [(s, t, node_edge_layers(s, t, int(attrs["parameterized"]), node)) for s, t, attrs in active_edges(cell)]


def depth_counts(cell: nx.DiGraph) -> tuple[int, ...]:
    """``counts[k]`` = number of end-to-end paths with ``k`` parameterized edges."""
    h = cell_size(cell)
    return edge_depth_counts(parameterized_edges(cell), h)


def live_edges(cell: nx.DiGraph) -> tuple[list[Edge], list[Edge]]:
    """Non-zero edges split into (on some end-to-end path, on none): live and dead."""
    h = cell_size(cell)
    return split_live([(s, t) for s, t, _ in active_edges(cell)], h)


def edge_incidences(cell: nx.DiGraph, key: Callable[[dict], Optional[Hashable]]) -> tuple[int, dict]:
    """``(P, counts)``: ``counts[k]`` = number of (end-to-end path, edge) pairs whose edge has
    ``key(attrs) == k`` (edges with key None are not counted). Exact integers, by the same
    dynamic programme as :func:`depth_counts`: with ``n[v]`` paths ``0 -> v``, an edge
    ``u -> v`` lies on ``n[u]`` paths ``0 -> v``. ``key = parameterized`` gives ``sum_p d_p``."""
    h = cell_size(cell)
    n = [0] * (h + 1)
    n[0] = 1
    counts: list[dict] = [{} for _ in range(h + 1)]
    for s, t, attrs in active_edges(cell):
        n[t] += n[s]
        for k, c in counts[s].items():
            counts[t][k] = counts[t].get(k, 0) + c
        k = key(attrs)
        if k is not None and n[s]:
            counts[t][k] = counts[t].get(k, 0) + n[s]
    return n[h], counts[h]


def topology(cell: nx.DiGraph) -> Topology:
    """Paths, depths, effective width and dead edges of ``cell`` (docs/THEORY.md section 2)."""
    h = cell_size(cell)
    return topology_of_edges(parameterized_edges(cell), h, cell.number_of_nodes())
