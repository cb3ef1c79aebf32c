"""Spaces of architectures: exact counting, enumeration, sampling, ids, filters.

An architecture is one choice per edge of every cell instance. Its raw *index* is its
position in the full product of choices (instances in network order, edges in (dst, src)
order, the last edge varying fastest), so ``space.architecture(i)`` is O(1) and counting an
unfiltered space never enumerates it. Filters (budgets, ``require``, ``unique``) keep the
raw order; filters that look at one cell at a time (``require`` on topology, ``unique``)
factor over instances, so filtered spaces of any size still count exactly.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import os
import random
import re
from dataclasses import dataclass
from typing import Iterator

import networkx as nx

from nflc import graph as graphs
from nflc import ops
from nflc.cost import Cost, CostModel
from nflc.errors import Diagnostic, NflcError, Span, SpaceError, did_you_mean
from nflc.ir.lower import SpaceSource, relower
from nflc.ir.model import CellIR, SpaceIR
from nflc.ir.options import apply_options

ENUMERATION_LIMIT = 5_000_000  # largest space nflc will walk to count under whole-network filters
CANONICAL_MAX_MIDS = 6  # `unique`: exact canonical forms up to this many intermediate nodes, VF2 beyond
_CMP = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
        ">": lambda a, b: a > b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


_ASCII_INT = re.compile(r"[0-9]+")  # str.isdigit() also takes '²' and '٣', which int() rejects or reads


def _radix_product(radices: list[int]) -> int:
    return math.prod(radices) if radices else 1


def _decode(index: int, radices: list[int]) -> tuple[int, ...]:
    out = []
    for r in reversed(radices):
        index, d = divmod(index, r)
        out.append(d)
    return tuple(reversed(out))


def _encode(digits: tuple[int, ...], radices: list[int]) -> int:
    index = 0
    for d, r in zip(digits, radices, strict=False):
        index = index * r + d
    return index


def _instance_cache(maxsize: int | None = None):
    """``functools.lru_cache`` for a method, one cache per instance: a class-level
    ``lru_cache`` would keep every Space it ever saw alive (ruff B019). The cache lives in
    the instance's ``__dict__`` (dropped when pickling, see ``Space.__getstate__``)."""

    def decorate(fn):
        slot = f"_cache_{fn.__name__}"

        @functools.wraps(fn)
        def cached(self, *args):
            cache = self.__dict__.get(slot)
            if cache is None:
                cache = self.__dict__[slot] = functools.lru_cache(maxsize=maxsize)(functools.partial(fn, self))
            return cache(*args)

        return cached

    return decorate


@dataclass(frozen=True)
class Rejection:
    index: int
    reason: str


