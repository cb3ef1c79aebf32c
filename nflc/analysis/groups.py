"""Architectures that compute the same function: one group per computing graph.

Two architectures of a space compute the same function when every cell placement has the
same *computing graph*: the cell with its zero edges and dead edges (on no input-output
path) removed, up to a renumbering of the intermediate nodes, edges matched by the
primitive ops they apply. That is the relation the space's ``unique`` filter keeps one
member of (:meth:`nflc.space.Space._iso_representative`), so the groups here are exactly
the architectures ``unique`` would merge. Architectures whose width the space solves for
a budget (``scale width``) are grouped only with those solved to the same constants: a
dead edge can change the width.

Members of a group have the same topology, the same exact kernels and the same predicted
scores; they differ in dead edges, and so (unless the space prunes them) in parameters.

Memory: a cell with at most :data:`TABLE_MAX` choices (NAS-Bench-201's 15,625) uses the
space's table of representatives, walked once and shared with ``unique``; a larger edge
cell (a million MLP cells) gets its canonical form per architecture, so nothing grows
with the number of cell choices but a bounded memo. :func:`function_digest` condenses a
key to 16 bytes, which is what a streamed analysis keeps per architecture.
"""

from __future__ import annotations

import hashlib
import itertools
import weakref
from collections import OrderedDict
from typing import Hashable, Sequence

from nflc import ops
from nflc.errors import NflcError
from nflc.graph import on_path_edges

BYTES_PER_ARCH = 100  # what a streamed analysis keeps per architecture: grouping (digest, parameters, index, group), report columns
MAX_ARCHS = 2**25  # the most architectures one analysis takes (about 3.4 GB at BYTES_PER_ARCH)
TABLE_MAX = 2**16  # cells with at most this many choices: the space's walked table of representatives
CANONICAL_MAX_MIDS = 6  # canonical forms by permutation up to this many intermediate nodes (as `unique`)
MEMO_MAX = 2**16  # live edge lists remembered per cell (canonical forms of the larger cells)


def _live_key(arch, instance: str) -> tuple:
    """Fallback for cells too large to walk: the live edges themselves (no renumbering)."""
    g = arch.space.cell_graph(arch.space.cell_of[instance].name, arch.cell_index(instance))
    h = max(g.nodes)
    edges = sorted(((s, t, a["op"]) for s, t, a in g.edges(data=True) if a["kind"] != "zero"),
                   key=lambda e: (e[1], e[0]))
    return ("live", on_path_edges(edges, h))


class _Canonical:
    """Per-architecture canonical forms of one edge cell's computing graphs: the least
    edge list over the renumberings of the intermediate nodes, edges labelled by their
    bound primitive ops (the form ``Space._iso_representative`` compares), without walking
    every cell choice."""

    def __init__(self, sp, cell: str):
        c = sp.ir.cells[cell]
        shape = sp._shape_of_cell(cell)
        table = sp._edge_table(cell)
        self.cell, self.c = cell, c
        self.labels = [[None if a["kind"] == "zero" else
                        " >> ".join(str(p) for p in ops.seq_bind(ch.prim_tuple(), src_shape, c.channels))
                        for a, ch in zip(row, e.choices, strict=False)]
                       for row, e, src_shape in zip(table, c.edges, c.edge_shapes(shape), strict=False)]
        self.off, self.h, frame = sp._frame(cell)
        self.fixed = [(s, t, a["op"]) for s, t, a in frame]
        mids = [t + self.off for t in c.intermediates]
        self.maps = []
        for perm in itertools.permutations(mids):
            m = list(range(self.h + 1))
            for a, b in zip(mids, perm, strict=True):
                m[a] = b
            self.maps.append(m)
        self.memo: OrderedDict[tuple, tuple] = OrderedDict()

    def key(self, sp, i: int) -> tuple:
        digits = sp._cell_choice(self.cell, i)
        off = self.off
        edges = [(e.src + off, e.dst + off, self.labels[k][d]) for k, (e, d) in enumerate(zip(self.c.edges, digits, strict=False))
                 if self.labels[k][d] is not None]
        live = on_path_edges(sorted(edges + self.fixed, key=lambda e: (e[1], e[0])), self.h)
        form = self.memo.get(live)
        if form is None:
            form = min(tuple(sorted((m[s], m[t], op) for s, t, op in live)) for m in self.maps)
            self.memo[live] = form
            if len(self.memo) > MEMO_MAX:
                self.memo.popitem(last=False)
        return ("canonical", form)


_canonical: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # space -> {cell: _Canonical | None}


def _canonical_for(sp, cell: str) -> _Canonical | None:
    """The per-architecture canonical form of ``cell``, or None where the walked table is
    used instead (small cells, `unique` spaces whose iteration walks it anyway, node
    cells, cells with more intermediate nodes than permutations can cover)."""
    per_space = _canonical.setdefault(sp, {})
    if cell not in per_space:
        c = sp.ir.cells[cell]
        use = (sp.cell_count(cell) > TABLE_MAX and not sp.ir.unique and not c.is_node_cell
               and len(c.intermediates) <= CANONICAL_MAX_MIDS)
        per_space[cell] = _Canonical(sp, cell) if use else None
    return per_space[cell]


def function_key(arch) -> Hashable:
    """A key equal for two architectures of one space exactly when they compute the same function."""
    sp = arch.space
    parts = []
    for k in sp.instances:
        cell = sp.cell_of[k].name
        canon = _canonical_for(sp, cell)
        if canon is not None:
            parts.append(canon.key(sp, arch.cell_index(k)))
            continue
        try:
            parts.append(sp._iso_representative(cell)[arch.cell_index(k)])
        except NflcError:  # a cell with too many choices to walk: compare live edges as they are
            parts.append(_live_key(arch, k))
    return tuple(parts), tuple(sorted(arch.constants_override.items()))


def function_digest(arch) -> bytes:
    """16 bytes equal for two architectures exactly when their :func:`function_key` are
    (a 128-bit BLAKE2 hash of the key: a collision among 10**9 architectures has
    probability below 10**-20)."""
    return hashlib.blake2b(repr(function_key(arch)).encode(), digest_size=16).digest()


def check_count(space_name: str, total: int) -> None:
    """Refuse, before any work, an analysis of more than :data:`MAX_ARCHS` architectures."""
    if total > MAX_ARCHS:
        raise NflcError(f"space '{space_name}' has {total:,} architectures: analyzing all of them would keep about "
                        f"{total * BYTES_PER_ARCH / 1e9:,.3g} GB ({BYTES_PER_ARCH} bytes each; the limit is {MAX_ARCHS:,})",
                        hint="analyze a sample: --archs sample:K")


def representatives(archs: Sequence) -> list[int]:
    """For each architecture, the position (in ``archs``) of its group's representative:
    the member with the fewest parameters (no dead parameterized edges where the others
    have them), the first one in order among equals."""
    best: dict[Hashable, int] = {}
    keys = [function_key(a) for a in archs]
    params = [a.params for a in archs]
    for i, key in enumerate(keys):
        j = best.get(key)
        if j is None or params[i] < params[j]:
            best[key] = i
    return [best[key] for key in keys]
