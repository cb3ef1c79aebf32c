"""The canonical form of NAS-Bench-101-style node cells, for every edge set at once.

A cell is a DAG on ``nodes`` nodes (node 0 the input, the last the output), one bit per
forward pair (:func:`nflc.space.graph.dag_pairs` order), and one op (``0 .. n_ops - 1``)
per intermediate node. Its raw index is ``edge_code * n_ops ** (nodes - 2) + op_code``: the
edge bits as a binary number (first pair most significant), then the ops of nodes
1 .. nodes-2 as a base-``n_ops`` number (node 1 most significant). Two cells are the same
when their pruned graphs (nodes and edges off every input-output path removed) are
isomorphic with the input, the output and every node's op preserved: the relation of
:mod:`nflc.space.canonical` for node cells, computed with numpy over all ``2**pairs``
edge sets instead of walking the cell's choices.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from nflc.space.graph import dag_pairs, prune_dag

MAX_PAIRS = 24  # 2**24 edge sets: the most this walks


def unique_labelled_dags(nodes: int, n_ops: int, max_edges: int | None = None, with_keys: bool = False) -> Any:
    """The representatives of the isomorphism classes of NAS-Bench-101-style cells.

    A cell is valid when the output is reachable and its pruned graph has at most
    ``max_edges`` edges. Returns the sorted numpy array of the raw indices of the first
    valid cell (in raw order) of every class. Exact: a canonical form (the least adjacency
    code over all renumberings of the intermediate nodes, then the least op code over the
    renumberings that reach it). ``with_keys``: also the canonical form of each (as
    :func:`labelled_dag_key` gives), as a list of pairs.
    """
    pairs = dag_pairs(nodes)
    if len(pairs) > MAX_PAIRS:
        raise ValueError(f"{nodes} nodes: 2**{len(pairs)} edge sets are too many to walk")
    pat, first_raw = _pruned_edge_sets(nodes, max_edges)
    pb = [((pat >> (len(pairs) - 1 - p)) & 1) for p in range(len(pairs))]
    perms, codes, canon, heads = _structure_classes(nodes, pb, first_raw)
    mids = nodes - 2
    reps, keys = [], []
    for j in heads:
        autos = [_relabel(perms[k], nodes) for k in np.nonzero(codes[:, j] == canon[j])[0]]
        alive = sorted({v for p, (s, d) in enumerate(pairs) if pb[p][j] for v in (s, d)} - {0, nodes - 1})
        rawops, opcodes = _least_op_codes(nodes, n_ops, alive, autos)
        reps.append(int(first_raw[j]) * n_ops ** mids + rawops)
        keys.append(opcodes)
    if not reps:
        return (np.zeros(0, dtype=np.int64), []) if with_keys else np.zeros(0, dtype=np.int64)
    allreps = np.concatenate(reps)
    order = np.argsort(allreps)
    if not with_keys:
        return allreps[order]
    structs = np.concatenate([np.full(len(u), canon[j]) for j, u in zip(heads, keys, strict=True)])
    opcodes = np.concatenate(keys)
    return allreps[order], list(zip(structs[order].tolist(), opcodes[order].tolist(), strict=True))


def _relabel(perm: tuple[int, ...], nodes: int) -> list[int]:
    """Node v -> perm[v - 1] for the intermediate nodes; the input and the output fixed."""
    return [0, *perm, nodes - 1]


def _pruned_edge_sets(nodes: int, max_edges: int | None) -> tuple[Any, Any]:
    """``(pat, first_raw)``: the distinct pruned edge sets of the valid cells (as edge codes,
    sorted) and, for each, the first raw edge code that prunes to it."""
    pairs = dag_pairs(nodes)
    npairs, out = len(pairs), nodes - 1
    m = np.arange(1 << npairs, dtype=np.int64)
    bit = [((m >> (npairs - 1 - p)) & 1).astype(bool) for p in range(npairs)]
    index = {pr: p for p, pr in enumerate(pairs)}
    reach: list[Any] = [np.ones_like(bit[0])] + [None] * out  # filled in topological order
    for d in range(1, nodes):
        r = np.zeros_like(bit[0])
        for s in range(d):
            r |= reach[s] & bit[index[(s, d)]]
        reach[d] = r
    coreach: list[Any] = [None] * out + [np.ones_like(bit[0])]
    for s in range(out - 1, -1, -1):
        r = np.zeros_like(bit[0])
        for d in range(s + 1, nodes):
            r |= coreach[d] & bit[index[(s, d)]]
        coreach[s] = r
    live = [reach[v] & coreach[v] for v in range(nodes)]
    pbit = [bit[p] & live[s] & live[d] for p, (s, d) in enumerate(pairs)]
    nedges = np.sum(pbit, axis=0)
    ok = reach[out] & (True if max_edges is None else nedges <= max_edges)
    pcode = np.zeros_like(m)  # the pruned edge set, as a code in the same bit order
    for p in range(npairs):
        pcode |= pbit[p].astype(np.int64) << (npairs - 1 - p)
    pat, first = np.unique(pcode[ok], return_index=True)
    return pat, m[ok][first]


def _structure_classes(nodes: int, pb: list[Any], first_raw: Any) -> tuple[list[tuple[int, ...]], Any, Any, Any]:
    """``(perms, codes, canon, heads)``: the renumberings of the intermediate nodes, the
    adjacency code of every pruned edge set under each (bit ``pi(s) * nodes + pi(d)``), the
    least of them (the structure's canonical code) and one edge set per structural class
    (the one with the first raw edge code ``first_raw``)."""
    pairs = dag_pairs(nodes)
    perms = list(itertools.permutations(range(1, nodes - 1)))
    codes = np.empty((len(perms), len(first_raw)), dtype=np.int64)
    for k, perm in enumerate(perms):
        pi = _relabel(perm, nodes)
        c = np.zeros(len(first_raw), dtype=np.int64)
        for p, (s, d) in enumerate(pairs):
            c |= pb[p] << (pi[s] * nodes + pi[d])
        codes[k] = c
    canon = codes.min(axis=0)
    order = np.lexsort((first_raw, canon))
    canon_sorted = canon[order]
    heads = order[np.r_[True, canon_sorted[1:] != canon_sorted[:-1]]]
    return perms, codes, canon, heads


def _least_op_codes(nodes: int, n_ops: int, alive: list[int], autos: list[list[int]]) -> tuple[Any, Any]:
    """For one structure (its live intermediate nodes ``alive`` and its automorphisms
    ``autos``): ``(raw op codes, canonical op codes)`` of the first labelling (in raw order)
    of every class of labellings; pruned nodes take op 0 in the raw code and the label
    ``n_ops`` in the canonical one."""
    mids, base = nodes - 2, n_ops + 1
    labs = np.array(list(itertools.product(range(n_ops), repeat=len(alive))), dtype=np.int64)
    labs = labs.reshape(len(labs), len(alive))
    full = np.full((len(labs), mids), n_ops, dtype=np.int64)
    rawops = np.zeros(len(labs), dtype=np.int64)
    for a, v in enumerate(alive):
        full[:, v - 1] = labs[:, a]
        rawops += labs[:, a] * n_ops ** (mids - v)
    best = None
    for pi in autos:
        c = np.zeros(len(labs), dtype=np.int64)
        for v in range(1, nodes - 1):
            c += full[:, v - 1] * base ** (mids - pi[v])
        best = c if best is None else np.minimum(best, c)
    assert best is not None  # the identity is among the automorphisms
    uniq, firsts = np.unique(best, return_index=True)
    return rawops[firsts], uniq


def labelled_dag_key(nodes: int, n_ops: int, index: int) -> tuple[int, int] | None:
    """The canonical form :func:`unique_labelled_dags` compares, of one raw cell index
    (None when the output is unreachable): two cells are isomorphic iff their keys agree."""
    pairs = dag_pairs(nodes)
    mids, out = nodes - 2, nodes - 1
    edge_code, op_code = divmod(index, n_ops ** mids)
    edges = [pr for p, pr in enumerate(pairs) if (edge_code >> (len(pairs) - 1 - p)) & 1]
    alive, live = prune_dag(nodes, edges)
    if not live:
        return None
    labels = [n_ops] * mids
    for v in range(1, out):
        if v in alive:
            labels[v - 1] = (op_code // n_ops ** (mids - v)) % n_ops
    best = None
    for perm in itertools.permutations(range(1, out)):
        pi = [0, *perm, out]
        code = sum(1 << (pi[s] * nodes + pi[d]) for s, d in live)
        opc = sum(labels[v - 1] * (n_ops + 1) ** (mids - pi[v]) for v in range(1, out))
        if best is None or (code, opc) < best:
            best = (code, opc)
    return best