class Space:
    """A lowered space: the set of architectures a .nfl `space` block describes."""

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cache_")}

    def __init__(self, ir: SpaceIR, source: SpaceSource | None = None, warnings: list | None = None,
                 options: dict | None = None):
        self.base_ir = ir
        self.options = {k: v for k, v in (options or {}).items() if v is not None}
        ir = apply_options(ir, **self.options) if self.options else ir
        self.ir = ir
        self.name = ir.name
        self.source = source
        self.warnings = list(warnings or [])
        self.instances = list(ir.instances)
        self.cell_of = {k: ir.cells[ir.instance_cell[k]] for k in self.instances}
        self.cell_shape: dict[str | None, tuple[int, ...]] = {}
        for st in ir.network:
            if st.kind == "cell":
                self.cell_shape.setdefault(st.instance, tuple(st.shape_in))
        self.edge_radices = {k: self.cell_of[k].radices() for k in self.instances}  # edges, then node ops
        # numeric choices come first in an index (declaration order), then the cells' edges
        self.numeric: dict[str, list[int]] = {k: list(v) for k, v in ir.numeric.items()}
        self.numeric_radices = [len(v) for v in self.numeric.values()]
        self.radices = self.numeric_radices + [r for k in self.instances for r in self.edge_radices[k]]
        self._cost_models: dict[tuple, CostModel] = {(): CostModel(ir)}
        self._node_keys: dict[str, dict] = {}  # node cells under `unique`: canonical form -> representative
        scaled = [b for b in ir.budgets if b.scale]
        if len(scaled) > 1:
            raise SpaceError("only one budget may scale a constant", hint="keep one 'scale' budget")
        self.scale_budget = scaled[0] if scaled else None
        self.cell_filters = bool(ir.unique or any(r.metric not in ("params", "flops") for r in ir.requires)
                                 or any(c.is_node_cell for c in self.cell_of.values()))
        self.net_filters = bool(ir.budgets or any(r.metric in ("params", "flops") for r in ir.requires))

    # ---------------------------------------------------------------- counting
    def raw_count(self) -> int:
        """Architectures before any filter (budgets, require, unique)."""
        return _radix_product(self.radices)

    def count(self) -> int:
        """Exact number of architectures that pass every filter."""
        if not self.net_filters:
            if not self.cell_filters:
                return self.raw_count()
            return _radix_product(self.numeric_radices) * math.prod(
                len(self._valid_cells(self.cell_of[k].name)) for k in self.instances)
        if self.raw_count() > ENUMERATION_LIMIT:
            raise SpaceError(
                f"space '{self.name}' has {self.raw_count():.3e} architectures before its budgets; counting them under "
                "a whole-network budget needs enumeration, which nflc refuses above "
                f"{ENUMERATION_LIMIT:,}", hint="estimate with 'nflc list --sample K' or drop the budget")
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator["Architecture"]:
        for index in self._candidate_indices():
            arch = Architecture(self, index)
            if arch.rejection is None:
                yield arch

    def _candidate_indices(self) -> Iterator[int]:
        """Raw indices in order whose every cell passes the per-cell filters."""
        if not self.cell_filters:
            yield from range(self.raw_count())
            return
        per_inst = [range(r) for r in self.numeric_radices] + \
            [self._valid_cells(self.cell_of[k].name) for k in self.instances]
        inst_radix = self.numeric_radices + [_radix_product(self.edge_radices[k]) for k in self.instances]
        for combo in itertools.product(*per_inst):
            yield _encode(combo, inst_radix)

    def filters_reject_all(self, walk_limit: int = 20_000) -> Diagnostic | None:
        """A warning when the space's filters drop every architecture, or None: when some
        architecture passes, or when finding one would walk more than ``walk_limit``."""
        if not (self.cell_filters or self.net_filters):
            return None
        if self.cell_filters:
            per_inst = [len(self._valid_cells(self.cell_of[k].name)) for k in self.instances]
            candidates = math.prod(per_inst) * _radix_product(self.numeric_radices)
        else:
            candidates = self.raw_count()
        if candidates:
            if not self.net_filters or candidates > walk_limit or next(iter(self), None) is not None:
                return None
        reason = next(self.rejections(limit=1)).reason
        kind, metric = (reason.split()[:2] + ["", ""])[:2]
        stmts = self.ir.budgets if kind == "budget" else self.ir.requires if kind == "require" else []
        span = next((b.span for b in stmts if b.metric == metric), None)
        return Diagnostic("warning", f"the filters of space '{self.name}' reject all {self.raw_count():,} architectures "
                          f"(the first: {reason})",
                          Span(span.file, span.line, span.column, span.end_line, span.end_column) if span else None,
                          f"loosen the filters; 'nflc list {self.ir.file} --rejected' shows why each architecture is dropped")

    def rejections(self, limit: int | None = None) -> Iterator[Rejection]:
        """Architectures the filters drop, with the reason (in raw order)."""
        if limit is not None and limit <= 0:
            return
        n = 0
        for index in range(self.raw_count()):
            reason = Architecture(self, index).rejection
            if reason is not None:
                yield Rejection(index, reason)
                n += 1
                if limit is not None and n >= limit:
                    return

    # ---------------------------------------------------------------- per-cell filters
    def cell_count(self, cell: str) -> int:
        return _radix_product(self.ir.cells[cell].radices())

    @_instance_cache()
    def _valid_cells(self, cell: str) -> tuple[int, ...]:
        """Cell choice indices (within one instance) passing `require` and `unique`."""
        fast = self._node_cell_enumeration(cell)
        if fast is not None:
            return fast
        self._check_walkable(cell)
        passing = self._passing(cell)
        if self.ir.unique:
            reps = self._iso_representative(cell)
            return tuple(i for i, ok in enumerate(passing) if ok and reps[i] == i)
        return tuple(i for i, ok in enumerate(passing) if ok)

    @_instance_cache()
    def _node_cell_enumeration(self, cell: str) -> tuple[int, ...] | None:
        """`unique` on a NAS-Bench-101-style node cell, without walking its choices: every
        forward pair `zero | skip`, every intermediate node the same op choices, and cell
        filters only `unique` and `require edges <= N` (or `<`). None when it does not apply."""
        c = self.ir.cells[cell]
        if not (c.is_node_cell and self.ir.unique):
            return None
        pairs = graphs.dag_pairs(c.nodes)
        if [(e.src, e.dst) for e in c.edges] != pairs or \
                any([ch.prim_tuple()[0].name for ch in e.choices] != ["zero", "skip"] for e in c.edges):
            return None
        first = c.node_ops[0].choices
        if any([ch.label for ch in nd.choices] != [ch.label for ch in first] for nd in c.node_ops):
            return None
        max_edges = None
        for r in self._cell_requires:
            if r.metric != "edges" or r.cmp not in ("<=", "<"):
                return None
            bound = math.floor(r.value) if r.cmp == "<=" else math.ceil(r.value) - 1
            max_edges = bound if max_edges is None else min(max_edges, bound)
        if len(pairs) > 24:
            return None
        reps, keys = graphs.unique_labelled_dags(c.nodes, len(first), max_edges, with_keys=True)
        self._node_keys[cell] = dict(zip(keys, reps.tolist(), strict=True))
        return tuple(reps.tolist())

    @_instance_cache()
    def _node_cell_keys(self, cell: str) -> dict[tuple[int, int], int]:
        """canonical form -> representative, for the node cells of `_node_cell_enumeration`."""
        self._node_cell_enumeration(cell)
        return self._node_keys[cell]

    def _representative(self, cell: str, i: int) -> int:
        """The representative of cell choice ``i``'s isomorphism class (`unique`)."""
        if self._node_cell_enumeration(cell) is None:
            return self._iso_representative(cell)[i]
        c = self.ir.cells[cell]
        key = graphs.labelled_dag_key(c.nodes, len(c.node_ops[0].choices), i)
        return self._node_cell_keys(cell).get(key, i)

    def _check_walkable(self, cell: str) -> None:
        n = self.cell_count(cell)
        if n > ENUMERATION_LIMIT:
            raise SpaceError(f"cell '{cell}' has {n:.3e} choices; per-cell filters need to walk them",
                             hint="split the cell or drop 'unique'/'require'")

    @_instance_cache()
    def _passing(self, cell: str) -> tuple[bool, ...]:
        """For each cell choice, whether it passes the cell `require` filters."""
        self._check_walkable(cell)
        if not self._cell_requires and not self.ir.cells[cell].is_node_cell:
            return (True,) * self.cell_count(cell)
        return tuple(self._cell_reason(cell, i) is None for i in range(self.cell_count(cell)))

    def _cell_choice(self, cell: str, i: int) -> tuple[int, ...]:
        """The choice of every edge (then node op) of cell choice ``i``."""
        c = self.ir.cells[cell]
        return c.expand(_decode(i, c.radices()))

    def _shape_of_cell(self, cell: str) -> tuple[int, ...]:
        for k in self.instances:
            if self.cell_of[k].name == cell:
                return self.cell_shape[k]
        raise KeyError(cell)

    @_instance_cache()
    def _edge_table(self, cell: str) -> list[list[dict]]:
        return graphs.edge_table(self.ir.cells[cell], self._shape_of_cell(cell))

    @_instance_cache(maxsize=65536)
    def cell_graph(self, cell: str, i: int) -> nx.DiGraph:
        return graphs.cell_graph(self.ir.cells[cell], self._cell_choice(cell, i), self._shape_of_cell(cell),
                                 self._edge_table(cell))

    @_instance_cache(maxsize=65536)
    def cell_topology(self, cell: str, i: int):
        from nflc.analysis.topology import topology

        return topology(self.cell_graph(cell, i))

    @functools.cached_property
    def _cell_requires(self) -> list:
        return [r for r in self.ir.requires if r.metric not in ("params", "flops")]

    @_instance_cache()
    def _path_table(self, cell: str) -> list[list[bool | None]]:
        """``table[k][c]``: None when choice c of edge k is zero, else whether it is parameterized."""
        return [[None if a["kind"] == "zero" else a["parameterized"] for a in row] for row in self._edge_table(cell)]

    def cell_metrics(self, cell: str, i: int) -> dict[str, int | float]:
        """The `require` metrics of one cell choice (docs/LANGUAGE.md), from edge tuples: no
        graph is built, so filtering walks NAS-Bench-201's 15625 cells in a fraction of a second."""
        c = self.ir.cells[cell]
        table = self._path_table(cell)
        off, h, frame = self._frame(cell)
        own = [(e.src + off, e.dst + off, par) for e, row, d in zip(c.edges, table, self._cell_choice(cell, i), strict=False)
               if (par := row[d]) is not None]
        edges = sorted(own + [(s_, t_, a["parameterized"]) for s_, t_, a in frame], key=lambda e: (e[1], e[0]))
        counts = graphs.depth_counts(edges, h)
        paths = sum(counts)
        nonzero = [k for k, n in enumerate(counts) if n]
        live = graphs.on_path_edges(edges, h)
        framed = {(s_, t_) for s_, t_, _ in frame}
        return {"paths": paths, "depth": nonzero[-1] if nonzero else 0, "min_depth": nonzero[0] if nonzero else 0,
                "mean_depth": sum(k * n for k, n in enumerate(counts)) / paths if paths else 0.0,
                "skip_paths": counts[0] if counts else 0,
                "dead_edges": len(edges) - len(live), "edges": sum(1 for e in live if e[:2] not in framed),
                "in_degree": max(collections.Counter(e[1] for e in live if e[:2] not in framed).values(), default=0)}

    @_instance_cache()
    def _frame(self, cell: str) -> tuple[int, int, list]:
        """(offset of X0, index of the output, frame edges) of the cell's graph (graph.cell_graph)."""
        c = self.ir.cells[cell]
        off = graphs.graph_offset(c)
        return off, c.nodes - 1 + off + (c.output == "concat"), graphs.frame_edges(c, self._shape_of_cell(cell))

    def _cell_reason(self, cell: str, i: int) -> str | None:
        reqs = self._cell_requires
        node_cell = self.ir.cells[cell].is_node_cell
        if not reqs and not node_cell:
            return None
        values = self.cell_metrics(cell, i)
        if node_cell and not values["paths"]:
            return f"node cell '{cell}' has no input-output path (its output would be undefined)"
        for r in reqs:
            v = values[r.metric]
            if not _CMP[r.cmp](v, r.value):
                return f"require {r.metric} {r.cmp} {r.value:g}: cell '{cell}' has {r.metric} = {v:g}"
        return None

    @_instance_cache()
    def _iso_representative(self, cell: str) -> tuple[int, ...]:
        """For each cell choice, the first choice (in order) of its isomorphism class that
        passes the cell `require` filters (itself when none before it does).

        The representative is never a choice the filters reject: `require dead_edges == 0`
        tells apart cells whose computing graphs are the same, and a class whose first
        member has a dead edge is still in the space through its first member without one.

        Two cells are the same when their computing graphs are isomorphic: zero edges and
        dead edges (on no input-to-output path) removed, X0 and XH kept in place, edges
        matched by the primitive ops they apply (with their bound arguments, not by label).
        With X0 and XH fixed an isomorphism permutes the intermediate nodes, so cells of up
        to CANONICAL_MAX_MIDS intermediate nodes get an exact canonical form (the least edge
        list over all permutations); larger cells are bucketed by an invariant and compared
        with networkx's VF2.
        """
        c = self.ir.cells[cell]
        if c.is_node_cell:
            return self._node_iso_representative(cell)
        shape = self._shape_of_cell(cell)
        table = self._edge_table(cell)
        labels = [[None if a["kind"] == "zero" else
                   " >> ".join(str(p) for p in ops.seq_bind(ch.prim_tuple(), src_shape, c.channels))
                   for a, ch in zip(row, e.choices, strict=False)]
                  for row, e, src_shape in zip(table, c.edges, c.edge_shapes(shape), strict=False)]
        off, h, frame = self._frame(cell)
        fixed = [(s_, t_, a["op"]) for s_, t_, a in frame]
        mids = [t + off for t in c.intermediates]  # X0 (and X1), the output and the frame stay in place
        maps = None
        if len(mids) <= CANONICAL_MAX_MIDS:
            maps = []
            for perm in itertools.permutations(mids):
                m = list(range(h + 1))
                for a, b in zip(mids, perm, strict=True):
                    m[a] = b
                maps.append(m)
        passing = self._passing(cell)
        reps: list[int] = []
        canon_of: dict[tuple, tuple] = {}  # live edge list -> canonical form
        first: dict[tuple, int] = {}
        buckets: dict[tuple, list[tuple[int, nx.DiGraph]]] = {}
        for i in range(self.cell_count(cell)):
            digits = self._cell_choice(cell, i)
            edges = [(e.src + off, e.dst + off, labels[k][d]) for k, (e, d) in enumerate(zip(c.edges, digits, strict=False))
                     if labels[k][d] is not None]
            live = graphs.on_path_edges(sorted(edges + fixed, key=lambda e: (e[1], e[0])), h)
            if maps is not None:
                key = canon_of.get(live)
                if key is None:
                    key = canon_of[live] = min(tuple(sorted((m[s], m[t], op) for s, t, op in live)) for m in maps)
                reps.append(first.setdefault(key, i) if passing[i] else first.get(key, i))
                continue
            reps.append(self._vf2_representative(i, live, h, buckets, passing[i]))
        return tuple(reps)

    def _node_iso_representative(self, cell: str) -> tuple[int, ...]:
        """`_iso_representative` of a node cell (walked: small node cells only): computing
        graphs (pruned) compared with their nodes' ops (bound prims) and X0, XH fixed."""
        c = self.ir.cells[cell]
        h = c.nodes - 1
        shape = self._shape_of_cell(cell)
        inner = tuple(c.node_shapes(shape)[-1])
        oplabels = [[" >> ".join(str(p) for p in ops.seq_bind(ch.prim_tuple(), inner, inner[0])) for ch in nd.choices]
                    for nd in c.node_ops]
        passing = self._passing(cell)
        maps = [(0, *perm, h) for perm in itertools.permutations(range(1, h))]
        first: dict[tuple, int] = {}
        reps = []
        ne = len(c.edges)
        for i in range(self.cell_count(cell)):
            digits = self._cell_choice(cell, i)
            edges = [(e.src, e.dst) for e, d in zip(c.edges, digits, strict=False) if e.choices[d].prim_tuple()[0].name != "zero"]
            live = graphs.on_path_edges(edges, h)
            alive = {v for e in live for v in e}
            lab = {v: oplabels[v - 1][digits[ne + v - 1]] for v in range(1, h) if v in alive}
            key = min((tuple(sorted((m[s], m[t]) for s, t in live)), tuple(sorted((m[v], o) for v, o in lab.items())))
                      for m in maps) if live else ()
            reps.append(first.setdefault(key, i) if passing[i] else first.get(key, i))
        return tuple(reps)

    @staticmethod
    def _vf2_representative(i: int, live: tuple, h: int, buckets: dict, register: bool = True) -> int:
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

    # ---------------------------------------------------------------- lookup and sampling
    def architecture(self, ident: "str | int") -> "Architecture":
        """An architecture by its id string or raw index (``nflc list`` shows both)."""
        if isinstance(ident, bool):
            raise SpaceError(f"not an architecture id: {ident!r}")
        if isinstance(ident, int) or (isinstance(ident, str) and _ASCII_INT.fullmatch(ident.strip())):
            index = int(ident)
            if not 0 <= index < self.raw_count():
                raise SpaceError(f"index {index} is out of range: space '{self.name}' has indices 0..{self.raw_count() - 1}")
            return Architecture(self, index)
        if not isinstance(ident, str):
            raise SpaceError(f"an architecture id is a string or an integer, not {type(ident).__name__}")
        if re.fullmatch(r"\s*-[0-9]+\s*", ident):
            raise SpaceError(f"index {ident.strip()} is out of range: space '{self.name}' has indices 0..{self.raw_count() - 1}")
        return Architecture(self, self.parse_id(ident))

    def sample(self, k: int, seed: int = 0, max_tries: int = 100_000) -> list["Architecture"]:
        """k distinct architectures drawn uniformly from the filtered space (seeded).

        Draws raw indices uniformly without materialising the space and keeps those that
        pass the filters, which is uniform over the filtered space.
        """
        if k < 0:
            raise SpaceError("the sample size must be non-negative")
        rng = random.Random(seed)
        if not self.net_filters and any(self._node_cell_enumeration(self.cell_of[n].name) is not None
                                        for n in self.instances):
            # node cells keep a tiny share of their raw choices (NAS-Bench-101: 1 in 1,200):
            # draw from the product of the kept cells, which is uniform over the filtered space
            per_inst = [range(r) for r in self.numeric_radices] + \
                [self._valid_cells(self.cell_of[n].name) for n in self.instances]
            sizes = [len(p) for p in per_inst]
            inst_radix = self.numeric_radices + [_radix_product(self.edge_radices[n]) for n in self.instances]
            n_valid = _radix_product(sizes)
            if k > n_valid:
                raise SpaceError(f"asked for {k} architectures but space '{self.name}' has only {n_valid}")
            return [Architecture(self, _encode(tuple(p[d] for p, d in zip(per_inst, _decode(j, sizes), strict=True)), inst_radix))
                    for j in rng.sample(range(n_valid), k)]
        total = self.raw_count()
        seen: set[int] = set()
        out: list[Architecture] = []
        tries = 0
        while len(out) < k:
            if len(seen) >= total:
                break
            tries += 1
            if tries > max_tries + 50 * k:
                raise SpaceError(f"only {len(out)} of {k} samples passed the filters after {tries - 1} draws",
                                 hint="the filters keep very few architectures; enumerate with 'nflc list' instead")
            i = rng.randrange(total)
            if i in seen:
                continue
            seen.add(i)
            a = Architecture(self, i)
            if a.rejection is None:
                out.append(a)
        if len(out) < k:
            raise SpaceError(f"asked for {k} architectures but space '{self.name}' has only {len(out)}")
        return out

    # ---------------------------------------------------------------- ids
    def _id_instances(self) -> list[str]:
        """The cell instances an id names: all of them, except that a space with numeric
        choices leaves out cells that have a single configuration (NATS-Bench's size space
        is then named by its channels alone, ``64:32:8:64:16``)."""
        if not self.numeric:
            return self.instances
        return [k for k in self.instances if _radix_product(self.edge_radices[k]) > 1]

    def format_id(self, choices: dict[str, tuple[int, ...]], numeric: tuple[int, ...] = ()) -> str:
        parts = [":".join(str(v) for v in numeric)] if self.numeric else []
        parts += [_cell_id(self.cell_of[k], choices[k]) for k in self._id_instances()]
        return ";".join(parts)

    def parse_id(self, text: str) -> int:
        """Raw index of an id string: the numeric choices' values joined by ':' (when the
        space has numeric choices), then NAS-Bench-201's form per cell, ';' between parts."""
        parts = [p.strip() for p in text.strip().split(";")] if (self.instances or self.numeric) else [""]
        digits: list[int] = []
        if self.numeric:
            values = parts.pop(0).split(":")
            if len(values) != len(self.numeric):
                raise SpaceError(f"id {text!r} gives {len(values)} numeric value(s) but space '{self.name}' has "
                                 f"{len(self.numeric)} numeric choice(s) ({', '.join(self.numeric)})",
                                 hint=f"ids look like {self.example_id()!r}")
            for (name, allowed), v in zip(self.numeric.items(), values, strict=True):
                v = v.strip()
                if not _ASCII_INT.fullmatch(v) or int(v) not in allowed:
                    raise SpaceError(f"{v!r} is not a value of numeric choice '{name}' in id {text!r}",
                                     hint=f"'{name}' is one of {', '.join(map(str, allowed))}")
                digits.append(allowed.index(int(v)))
        named = self.instances if len(parts) == len(self.instances) else self._id_instances()
        if len(parts) != len(named):
            raise SpaceError(f"id has {len(parts)} cell part(s) but space '{self.name}' has {len(named)} cell "
                             f"instance(s)", hint=f"ids look like {self.example_id()!r}")
        given = dict(zip(named, parts, strict=True))
        for k in self.instances:
            if k in given:
                cell = self.cell_of[k]
                choice = tuple(_parse_cell_id(cell, given[k], self.example_id()))
                try:
                    digits.extend(cell.compress(choice))
                except ValueError as exc:
                    raise SpaceError(f"{given[k]!r} is not a choice of cell '{cell.name}': {exc}",
                                     hint=f"ids look like {self.example_id()!r}") from None
            else:
                digits.extend(0 for _ in self.edge_radices[k])
        return _encode(tuple(digits), self.radices)

    def example_id(self) -> str:
        return self.format_id({k: self.cell_of[k].expand(tuple(0 for _ in self.edge_radices[k])) for k in self.instances},
                              tuple(v[0] for v in self.numeric.values()))

    # ---------------------------------------------------------------- costs
    def cost_model(self, overrides: dict[str, int] | None = None) -> CostModel:
        # a value the space's own IR already has needs no lowering (numeric choices at their first value)
        key = tuple(sorted((k, v) for k, v in (overrides or {}).items() if self.ir.constants.get(k) != v))
        if key not in self._cost_models:
            if len(self._cost_models) > 4096:  # numeric choices: one lowering per value tuple
                self._cost_models = {(): self._cost_models[()]}
            if self.source is None:
                raise SpaceError("this space was built without its source; it cannot be re-lowered at another width")
            ir = apply_options(relower(self.source, dict(key)), **self.options)
            self._cost_models[key] = CostModel(ir)
        return self._cost_models[key]

    @functools.cached_property
    def spec_hash(self) -> str:
        """SHA-256 of the space's meaning (its IR without source positions): comments and
        formatting do not change it; any op, edge, constant or option does."""
        import hashlib
        import json

        def strip(o):
            if isinstance(o, dict):
                return {k: strip(v) for k, v in o.items() if k != "span" and k != "file"}
            if isinstance(o, list):
                return [strip(v) for v in o]
            return o

        text = json.dumps(strip(self.ir.model_dump()), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def with_options(self, bias: bool | None = None, prune: bool | None = None, init: str | None = None) -> "Space":
        """The same space with its bias / prune / init options changed (a new Space)."""
        opts = {**self.options, **{k: v for k, v in {"bias": bias, "prune": prune, "init": init}.items() if v is not None}}
        return Space(self.base_ir, self.source, self.warnings, opts)

    def lowered(self, overrides: dict[str, int] | None = None) -> SpaceIR:
        return self.cost_model(overrides).ir

    def __repr__(self) -> str:
        return f"<Space {self.name}: {self.raw_count()} architectures before filters>"


_NODE_GROUP = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)?\(([0-9, ]*)\)")


