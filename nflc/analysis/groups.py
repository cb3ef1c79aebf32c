"""Architectures that compute the same function: one group per computing graph.

Two architectures of a space compute the same function when every cell placement has the
same *computing graph*: the cell with its zero edges and dead edges (on no input-output
path) removed, up to a renumbering of the intermediate nodes, edges matched by the
primitive ops they apply. That is the relation the space's ``unique`` filter keeps one
member of (:mod:`nflc.space.canonical`), so the groups here are exactly
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
from typing import TYPE_CHECKING, Any, Hashable, Sequence

from nflc.errors import NflcError
from nflc.space import canonical
from nflc.space.topology import on_path_edges

if TYPE_CHECKING:
    from nflc.space import Architecture, Space

BYTES_PER_ARCH = 100  # what a streamed analysis keeps per architecture: grouping (digest, parameters, index, group), report columns
MAX_ARCHS = 2**25  # the most architectures one analysis takes (about 3.4 GB at BYTES_PER_ARCH)
TABLE_MAX = 2**16  # cells with at most this many choices: the space's walked table of representatives


def _live_key(arch: Architecture, instance: str) -> tuple:
    """Fallback for cells too large to walk: the live edges themselves (no renumbering)."""
    g = arch.space.cell_graph(arch.space.cell_of[instance].name, arch.cell_index(instance))
    h = max(g.nodes)
    edges = sorted(((s, t, a["op"]) for s, t, a in g.edges(data=True) if a["kind"] != "zero"),
                   key=lambda e: (e[1], e[0]))
    return ("live", on_path_edges(edges, h))


def _per_architecture(sp: Space, cs: Any) -> bool:
    """Whether ``cell``'s canonical forms are computed per architecture
    (:attr:`nflc.space.CellSpace.shared_forms`) rather than read from the space's walked
    table of representatives: large edge cells within reach of the exact form, in spaces
    without `unique` (whose iteration walks the table anyway)."""
    return cs.count > TABLE_MAX and not sp.ir.unique and not cs.ir.is_node_cell and canonical.has_exact_form(cs.ir)


def function_key(arch: Architecture) -> Hashable:
    """A key equal for two architectures of one space exactly when they compute the same function."""
    sp = arch.space
    parts: list[Any] = []
    for k in sp.instances:
        cs = sp.cell(sp.cell_of[k].name)
        if _per_architecture(sp, cs):
            parts.append(cs.shared_forms.key(arch.cell_index(k)))
            continue
        try:
            parts.append(cs.representatives[arch.cell_index(k)])
        except NflcError:  # a cell with too many choices to walk: compare live edges as they are
            parts.append(_live_key(arch, k))
    return tuple(parts), tuple(sorted(arch.constants_override.items()))


def function_digest(arch: Architecture) -> bytes:
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
