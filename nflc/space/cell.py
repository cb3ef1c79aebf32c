"""One cell of a space: its choices, what each choice is, and the filters that judge it.

A cell's choices are numbered like a space's architectures (:mod:`nflc.space.radix`: one
digit per edge, then per node op; a `pick` cell one digit per intermediate node). For a
choice, :class:`CellSpace` gives its graph, the edge tuples the topology is computed from
(no graph built: filtering walks NAS-Bench-201's 15,625 cells in a fraction of a second),
its topology and `require` metrics; over all choices, which ones the per-cell filters keep
(``require`` on a cell metric, ``unique``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import networkx as nx

from nflc.errors import SpaceError
from nflc.ir.model import CellIR, RequireIR
from nflc.metrics import CellPaths, cell_metrics
from nflc.space import canonical
from nflc.space import graph as graphs
from nflc.space.filters import Rejection, cell_rejection
from nflc.space.radix import decode, encode, radix_product
from nflc.space.topology import PathEdge, Topology, edge_depth_counts, node_edge_layers, on_path_edges, topology_of_edges

ENUMERATION_LIMIT = 5_000_000  # the most choices (or architectures) nflc walks to apply a filter
NODE_DAG_MAX_PAIRS = 24  # node cells under `unique` with at most this many edges: all edge sets at once
MEMO_MAX = 2**16  # canonical forms remembered per cell for architectures judged one at a time
# Node-cell metrics that only the present edges decide (not the nodes' ops): a filter on them
# is judged once per edge set. Without `dead_edges`, they are also one value per `unique`
# class (the pruned graph and its ops decide them), so the class enumeration applies.
EDGE_SET_METRICS = frozenset({"edges", "in_degree", "paths", "dead_edges"})
CLASS_METRICS = frozenset({"edges", "in_degree", "paths", "depth", "min_depth", "mean_depth", "skip_paths"})


class CellSpace:
    """One cell of a space at its input ``shape``, with the space's per-cell filters
    (``requires``: the `require` statements on cell metrics; ``unique``)."""

    def __init__(self, cell: CellIR, shape: tuple[int, ...], requires: Sequence[RequireIR] = (), unique: bool = False):
        self.ir = cell
        self.name = cell.name
        self.shape = tuple(shape)
        self.requires = list(requires)
        self.unique = unique
        self.radices = cell.radices()
        self.count = radix_product(self.radices)

    def __repr__(self) -> str:
        return f"<CellSpace {self.name}: {self.count} choices>"

    # ---------------------------------------------------------------- choices
    def choice(self, i: int) -> tuple[int, ...]:
        """The choice of every edge (then node op) of cell choice ``i``."""
        return self.ir.expand(decode(i, self.radices))

    def index(self, choice: tuple[int, ...]) -> int:
        """Inverse of :meth:`choice`."""
        return encode(self.ir.compress(choice), self.radices)

    # ---------------------------------------------------------------- what a choice is
    @functools.cached_property
    def edge_table(self) -> list[list[dict]]:
        """:func:`nflc.space.graph.edge_table` of the cell at its shape."""
        return graphs.edge_table(self.ir, self.shape)

    @functools.cached_property
    def frame(self) -> graphs.Frame:
        """Where the cell's nodes sit in its graph and the edges the graph adds around them."""
        return graphs.cell_frame(self.ir, self.shape)

    @functools.cached_property
    def _path_table(self) -> list[list[bool | None]]:
        """``table[k][c]``: None when choice c of edge k is zero, else whether it is parameterized."""
        return [[None if a["kind"] == "zero" else a["parameterized"] for a in row] for row in self.edge_table]

    def graph(self, i: int) -> nx.DiGraph:
        """The cell DAG of choice ``i`` (docs/CONTRACTS.md), built anew on every call."""
        return graphs.cell_graph(self.ir, self.choice(i), self.shape, self.edge_table)

    @functools.cached_property
    def _node_layers(self) -> list[tuple[int, tuple[int, ...]]]:
        """A node cell's ``(node, [1 or 0 per op choice])``: whether each choice of the node's
        op is a parameterized layer (NAS-Bench-101's convolutions are, its max pool is not)."""
        return [(nd.node, tuple(int(graphs.node_op_parameterized(c)) for c in nd.choices)) for nd in self.ir.node_ops]

    def path_edges(self, i: int) -> list[PathEdge]:
        """The non-zero edges ``(s, t, layers)`` of choice ``i``'s graph, the frame's included,
        sorted by target, then source: what its topology is computed from. ``layers`` is the
        number of parameterized layers a path passes going from s to t: the edge's op (0 or 1);
        in a node cell also node t's op, and the 1x1 projection of an edge from X0
        (:func:`nflc.space.topology.node_edge_layers`)."""
        off = self.frame.offset
        choice = self.choice(i)
        own = [(e.src + off, e.dst + off, int(par)) for e, row, d in zip(self.ir.edges, self._path_table, choice, strict=False)
               if (par := row[d]) is not None]
        if self.ir.is_node_cell:
            ne = len(self.ir.edges)
            node = {v: flags[choice[ne + k]] for k, (v, flags) in enumerate(self._node_layers)}
            own = [(s, t, node_edge_layers(s, t, layers, node)) for s, t, layers in own]
        return sorted(own + [(s, t, int(a["parameterized"])) for s, t, a in self.frame.edges], key=lambda e: (e[1], e[0]))

    def topology(self, i: int) -> Topology:
        """The topology of choice ``i``: ``topology(self.graph(i))``, without the graph."""
        return topology_of_edges(self.path_edges(i), self.frame.output, self.frame.output + 1)

    @functools.cached_property
    def _framed(self) -> frozenset[tuple[int, int]]:
        return frozenset((s, t) for s, t, _ in self.frame.edges)

    def metrics(self, i: int) -> dict[str, int | float]:
        """The `require` metrics of choice ``i`` (:mod:`nflc.metrics`)."""
        edges = self.path_edges(i)
        h, framed = self.frame.output, self._framed
        live = on_path_edges(edges, h)
        own = tuple(e[:2] for e in live if e[:2] not in framed)
        return cell_metrics(CellPaths(edge_depth_counts(edges, h), own, len(edges) - len(live)))

    def rejection(self, i: int) -> Rejection | None:
        """Why the cell `require` filters drop choice ``i`` (a node cell also needs a path
        to its output), or None."""
        if not self.requires and not self.ir.is_node_cell:
            return None
        values = self.metrics(i)
        if self.ir.is_node_cell and not values["paths"]:
            return Rejection("no_path", cell=self.name)
        return cell_rejection(self.name, self.requires, values)

    def effect_key(self) -> tuple:
        """Everything the per-cell filters' verdicts depend on: two cells (one cell lowered at
        two values of a numeric choice) with equal keys keep the same choices, so each
        distinct key is walked once (issue #28: 2000 values once walked the cell 2000 times).
        The topology metrics read only which choices are zero or parameterized; `unique`
        also which ops compute alike (their labels up to renaming, not the labels)."""
        frame = tuple((s, t, bool(a["parameterized"]), a["op"]) for s, t, a in self.frame.edges)
        key: tuple = (self.name, tuple(self.radices), self.frame.offset, self.frame.output, frame,
                      tuple(tuple(row) for row in self._path_table), tuple(self._node_layers) if self.ir.is_node_cell else (),
                      tuple((r.metric, r.cmp, r.value) for r in self.requires), self.unique)
        if self.unique:
            labels = (canonical.node_op_labels(self.ir, self.shape) if self.ir.is_node_cell else self.forms(0).labels)
            ids: dict[str | None, int] = {None: -1}
            key += (tuple(tuple(ids.setdefault(lab, len(ids)) for lab in row) for row in labels),)
        return key

    # ---------------------------------------------------------------- the per-cell filters
    def check_walkable(self) -> None:
        """Refuse to walk a cell with more than :data:`ENUMERATION_LIMIT` choices."""
        if self.count > ENUMERATION_LIMIT:
            raise SpaceError(f"cell '{self.name}' has {self.count:.3e} choices; per-cell filters need to walk them",
                             hint="split the cell or drop 'unique'/'require'")

    @functools.cached_property
    def passing(self) -> tuple[bool, ...]:
        """For each choice, whether it passes the cell `require` filters."""
        self.check_walkable()
        if not self.requires and not self.ir.is_node_cell:
            return (True,) * self.count
        return tuple(self.rejection(i) is None for i in range(self.count))

    @functools.cached_property
    def valid(self) -> tuple[int, ...]:
        """The choices passing `require` and `unique`, in order."""
        fast = self.node_enumeration
        if fast is None:
            fast = self._edge_set_walk
        if fast is not None:
            return fast
        self.check_walkable()
        passing = self.passing
        if self.unique:
            reps = self.representatives
            return tuple(i for i, ok in enumerate(passing) if ok and reps[i] == i)
        return tuple(i for i, ok in enumerate(passing) if ok)

    @functools.cached_property
    def representatives(self) -> tuple[int, ...]:
        """For each choice, the first choice (in order) of its isomorphism class that passes
        the cell `require` filters (itself when none before it does): :mod:`nflc.space.canonical`."""
        passing = self.passing
        if self.ir.is_node_cell:
            return canonical.node_iso_representatives(self.ir, self.shape, self.count, self.choice, passing)
        return canonical.iso_representatives(self.forms(), self.count, passing)

    def representative(self, i: int) -> int:
        """The representative of choice ``i``'s isomorphism class (:attr:`representatives`)."""
        if self.node_enumeration is None:
            return self.representatives[i]
        from nflc.space.labelled_dags import labelled_dag_key  # numpy: loaded only for node cells under `unique`

        n_ops, n_distinct, digit_map = self._op_classes
        reduced = _rebase_ops(i, n_ops, n_distinct, digit_map, self.ir.nodes - 2)
        return self._node_keys.get(labelled_dag_key(self.ir.nodes, n_distinct, reduced), i)

    @functools.cached_property
    def _op_classes(self) -> tuple[int, int, list[int]]:
        """A node cell's op choices, how many compute differently, and each one's class."""
        labels = canonical.node_op_labels(self.ir, self.shape)[0]
        distinct = list(dict.fromkeys(labels))
        return len(labels), len(distinct), [distinct.index(lab) for lab in labels]

    def forms(self, memo_max: int | None = None) -> canonical.EdgeForms:
        """The canonical forms of this (edge) cell's computing graphs."""
        return canonical.EdgeForms(self.ir, self.shape, self.edge_table, self.frame, self.choice, memo_max)

    @functools.cached_property
    def shared_forms(self) -> canonical.EdgeForms:
        """:meth:`forms` kept with the cell, remembering :data:`MEMO_MAX` forms: for judging
        architectures one at a time without walking every choice."""
        return self.forms(MEMO_MAX)

    @functools.cached_property
    def _node_enumeration(self) -> tuple[tuple[int, ...], dict] | None:
        c = self.ir
        if not (c.is_node_cell and self.unique):
            return None
        pairs = graphs.dag_pairs(c.nodes)
        if [(e.src, e.dst) for e in c.edges] != pairs or \
                any([ch.prim_tuple()[0].name for ch in e.choices] != ["zero", "skip"] for e in c.edges):
            return None
        labels = canonical.node_op_labels(c, self.shape)
        if any(lab != labels[0] for lab in labels):
            return None
        max_edges = None
        for r in self.requires:
            if r.metric not in CLASS_METRICS:
                return None
            if r.metric == "edges" and r.cmp in ("<=", "<"):  # enumerated within the bound (fewer edge sets)
                bound = math.floor(r.value) if r.cmp == "<=" else math.ceil(r.value) - 1
                max_edges = bound if max_edges is None else min(max_edges, bound)
        if len(pairs) > NODE_DAG_MAX_PAIRS:
            return None
        from nflc.space.labelled_dags import unique_labelled_dags  # numpy: loaded only for node cells under `unique`

        # ops that compute alike are one op (issue #28): enumerate over the distinct ops, then
        # write each representative with the first choice of its op (the class's first member)
        distinct = list(dict.fromkeys(labels[0]))
        first_choice = [labels[0].index(lab) for lab in distinct]
        reps, keys = unique_labelled_dags(c.nodes, len(distinct), max_edges, with_keys=True)
        mids, n_ops = c.nodes - 2, len(labels[0])
        full = [_rebase_ops(r, len(distinct), n_ops, first_choice, mids) for r in reps.tolist()]
        # every metric of CLASS_METRICS is one value per class (the pruned graph and its
        # nodes' ops decide it): a class passes the other filters when its first member does
        kept = tuple(r for r in full if self.rejection(r) is None) if self.requires else tuple(full)
        return kept, dict(zip(keys, full, strict=True))

    @functools.cached_property
    def _edge_set_walk(self) -> tuple[int, ...] | None:
        """The valid choices of a node cell without `unique` whose filters read only which
        edges are present (:data:`EDGE_SET_METRICS`): one walk over the edge sets, each
        passing set taken with every op choice (6 nodes: 2**15 sets, not 2.6M choices)."""
        c = self.ir
        if not c.is_node_cell or self.unique or any(r.metric not in EDGE_SET_METRICS for r in self.requires):
            return None
        ne = len(c.edges)
        n_ops = radix_product(self.radices[ne:])
        n_sets = radix_product(self.radices[:ne])
        if n_sets > ENUMERATION_LIMIT:
            return None
        # a node cell's index is its edge digits, then its op digits (the ops fastest)
        return tuple(i for e in range(n_sets) if self.rejection(e * n_ops) is None
                     for i in range(e * n_ops, (e + 1) * n_ops))

    @property
    def node_enumeration(self) -> tuple[int, ...] | None:
        """`unique` on a NAS-Bench-101-style node cell, without walking its choices: the
        valid choices, when every forward pair is `zero | skip`, every intermediate node has
        the same op choices (compared by what they compute), and the cell filters read only
        metrics of :data:`CLASS_METRICS` (`require edges <= N` narrows the enumeration; the
        others judge each class's first member). None when it does not apply."""
        found = self._node_enumeration
        return None if found is None else found[0]

    @property
    def _node_keys(self) -> dict:
        """canonical form -> representative, for the node cells of :attr:`node_enumeration`."""
        found = self._node_enumeration
        assert found is not None
        return found[1]


def _rebase_ops(raw: int, base: int, new_base: int, digit_map: Sequence[int], mids: int) -> int:
    """A node cell's raw index (edge code, then one base-``base`` op digit per intermediate
    node) with every op digit d replaced by ``digit_map[d]`` in base ``new_base``."""
    if base == new_base and list(digit_map) == list(range(base)):
        return raw
    edge, ops = divmod(raw, base**mids)
    out = 0
    for k in reversed(range(mids)):  # node 1 is the most significant digit
        out = out * new_base + digit_map[(ops // base**k) % base]
    return edge * new_base**mids + out