def _node_cell_id(cell: CellIR, choice: tuple[int, ...]) -> str:
    """A node cell's id: per node 1..H its op and its inputs, `conv3x3(0)+maxpool3x3(0,1)+(1,2)`."""
    ne = len(cell.edges)
    srcs: dict[int, list[int]] = {t: [] for t in range(1, cell.nodes)}
    for e, c in zip(cell.edges, choice, strict=False):
        if e.choices[c].prim_tuple()[0].name != "zero":
            srcs[e.dst].append(e.src)
    ops_ = {nd.node: nd.choices[choice[ne + k]].label for k, nd in enumerate(cell.node_ops)}
    return "+".join(f"{ops_.get(t, '')}({','.join(map(str, srcs[t]))})" for t in range(1, cell.nodes))


def _parse_node_cell_id(cell: CellIR, text: str, example: str) -> list[int]:
    groups = text.split("+")
    matches = [_NODE_GROUP.fullmatch(g.strip()) for g in groups]
    if len(groups) != cell.nodes - 1 or not all(matches):
        raise SpaceError(f"{text!r} is not an id of node cell '{cell.name}': expected {cell.nodes - 1} groups "
                         "'op(sources)' (nodes 1..H-1) then '(sources)' (the output), joined by '+'",
                         hint=f"e.g. {example!r}, or an integer index")
    found: set[tuple[int, int]] = set()
    node_digits = []
    for t, m in enumerate(matches, start=1):
        assert m is not None  # all(matches) was checked
        op, body = m.group(1), m.group(2)
        for src in (x.strip() for x in body.split(",") if x.strip()):
            if not _ASCII_INT.fullmatch(src) or not 0 <= int(src) < t:
                raise SpaceError(f"{src!r} in group {t} of id {text!r} is not an earlier node", hint=f"e.g. {example!r}")
            found.add((int(src), t))
        if t == cell.nodes - 1:
            if op:
                raise SpaceError(f"the output group of id {text!r} names an op ({op!r}); write '({body})'")
            continue
        nd = cell.node_ops[t - 1]
        if not op:
            raise SpaceError(f"group {t} of id {text!r} names no op for node {t}", hint=f"e.g. {example!r}")
        for i, c in enumerate(nd.choices):
            if op == c.label or op in c.aliases:
                node_digits.append(i)
                break
        else:
            labels = [c.label for c in nd.choices]
            raise SpaceError(f"'{op}' is not an op of node {t} in cell '{cell.name}'",
                             hint=did_you_mean(op, labels) or f"the ops are {', '.join(labels)}")
    digits = []
    for e in cell.edges:
        names = [c.prim_tuple()[0].name for c in e.choices]
        want = "skip" if (e.src, e.dst) in found else "zero"
        if want not in names:
            raise SpaceError(f"id {text!r} {'has' if want == 'skip' else 'lacks'} edge {e.src} -> {e.dst}, which cell "
                             f"'{cell.name}' {'does not allow' if want == 'skip' else 'always has'}")
        digits.append(names.index(want))
        found.discard((e.src, e.dst))
    if found:
        s_, t_ = min(found)
        raise SpaceError(f"id {text!r} names edge {s_} -> {t_}, which cell '{cell.name}' does not have")
    return digits + node_digits


