"""Topology of cells: hand-counted cases, the paper's H = 3 space, closed forms, enumeration."""

from __future__ import annotations

import math
from collections import Counter

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nflc.space.topology import cell_size, depth_counts, topology

# Hand-counted: (code, P, sorted depths, parameterized edges on paths, dead edges).
HAND = [
    ("2_02_002", 1, (3,), 3, ()),  # the all-linear chain
    ("0_00_000", 0, (), 0, ()),
    ("1_11_111", 4, (0, 0, 0, 0), 0, ()),
    ("1_11_002", 2, (1, 1), 1, ()),  # 0-2-3 and 0-1-2-3, one linear edge 2->3
    ("2_02_100", 1, (0,), 0, ((0, 1), (1, 2))),  # only the skip 0->3 reaches the output
    ("0_22_002", 1, (2,), 2, ((1, 2),)),  # node 1 has no input: 1->2 computes nothing
    ("2_12_121", 4, (0, 0, 2, 2), 3, ()),
    ("2_22_222", 4, (1, 2, 2, 3), 6, ()),
]


@pytest.mark.parametrize("code,paths,depths,on_paths,dead", HAND)
def test_hand_counted_cells(make_cell, code, paths, depths, on_paths, dead):
    topo = topology(make_cell(code))
    assert topo.paths == paths
    assert topo.depths == depths
    assert topo.sum_depth == sum(depths)
    assert topo.skip_paths == depths.count(0)
    assert topo.parameterized_on_paths == on_paths
    assert topo.dead_edges == dead
    assert topo.connected == (paths > 0)
    assert topo.mean_depth == (sum(depths) / paths if paths else 0.0)


def test_degenerate_effective_width(make_cell):
    # 0/0 cases are defined as 0.0 (documented on Topology).
    assert topology(make_cell("0_00_000")).effective_width == 0.0
    assert topology(make_cell("1_11_111")).effective_width == 0.0
    # "1_11_002": 2 paths of depth 1 -> 2 / 1; "2_12_121": 2 deep paths / mean depth 1.
    assert topology(make_cell("1_11_002")).effective_width == 2.0
    assert topology(make_cell("2_12_121")).effective_width == 2.0
    assert topology(make_cell("2_02_002")).effective_width == pytest.approx(1 / 3)


def test_nb201_spelling_matches_code(make_cell):
    a = topology(make_cell("|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|"))
    assert a == topology(make_cell("2_02_002"))


@pytest.fixture(scope="module")
def h3_space(make_cell, codes):
    return {code: (make_cell(code), topology(make_cell(code))) for code in codes(3)}


def test_h3_space_size_and_widest(h3_space):
    assert len(h3_space) == 3**6
    assert max(t.paths for _, t in h3_space.values()) == 4
    # P = 4 needs all six edges non-zero (one path per subset of {1, 2}), 2**6 cells.
    assert sum(t.paths == 4 for _, t in h3_space.values()) == 2**6


def test_h3_deepest_is_the_chain(h3_space):
    deepest = [c for c, (_, t) in h3_space.items() if t.mean_depth == 3.0]
    assert deepest == ["2_02_002"]
    assert h3_space["2_02_002"][1].paths == 1


def test_h3_widest_shallowest(h3_space):
    # P = 4 and sum depth 1: the single linear edge must lie on exactly one of the four
    # paths, i.e. it is one of 0->3, 1->3, 0->2, 1->2 (0->1 and 2->3 lie on two each).
    found = sorted(c for c, (_, t) in h3_space.items() if t.paths == 4 and t.mean_depth == 0.25)
    assert found == sorted(["1_11_211", "1_11_121", "1_21_111", "1_12_111"])


def test_h3_paths_match_indicator_formula(h3_space):
    # P = [03] + [01][13] + [02][23] + [01][12][23] over non-zero indicators.
    for code, (_, topo) in h3_space.items():
        e01, e02, e12, e03, e13, e23 = (c != "0" for c in code.replace("_", ""))
        assert topo.paths == e03 + e01 * e13 + e02 * e23 + e01 * e12 * e23, code


def _enumerate(cell: nx.DiGraph) -> tuple[list[int], set[tuple[int, int]]]:
    h = cell_size(cell)
    live = nx.DiGraph([(s, t) for s, t, k in cell.edges(data="kind") if k != "zero"])
    live.add_nodes_from(range(h + 1))
    depths, used = [], set()
    for path in nx.all_simple_paths(live, 0, h):
        edges = list(zip(path, path[1:], strict=False))
        depths.append(sum(cell.edges[e]["parameterized"] for e in edges))
        used.update(edges)
    return sorted(depths), used


def _check_against_enumeration(cell: nx.DiGraph) -> None:
    depths, used = _enumerate(cell)
    topo = topology(cell)
    assert list(topo.depths) == depths
    nonzero = {(s, t) for s, t, k in cell.edges(data="kind") if k != "zero"}
    assert set(topo.dead_edges) == nonzero - used
    assert topo.parameterized_on_paths == sum(cell.edges[e]["parameterized"] for e in used)


def test_h3_dp_agrees_with_enumeration(h3_space):
    for cell, _ in h3_space.values():
        _check_against_enumeration(cell)


def _complete(h: int, kind: str) -> nx.DiGraph:
    cell = nx.DiGraph()
    cell.add_nodes_from(range(h + 1))
    for t in range(1, h + 1):
        for s in range(t):
            cell.add_edge(s, t, kind=kind, parameterized=kind == "linear_relu")
    return cell


def test_complete_dags_closed_forms():
    # Complete DAG on H+1 nodes: a path is a subset of the H-1 inner nodes, so
    # P = 2**(H-1) and the number of k-edge paths is C(H-1, k-1). H = 20 has 524288 paths.
    h = 20
    assert topology(_complete(h, "skip")).paths == 2 ** (h - 1)
    assert depth_counts(_complete(h, "linear_relu")) == tuple(
        [0] + [math.comb(h - 1, k - 1) for k in range(1, h + 1)]
    )


@st.composite
def random_cells(draw):
    h = draw(st.integers(1, 6))
    cell = nx.DiGraph()
    cell.add_nodes_from(range(h + 1))
    for t in range(1, h + 1):
        for s in range(t):
            kind = draw(st.sampled_from(["zero", "skip", "linear_relu", "conv"]))
            cell.add_edge(s, t, kind=kind, parameterized=kind in ("linear_relu", "conv"))
    return cell


@settings(max_examples=150, deadline=None)
@given(random_cells())
def test_random_dags_agree_with_enumeration(cell):
    _check_against_enumeration(cell)
    topo = topology(cell)
    assert sum(Counter(topo.depths).values()) == topo.paths


def test_rejects_non_cells():
    bad = nx.DiGraph([(0, 2)])
    with pytest.raises(ValueError, match="0 .. H"):
        topology(bad)
    back = nx.DiGraph()
    back.add_edge(1, 0, kind="skip", parameterized=False)
    with pytest.raises(ValueError, match="backwards"):
        topology(back)
