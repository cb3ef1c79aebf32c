"""The one canonical form of a cell's computing graph: what `unique` keeps one of, and what
analysis groups architectures by (:mod:`nflc.analysis.groups`).

Two choices of a cell are the same when their *computing graphs* are isomorphic: zero edges
and dead edges (on no input-to-output path) removed, the inputs (X0, and X1 of a two-input
cell), the output and the edges the graph's frame adds kept in place, edges matched by the
primitive ops they apply (with their bound arguments, not by label). An isomorphism then
permutes the intermediate nodes, so a cell of up to :data:`CANONICAL_MAX_MIDS` of them has an
exact canonical form (:class:`EdgeForms`: the least edge list over all permutations); larger
cells are bucketed by an invariant and compared with networkx's VF2
(:func:`vf2_representative`). A node cell (NAS-Bench-101's) is compared by its pruned graph
with every node's op: walked choice by choice (:func:`node_iso_representatives`), or for
the NAS-Bench-101 family all at once (:mod:`nflc.space.labelled_dags`).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence

import networkx as nx

from nflc import ops
from nflc.ir.model import CellIR
from nflc.space.graph import Frame
from nflc.space.topology import on_path_edges

CANONICAL_MAX_MIDS = 6  # exact canonical forms up to this many intermediate nodes, VF2 beyond

Choice = Callable[[int], tuple[int, ...]]  # a cell choice's index -> the choice of every edge (then node op)


def has_exact_form(cell: CellIR) -> bool:
    """Whether the cell's computing graphs get the exact canonical form of :class:`EdgeForms`."""
    return len(cell.intermediates) <= CANONICAL_MAX_MIDS


def _op_label(prims: tuple[ops.Prim, ...], shape: tuple[int, ...], channels: int | None) -> str:
    """An op as a computing graph compares it: its primitives with their bound arguments."""
    return " >> ".join(str(p) for p in ops.seq_bind(prims, shape, channels))


class EdgeForms:
    """The canonical forms of one edge cell's computing graphs.

    ``live(i)`` is cell choice ``i``'s computing graph as a sorted tuple of labelled edges
    ``(s, t, op)`` in the cell graph's numbering (:func:`nflc.space.graph.cell_graph`);
    ``form(live)`` its canonical form (memoised, at most ``memo_max`` of them, None: all).
    """

    def __init__(self, cell: CellIR, shape: tuple[int, ...], table: list[list[dict]], frame: Frame, choice: Choice,
                 memo_max: int | None = None):
        self.cell, self.choice = cell, choice
        self.labels = [[None if a["kind"] == "zero" else _op_label(ch.prim_tuple(), src, cell.channels)
                        for a, ch in zip(row, e.choices, strict=False)]
                       for row, e, src in zip(table, cell.edges, cell.edge_shapes(shape), strict=False)]
        self.off, self.h = frame.offset, frame.output
        self.fixed = [(s, t, a["op"]) for s, t, a in frame.edges]
        mids = [t + self.off for t in cell.intermediates]  # X0 (and X1), the output and the frame stay in place
        self.maps = _permutation_maps(mids, self.h) if has_exact_form(cell) else None
        self.memo: OrderedDict[tuple, tuple] = OrderedDict()
        self.memo_max = memo_max

    def live(self, i: int) -> tuple:
        off, labels = self.off, self.labels
        edges = [(e.src + off, e.dst + off, labels[k][d]) for k, (e, d) in enumerate(zip(self.cell.edges, self.choice(i), strict=False))
                 if labels[k][d] is not None]
        return on_path_edges(sorted(edges + self.fixed, key=lambda e: (e[1], e[0])), self.h)

    def form(self, live: tuple) -> tuple:
        """The least edge list over the renumberings of the intermediate nodes."""
        assert self.maps is not None, "cells with more intermediate nodes than CANONICAL_MAX_MIDS: use VF2"
        form = self.memo.get(live)
        if form is None:
            form = self.memo[live] = min(tuple(sorted((m[s], m[t], op) for s, t, op in live)) for m in self.maps)
            if self.memo_max is not None and len(self.memo) > self.memo_max:
                self.memo.popitem(last=False)
        return form

    def key(self, i: int) -> tuple:
        """A key equal for two choices exactly when their computing graphs are isomorphic."""
        return ("canonical", self.form(self.live(i)))