def _cell_id(cell: CellIR, choice: tuple[int, ...]) -> str:
    if cell.is_node_cell:
        return _node_cell_id(cell, choice)
    groups: dict[int, list[str]] = {t: [] for t in range(cell.inputs, cell.nodes)}
    for e, c in zip(cell.edges, choice, strict=False):
        if cell.pick is None or c:  # a `pick` cell names only the edges its nodes pick
            groups[e.dst].append(f"{e.choices[c].label}~{e.src}")
    return "+".join("|" + "|".join(groups[t]) + "|" for t in range(cell.inputs, cell.nodes))


def _parse_cell_id(cell: CellIR, text: str, example: str) -> list[int]:
    if cell.is_node_cell:
        return _parse_node_cell_id(cell, text, example)
    groups = text.split("+")
    first = cell.inputs
    if len(groups) != cell.nodes - first or not all(g.startswith("|") and g.endswith("|") for g in groups):
        raise SpaceError(f"{text!r} is not an id of cell '{cell.name}': expected {cell.nodes - first} groups "
                         f"'|op~src|...|' (the inputs of nodes {first}..{cell.nodes - 1}) joined by '+'",
                         hint=f"e.g. {example!r}, or an integer index")
    found: dict[tuple[int, int], str] = {}
    for t, g in enumerate(groups, start=first):
        body = g[1:-1]
        for item in body.split("|") if body else []:
            op, sep, src = item.rpartition("~")
            if not sep or not _ASCII_INT.fullmatch(src):
                raise SpaceError(f"{item!r} in id {text!r} is not 'op~source'", hint=f"e.g. {example!r}")
            key = (int(src), t)
            if key in found:
                raise SpaceError(f"edge {src} -> {t} appears twice in id {text!r}")
            found[key] = op
    extra = [key for key in found if key not in {(e.src, e.dst) for e in cell.edges}]
    if extra:
        (s, t), op = extra[0], found[extra[0]]
        raise SpaceError(f"id {text!r} names edge {s} -> {t} ({op}~{s} in group {t}), which cell '{cell.name}' "
                         "does not have", hint=f"e.g. {example!r}")
    digits = []
    for e in cell.edges:
        key = (e.src, e.dst)
        if key not in found and cell.pick is not None:
            digits.append(0)  # not picked
            continue
        if key not in found:
            raise SpaceError(f"id {text!r} has no op for edge {e.src} -> {e.dst}", hint=f"e.g. {example!r}")
        op = found.pop(key)
        offer = list(enumerate(e.choices))[1:] if cell.pick is not None else list(enumerate(e.choices))
        labels = [c.label for _, c in offer]
        for i, c in sorted(offer, key=lambda ic: ic[1].label != op):  # labels before aliases
            if op == c.label or op in c.aliases:
                digits.append(i)
                break
        else:
            raise SpaceError(f"'{op}' is not a choice of edge {e.src} -> {e.dst} in cell '{cell.name}'",
                             hint=did_you_mean(op, labels + [a for _, c in offer for a in c.aliases]) or
                             f"the choices are {', '.join(labels)}")
    return digits


