"""Issue #28: node cells with filters other than `unique` + `require edges` count without
walking every choice (6 nodes: 2**15 edge sets x 3**4 ops = 2.6M choices once took minutes).
The expected counts enumerate the 2**15 edge sets here, with live edges found by plain
reachability, and multiply by the op choices (which these filters do not read)."""

from __future__ import annotations

import itertools

import pytest

import nflc

SPACE = """
space s {
    input [3, 8, 8]
    classes 3
    bias false
    op c3 = conv2d(3) >> batchnorm >> relu
    op c1 = conv2d(1) >> batchnorm >> relu
    op mp = max_pool(3)
    cell m { nodes 6 channels 4 edge * : zero | skip  node * : c3 | c1 | mp }
    network = conv2d(3, 4) >> m >> global_avg_pool >> linear(classes)
    FILTERS
}"""


def edge_sets(n: int):
    """(live edges, all edges) of every edge set of an n-node DAG with an input-output path."""
    pairs = [(s, t) for t in range(1, n) for s in range(t)]
    for bits in itertools.product((0, 1), repeat=len(pairs)):
        es = [p for p, b in zip(pairs, bits, strict=True) if b]
        fwd, bwd = {0}, {n - 1}
        for s, t in es:  # pairs are in target order: one pass reaches forward
            if s in fwd:
                fwd.add(t)
        for s, t in reversed(es):
            if t in bwd:
                bwd.add(s)
        live = [(s, t) for s, t in es if s in fwd and t in bwd]
        if live:
            yield live, es


def in_degree(live):
    return max(sum(1 for _, t in live if t == v) for v in {t for _, t in live})


@pytest.mark.parametrize("filters, keep", [
    ("require in_degree <= 2", lambda live, es: in_degree(live) <= 2),
    ("require edges <= 9", lambda live, es: len(live) <= 9),
    ("require dead_edges <= 1", lambda live, es: len(es) - len(live) <= 1),
])
def test_six_node_cells_count_by_edge_set(filters, keep):
    expected = sum(keep(live, es) for live, es in edge_sets(6)) * 3**4
    sp = nflc.loads(SPACE.replace("FILTERS", filters))
    assert sp.count() == expected
    a = sp.sample(3, seed=1)  # and an architecture the count keeps passes the filters
    assert all(x.rejected_by is None for x in a)