def _permutation_maps(mids: list[int], h: int) -> list[list[int]]:
    """Every renumbering of the nodes ``mids`` among themselves, as a node -> node list over ``0 .. h``."""
    maps = []
    for perm in itertools.permutations(mids):
        m = list(range(h + 1))
        for a, b in zip(mids, perm, strict=True):
            m[a] = b
        maps.append(m)
    return maps


def iso_representatives(forms: EdgeForms, count: int, passing: Sequence[bool]) -> tuple[int, ...]:
    """For each of the ``count`` choices of an edge cell, the first choice (in order) of its
    isomorphism class that ``passing`` keeps (itself when none before it is kept).

    The representative is never a choice the filters reject: `require dead_edges == 0`
    tells apart cells whose computing graphs are the same, and a class whose first member
    has a dead edge is still in the space through its first member without one."""
    reps: list[int] = []
    first: dict[tuple, int] = {}
    buckets: dict[tuple, list[tuple[int, nx.DiGraph]]] = {}
    for i in range(count):
        live = forms.live(i)
        if forms.maps is None:
            reps.append(vf2_representative(i, live, forms.h, buckets, passing[i]))
            continue
        key = forms.form(live)
        reps.append(first.setdefault(key, i) if passing[i] else first.get(key, i))
    return tuple(reps)


def node_op_labels(cell: CellIR, shape: tuple[int, ...]) -> list[list[str]]:
    """Per intermediate node of a node cell, what each of its op choices computes (bound
    primitives at the node's shape): the one definition of "same op" for `unique`, in the
    walk and in the all-at-once enumeration alike (`c3b` defined as `c3` is `c3`)."""
    inner = tuple(cell.node_shapes(shape)[-1])
    return [[_op_label(ch.prim_tuple(), inner, inner[0]) for ch in nd.choices] for nd in cell.node_ops]


def node_iso_representatives(cell: CellIR, shape: tuple[int, ...], count: int, choice: Choice,
                             passing: Sequence[bool]) -> tuple[int, ...]:
    """:func:`iso_representatives` of a node cell, walked (small node cells only): pruned
    computing graphs compared with their nodes' ops (bound primitives), X0 and XH fixed."""
    h = cell.nodes - 1
    oplabels = node_op_labels(cell, shape)
    maps = [(0, *perm, h) for perm in itertools.permutations(range(1, h))]
    first: dict[tuple, int] = {}
    reps = []
    ne = len(cell.edges)
    for i in range(count):
        digits = choice(i)
        edges = [(e.src, e.dst) for e, d in zip(cell.edges, digits, strict=False) if e.choices[d].prim_tuple()[0].name != "zero"]
        live = on_path_edges(edges, h)
        alive = {v for e in live for v in e}
        lab = {v: oplabels[v - 1][digits[ne + v - 1]] for v in range(1, h) if v in alive}
        key = min((tuple(sorted((m[s], m[t]) for s, t in live)), tuple(sorted((m[v], o) for v, o in lab.items())))
                  for m in maps) if live else ()
        reps.append(first.setdefault(key, i) if passing[i] else first.get(key, i))
    return tuple(reps)


def vf2_representative(i: int, live: tuple, h: int, buckets: dict, register: bool = True) -> int:
    """The first choice in ``buckets`` whose computing graph is isomorphic to ``live`` (choice
    ``i``'s), by networkx's VF2 within a bucket of equal invariants; ``i`` itself when none
    is (then, when ``register``, ``i`` joins its bucket: only a kept choice represents)."""
    g = nx.DiGraph()
    g.add_nodes_from((k, {"role": "in" if k == 0 else "out" if k == h else "mid"}) for k in range(h + 1))
    g.add_edges_from((s, t, {"ops": op}) for s, t, op in live)
    role = lambda k: 0 if k == 0 else 2 if k == h else 1  # noqa: E731
    key = (tuple(sorted((role(s), role(t), op) for s, t, op in live)),
           tuple(sorted((g.in_degree(k), g.out_degree(k)) for k in g)))
    em = nx.algorithms.isomorphism.categorical_edge_match("ops", None)
    nm = nx.algorithms.isomorphism.categorical_node_match("role", None)
    for j, other in buckets.get(key, []):
        if nx.is_isomorphic(g, other, node_match=nm, edge_match=em):
            return j
    if register:  # only a choice the filters keep can represent its class
        buckets.setdefault(key, []).append((i, g))
    return i