class Architecture:
    """One architecture of a space: its id, graphs, exact costs, and torch module."""

    def __init__(self, space: Space, index: int):
        self.space = space
        self.index = index
        digits = _decode(index, space.radices)
        self.choices: dict[str, tuple[int, ...]] = {}
        pos = len(space.numeric_radices)
        # the value of every numeric choice (`c in {8, 16}`)
        # the numeric choices' digits come first, then the cells'
        self.numeric: dict[str, int] = {k: vs[d] for (k, vs), d in zip(space.numeric.items(), digits, strict=False)}
        for k in space.instances:  # per edge (then node op): `pick` cells expand their per-node digits
            n = len(space.edge_radices[k])
            self.choices[k] = space.cell_of[k].expand(tuple(digits[pos : pos + n]))
            pos += n

    # identity
    @functools.cached_property
    def id(self) -> str:
        return self.space.format_id(self.choices, tuple(self.numeric.values()))

    def __repr__(self) -> str:
        return f"<Architecture {self.space.name}#{self.index} {self.id}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Architecture) and other.space is self.space and other.index == self.index

    def __hash__(self) -> int:
        return hash((id(self.space), self.index))

    def cell_index(self, instance: str) -> int:
        return _encode(self.space.cell_of[instance].compress(self.choices[instance]), self.space.edge_radices[instance])

    # graphs
    @property
    def cell_graphs(self) -> dict[str, nx.DiGraph]:
        """The cell DAG of every cell instance (docs/CONTRACTS.md)."""
        if self.space.numeric and self.constants_override:  # shapes and costs at this architecture's values
            ir = self.space.lowered(self.constants_override)
            shapes: dict[str | None, tuple[int, ...]] = {}
            for st in ir.network:
                if st.kind == "cell":
                    shapes.setdefault(st.instance, tuple(st.shape_in))
            return {k: graphs.cell_graph(ir.cells[ir.instance_cell[k]], self.choices[k], shapes[k])
                    for k in self.space.instances}
        return {k: self.space.cell_graph(self.space.cell_of[k].name, self.cell_index(k)) for k in self.space.instances}

    @property
    def graph(self) -> nx.DiGraph:
        """The cell DAG (nodes X0..XH, edge attribute ``op``) of a single-cell architecture."""
        gs = self.cell_graphs
        if len(gs) != 1:
            raise SpaceError(f"architecture has {len(gs)} cell instances; use arch.cell_graphs or arch.network_graph")
        return next(iter(gs.values()))

    @property
    def network_graph(self) -> nx.DiGraph:
        return graphs.network_graph(self.space.lowered(self.constants_override), self.cell_graphs)

    def topology(self, instance: str | None = None):
        """Topology (paths, depths, dead edges) of one cell instance (the only one by default)."""
        k = instance or self._only_instance()
        return self.space.cell_topology(self.space.cell_of[k].name, self.cell_index(k))

    def _only_instance(self) -> str:
        if len(self.space.instances) != 1:
            raise SpaceError("this architecture has several cell instances; name one")
        return self.space.instances[0]

    def dead_edges(self) -> dict[str, set[int]]:
        """Indices (in the cell's edge list) of dead edges, per instance."""
        out = {}
        for k in self.space.instances:
            cell = self.space.cell_of[k]
            dead = set(self.space.cell_topology(cell.name, self.cell_index(k)).dead_edges)
            off = graphs.graph_offset(cell)
            out[k] = {i for i, e in enumerate(cell.edges) if (e.src + off, e.dst + off) in dead}
        return out

    # costs
    def cost(self, prune: bool | None = None, overrides: dict[str, int] | None = None) -> Cost:
        prune = self.space.ir.prune if prune is None else prune
        model = self.space.cost_model(self.constants_override if overrides is None else {**self.numeric, **overrides})
        return model.cost(self.choices, self.dead_edges() if prune else None)

    @property
    def params(self) -> int:
        """Exact trainable parameters (dead edges counted unless the space prunes them)."""
        return self.cost().params

    @property
    def flops(self) -> int:
        """Multiply-accumulates of one forward pass of one input."""
        return self.cost().flops

    # width solving and filters
    @functools.cached_property
    def _solved(self) -> tuple[dict[str, int], str | None]:
        b = self.space.scale_budget
        if b is None:
            return {}, None
        return _solve_scale(self, b)

    @property
    def constants_override(self) -> dict[str, int]:
        """This architecture's numeric choices and the constants solved for it (``scale
        width``); empty when it has neither (the space's own IR is then its IR)."""
        if not self.numeric:
            return self._solved[0]
        return {**self.numeric, **self._solved[0]}

    @property
    def constants(self) -> dict[str, int]:
        return {**self.space.ir.constants, **self.constants_override}

    @property
    def width(self) -> int | None:
        return self.constants.get("width")

    @functools.cached_property
    def rejection(self) -> str | None:
        """Why the space's filters drop this architecture, or None if it is in the space."""
        sp = self.space
        for k in sp.instances:
            cell = sp.cell_of[k].name
            reason = sp._cell_reason(cell, self.cell_index(k))
            if reason:
                return reason
            rep = sp._representative(cell, self.cell_index(k)) if sp.ir.unique else self.cell_index(k)
            if rep != self.cell_index(k):
                return f"unique: cell is isomorphic to the earlier {_cell_id(sp.cell_of[k], sp._cell_choice(cell, rep))}"
        solved, reason = self._solved
        if reason:
            return reason
        if not sp.net_filters:
            return None
        c = self.cost()
        for bud in sp.ir.budgets:
            v = c.params if bud.metric == "params" else c.flops
            ok = abs(v - bud.value) <= bud.tolerance if bud.cmp == "==" else _CMP[bud.cmp](v, bud.value)
            if not ok:
                return f"budget {bud.metric} {bud.cmp} {bud.value:,}: has {v:,}"
        for r in sp.ir.requires:
            if r.metric in ("params", "flops"):
                v = c.params if r.metric == "params" else c.flops
                if not _CMP[r.cmp](v, r.value):
                    return f"require {r.metric} {r.cmp} {r.value:g}: has {v:,}"
        return None

    # backends
    def to_module(self, seed: int = 0, prune: bool | None = None, bias: bool | None = None, init: str | None = None):
        """A ``torch.nn.Module`` of exactly this architecture (see :mod:`nflc.backends.torch`)."""
        check_allocatable(self.params, f"#{self.index} of space '{self.space.name}'")
        from nflc.backends.torch import compile_architecture

        return compile_architecture(self, seed=seed, prune=prune, bias=bias, init=init)


def available_memory() -> int | None:
    """Bytes of memory free for a new module (None where the platform does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_allocatable(params: int, what: str, bytes_per_param: int = 4) -> None:
    """Refuse, before allocating, a module whose float32 parameters alone need more memory
    than is free (a width of 10**9 would otherwise hang or be killed)."""
    need = params * bytes_per_param
    free = available_memory()
    if free is not None and need > free:
        raise SpaceError(f"a module of {what} would have {params:,} parameters ({need / 2**30:,.1f} GiB as float32), "
                         f"more than the {free / 2**30:,.1f} GiB of memory free", hint="lower the width")


def _solve_scale(arch: Architecture, b) -> tuple[dict[str, int], str | None]:
    """The integer value of the scaled constant whose cost is nearest the target, if in tolerance."""
    name = b.scale
    base = arch.space.ir.constants[name]

    def metric(w: int) -> int | None:
        try:
            c = arch.cost(overrides={name: w})
        except (NflcError, ValueError):  # a width at which the network is ill-formed (e.g. too narrow)
            return None
        return c.params if b.metric == "params" else c.flops

    lo, hi = 1, max(base, 1)
    while (m := metric(hi)) is not None and m < b.value and hi < 2**40:
        lo, hi = hi, hi * 2
    if metric(hi) is None:
        return {}, f"budget {b.metric} == {b.value:,}: the network cannot be built at {name} = {hi}"
    while hi - lo > 1:  # smallest w with metric(w) >= target
        mid = (lo + hi) // 2
        m = metric(mid)
        if m is not None and m >= b.value:
            hi = mid
        else:
            lo = mid
    cands = [(abs(m - b.value), w, m) for w in {lo, hi} if (m := metric(w)) is not None]
    if not cands:
        return {}, f"budget {b.metric} == {b.value:,}: no {name} builds the network"
    dist, w, m = min(cands)
    if dist > b.tolerance:
        return {name: w}, (f"budget {b.metric} == {b.value:,} +- {b.tolerance:,.0f}: the nearest {name} = {w} gives "
                           f"{m:,}")
    return {name: w}, None
