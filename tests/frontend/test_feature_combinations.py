"""Feature combinations the property tests do not generate, counted against a brute force
written here: numeric choices with `unique` and `require`, strict comparisons (`<`, `>`)
in edge-cell and node-cell constraints, node cells through the fast counting path and
through the walk. The brute force enumerates every choice in index order (docs/LANGUAGE.md,
"Architectures, indices and ids"), finds paths with networkx, and decides `unique` with
networkx's isomorphism test (input and output fixed, edges or nodes matched by what their
op computes at the architecture's values), keeping the first member of each class that
passes the other cell filters. Expected ids are written in the documented id format.

The tests once marked ``xfail`` for issue #28 (filters and `unique` evaluated at the first
numeric value only, filter bounds as floats, the node-cell fast path comparing ops by label)
pass since it landed; their expectations are the brute force's."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction
from typing import Callable

import networkx as nx
import pytest

import nflc


# ---------------------------------------------------------------- the brute force


def pairs(n_nodes: int) -> list[tuple[int, int]]:
    """Forward pairs in (dst, src) order: the order of a cell's edges and id groups."""
    return [(s, t) for t in range(1, n_nodes) for s in range(t)]


def end_to_end_paths(edges: list[tuple[int, int]], h: int) -> list[list[tuple[int, int]]]:
    """Every path 0 -> h over ``edges``, as a list of its edges (networkx)."""
    g = nx.DiGraph()
    g.add_nodes_from(range(h + 1))
    g.add_edges_from(edges)
    return [list(zip(p, p[1:], strict=False)) for p in nx.all_simple_paths(g, 0, h)]


def metrics(edges: dict[tuple[int, int], bool], h: int) -> dict:
    """The `require` metrics of docs/LANGUAGE.md of a cell whose non-zero edges are
    ``edges`` ({(s, t): parameterized}), from its enumerated paths."""
    ps = end_to_end_paths(list(edges), h)
    depths = [sum(edges[e] for e in p) for p in ps]
    live = {e for p in ps for e in p}
    into = [t for _, t in live]
    return {"paths": len(ps), "depth": max(depths, default=0), "min_depth": min(depths, default=0),
            "mean_depth": Fraction(sum(depths), len(ps)) if ps else 0, "skip_paths": depths.count(0),
            "dead_edges": len(edges) - len(live), "edges": len(live),
            "in_degree": max((into.count(t) for t in set(into)), default=0), "live": live,
            "parameterized": sum(edges.values())}  # parameterized edges, dead ones included


CMP: dict[str, Callable] = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
                            ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


class Classes:
    """Isomorphism classes of computing graphs, each with its first registered member."""

    def __init__(self) -> None:
        self.buckets: dict[tuple, list[nx.DiGraph]] = {}

    def is_new(self, g: nx.DiGraph) -> bool:
        key = (tuple(sorted(d["op"] for _, _, d in g.edges(data=True))),
               tuple(sorted(d["role"] for _, d in g.nodes(data=True))), g.number_of_edges())
        same = nx.algorithms.isomorphism.categorical_node_match("role", None)
        ops = nx.algorithms.isomorphism.categorical_edge_match("op", None)
        members = self.buckets.setdefault(key, [])
        if any(nx.is_isomorphic(g, other, node_match=same, edge_match=ops) for other in members):
            return False
        members.append(g)
        return True


def edge_cell_graph(live: set, op_of: dict, h: int) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from((v, {"role": "in" if v == 0 else "out" if v == h else "mid"}) for v in {0, h} | {v for e in live for v in e})
    g.add_edges_from((s, t, {"op": op_of[(s, t)]}) for s, t in live)
    return g


def cell_id(groups: dict[int, list[str]], first: int, last: int) -> str:
    return "+".join("|" + "|".join(groups[t]) + "|" for t in range(first, last + 1))


def brute_edge_space(n_nodes: int, choices: list[tuple[str, str | None, bool]], numeric: dict[str, list[int]],
                     keep: Callable[[dict, dict], bool], unique: bool,
                     computes: Callable[[str, dict], str] = lambda label, values: label) -> list[str]:
    """Ids kept by a one-cell space of ``n_nodes`` nodes, every forward pair offering
    ``choices`` = [(label, None for zero else op, parameterized)]: numeric values first,
    then the cell's edges in (dst, src) order, the last edge fastest. ``keep(metrics,
    values)`` is the cell filter; ``computes(label, values)`` what an op computes (two
    labels computing alike are one op for `unique`)."""
    h = n_nodes - 1
    es = pairs(n_nodes)
    kept = []
    for vals in itertools.product(*numeric.values()):
        values = dict(zip(numeric, vals, strict=True))
        classes = Classes()
        for digits in itertools.product(range(len(choices)), repeat=len(es)):
            nonzero = {e: choices[d][2] for e, d in zip(es, digits, strict=True) if choices[d][1] is not None}
            m = metrics(nonzero, h)
            if not keep(m, values):
                continue
            op_of = {e: computes(choices[d][0], values) for e, d in zip(es, digits, strict=True)}
            if unique and not classes.is_new(edge_cell_graph(m["live"], op_of, h)):
                continue
            groups: dict[int, list[str]] = {t: [] for t in range(1, n_nodes)}
            for (s, t), d in zip(es, digits, strict=True):
                groups[t].append(f"{choices[d][0]}~{s}")
            prefix = ":".join(map(str, vals)) + ";" if numeric else ""
            kept.append(prefix + cell_id(groups, 1, h))
    return kept


def brute_node_space(n_nodes: int, ops: list[str], keep: Callable[[dict], bool], unique: bool,
                     computes: Callable[[str], str] = lambda label: label) -> list[str]:
    """Ids kept by a one-cell space whose node cell has every forward pair `zero | skip` and
    every intermediate node the ops ``ops``: choices are the edges ((dst, src) order, zero
    first), then the ops of nodes 1..H-1 (node 1 most significant). A cell without an
    input-output path is never kept; `unique` matches live nodes by what their op computes."""
    h = n_nodes - 1
    es = pairs(n_nodes)
    classes = Classes()
    kept = []
    for bits in itertools.product((0, 1), repeat=len(es)):
        present = {e: False for e, b in zip(es, bits, strict=True) if b}
        m = metrics(present, h)
        if not m["paths"]:
            continue
        for labels in itertools.product(range(len(ops)), repeat=h - 1):
            if not keep(m):
                continue
            if unique:
                g = nx.DiGraph()
                alive = {0, h} | {v for e in m["live"] for v in e}
                g.add_nodes_from((v, {"role": "in" if v == 0 else "out" if v == h else computes(ops[labels[v - 1]])})
                                 for v in alive)
                g.add_edges_from((s, t, {"op": "skip"}) for s, t in m["live"])
                if not classes.is_new(g):
                    continue
            srcs = {t: [s for s, tt in present if tt == t] for t in range(1, n_nodes)}
            kept.append("+".join(f"{ops[labels[t - 1]] if t < h else ''}({','.join(map(str, srcs[t]))})"
                                 for t in range(1, n_nodes)))
    return kept


def assert_space_is(sp, expected: list[str]) -> None:
    """count(), len(list(space)) and the kept ids (in order) are the brute force's."""
    listed = [a.id for a in sp]
    assert sp.count() == len(expected), f"count() = {sp.count()}, brute force {len(expected)}"
    assert len(listed) == len(expected), f"len(list(space)) = {len(listed)}, brute force {len(expected)}"
    assert listed == expected, f"first difference: {next((a, b) for a, b in zip(listed, expected, strict=True) if a != b)}"


MLP = [("zero", None, False), ("skip", "skip", False), ("lin", "linear", True)]


def mlp_space(extra: str, numeric: str = "w in {4, 8}", nodes: int = 4) -> str:
    return f"""
    space s {{
        input [6]
        classes 3
        bias false
        {numeric}
        cell {{ nodes {nodes}  edge * : zero | skip | linear >> relu as lin }}
        network = linear(w) >> relu >> cell >> linear(classes)
        {extra}
    }}"""


# ---------------------------------------------------------------- numeric choices with unique / require


def test_numeric_choice_with_unique_and_a_strict_paths_bound():
    sp = nflc.loads(mlp_space("require paths > 1\n unique"))
    expected = brute_edge_space(4, MLP, {"w": [4, 8]}, lambda m, v: m["paths"] > 1, unique=True)
    assert_space_is(sp, expected)
    assert len(expected) == 2 * len(brute_edge_space(4, MLP, {}, lambda m, v: m["paths"] > 1, unique=True))


@pytest.mark.parametrize("extra, keep", [
    ("require depth < 3", lambda m: m["depth"] < 3),
    ("require mean_depth > 1", lambda m: m["mean_depth"] > 1),
    ("require skip_paths < 1\n require paths > 0", lambda m: m["skip_paths"] < 1 and m["paths"] > 0),
    ("require dead_edges > 0", lambda m: m["dead_edges"] > 0),
    ("require in_degree < 2\n require edges > 2", lambda m: m["in_degree"] < 2 and m["edges"] > 2),
    ("require mean_depth >= 1.5", lambda m: m["mean_depth"] >= Fraction(3, 2)),
])
@pytest.mark.parametrize("unique", [False, True])
def test_strict_comparisons_in_edge_cells_with_a_numeric_choice(extra, keep, unique):
    sp = nflc.loads(mlp_space(extra + ("\n unique" if unique else "")))
    assert_space_is(sp, brute_edge_space(4, MLP, {"w": [4, 8]}, lambda m, v: keep(m), unique))


def test_two_numeric_choices_and_unique_multiply_the_kept_cells():
    sp = nflc.loads(mlp_space("unique", numeric="w in {4, 12}\n    v in {1, 2}").replace(
        "linear(classes)", "linear(v) >> linear(classes)"))
    expected = brute_edge_space(4, MLP, {"w": [4, 12], "v": [1, 2]}, lambda m, v: True, unique=True)
    assert_space_is(sp, expected)
    # params: 6w (stem) + w^2 per live or dead linear edge + w v + 3 v, at each architecture's own values
    for a in sp.sample(12, seed=3):
        w, v = a.numeric["w"], a.numeric["v"]
        lin = a.id.count("lin~")
        assert a.params == 6 * w + lin * w * w + w * v + v * 3, a.id


def test_a_cell_bound_that_uses_a_numeric_choice_holds_at_each_value():
    sp = nflc.loads(mlp_space("require paths <= w - 3", numeric="w in {4, 5}"))
    assert_space_is(sp, brute_edge_space(4, MLP, {"w": [4, 5]}, lambda m, v: m["paths"] <= v["w"] - 3, unique=False))


def test_a_params_bound_that_uses_a_numeric_choice_holds_at_each_value():
    # params = 6w (stem) + w^2 per linear edge (dead ones too) + 3w (readout), at the architecture's w
    sp = nflc.loads(mlp_space("require params <= w * 20", numeric="w in {4, 8, 16}", nodes=3))
    expected = brute_edge_space(3, MLP, {"w": [4, 8, 16]},
                                lambda m, v: 9 * v["w"] + m["parameterized"] * v["w"] ** 2 <= 20 * v["w"], unique=False)
    assert len(expected) == 26 + 20 + 8  # at most 2, 1 and 0 linear edges of 3
    assert_space_is(sp, expected)


def test_unique_merges_two_ops_only_at_the_values_where_they_compute_alike():
    # conv2d(k) and conv2d(3) are one op when k = 3 and two when k = 5
    src = """
    space s {
        input [3, 8, 8]
        classes 3
        bias false
        k in {3, 5}
        cell { nodes 4  edge * : zero | conv2d(k) >> batchnorm as a | conv2d(3) >> batchnorm as b }
        network = conv2d(3, 4) >> cell >> global_avg_pool >> linear(classes)
        unique
    }"""
    choices = [("zero", None, False), ("a", "a", True), ("b", "b", True)]
    expected = brute_edge_space(4, choices, {"k": [3, 5]}, lambda m, v: True, unique=True,
                                computes=lambda label, v: f"conv{v['k'] if label == 'a' else 3}")
    assert len(expected) == 275  # the brute-force count
    assert_space_is(nflc.loads(src), expected)


def test_filter_bounds_are_exact_integers():
    # 2**53 + 1 = 3 * 3002399751580331 parameters exactly: a float bound (2**53) rejects it
    src = "space s { input [2] classes 3002399751580331 network = linear(classes, bias=true) require params <= 2 ** 53 + 1 }"
    sp = nflc.loads(src)
    assert sp.architecture(0).params == 2**53 + 1
    assert sp.count() == 1


# ---------------------------------------------------------------- node cells


NODE_OPS = ["c3", "mp"]


def node_space(filters: str, nodes: int = 5, node_ops: str = "c3 | mp") -> str:
    return f"""
    space s {{
        input [3, 8, 8]
        classes 3
        bias false
        op c3 = conv2d(3) >> batchnorm >> relu
        op c3b = conv2d(3) >> batchnorm >> relu
        op mp = max_pool(3)
        cell m {{
            nodes {nodes}
            channels 4
            edge * : zero | skip
            node * : {node_ops}
        }}
        network = conv2d(3, 4) >> m >> global_avg_pool >> linear(classes)
        {filters}
    }}"""


@pytest.mark.parametrize("filters, keep", [
    ("require edges < 6\n unique", lambda m: m["edges"] < 6),  # the fast counting path
    ("require edges <= 5\n unique", lambda m: m["edges"] <= 5),
    ("require edges < 5.5\n unique", lambda m: m["edges"] < 5.5),
])  # `unique` alone: test_the_fast_path_and_the_walk_agree_with_an_always_true_filter
def test_node_cell_edge_bounds_through_the_fast_path(filters, keep):
    assert_space_is(nflc.loads(node_space(filters)), brute_node_space(5, NODE_OPS, keep, unique=True))


@pytest.mark.parametrize("filters, keep, unique", [
    ("require edges > 3\n unique", lambda m: m["edges"] > 3, True),  # `>`: each class's first member judged
    ("require in_degree < 2\n require edges < 6\n unique", lambda m: m["in_degree"] < 2 and m["edges"] < 6, True),
    ("require paths > 2", lambda m: m["paths"] > 2, False),
    ("require edges < 4", lambda m: m["edges"] < 4, False),
])
def test_node_cell_strict_bounds_and_other_filters(filters, keep, unique):
    assert_space_is(nflc.loads(node_space(filters, nodes=4)), brute_node_space(4, NODE_OPS, keep, unique))


def test_the_fast_path_and_the_walk_agree_with_an_always_true_filter():
    fast = nflc.loads(node_space("require edges <= 10\n unique"))  # 10 pairs: always true
    walked = nflc.loads(node_space("require edges <= 10\n require dead_edges <= 99\n unique"))  # dead_edges: the walk
    expected = brute_node_space(5, NODE_OPS, lambda m: True, unique=True)
    assert_space_is(fast, expected)
    assert_space_is(walked, expected)


def test_the_node_cell_fast_path_compares_ops_by_what_they_compute():
    # c3b is c3 under another name: one op for `unique`
    expected = brute_node_space(4, ["c3", "c3b", "mp"], lambda m: True, unique=True,
                                computes=lambda label: "c3" if label == "c3b" else label)
    assert_space_is(nflc.loads(node_space("unique", nodes=4, node_ops="c3 | c3b | mp")), expected)


def test_node_cell_counts_by_hand():
    """A 3-node cell (X0, X1, X2) with ops c3 | mp: edges 0->1, 0->2, 1->2 give 8 edge sets,
    of which those reaching X2 are {02}, {01 12}, {02 01}, {02 12}, {01 02 12} (5), each
    with 2 ops for X1. {02} and {02 01} and {02 12} prune to the edge 0 -> 2 alone (X1 off
    every path): one class, X1's op irrelevant. So `unique` keeps 1 + 2 + 2 = 5 graphs:
    {02}, {01 12} x 2 ops, {01 02 12} x 2 ops."""
    sp = nflc.loads(node_space("unique", nodes=3))
    assert sp.count() == 5 == len(list(sp))
    plain = nflc.loads(node_space("", nodes=3))
    assert plain.count() == 5 * 2 == len(list(plain))
    assert math.prod(plain.radices) == 2**3 * 2


# ---------------------------------------------------------------- two-input concat cells with pick


def pick_space(filters: str) -> str:
    return f"""
    space d {{
        input [3, 8, 8]
        classes 3
        bias false
        c in {{4, 8}}
        op mp = max_pool(3) >> batchnorm(affine=false)
        op sep = sep_conv(3, affine=false)
        cell n(w) {{
            inputs 2
            nodes 4
            channels w
            edge * : mp | skip | sep
            pick 2
            output concat
        }}
        network = conv2d(3, 6) >> batchnorm >> n(c) x2 >> global_avg_pool >> linear(classes)
        {filters}
    }}"""


PICK_OPS = ["mp", "skip", "sep"]


def brute_pick_space(keep: Callable[[dict], bool], unique: bool) -> list[str]:
    """Ids of the space above: nodes X2, X3 each pick 2 of their inputs (2-subsets in
    lexicographic order, then the two edges' ops, the first edge's most significant; X2 the
    more significant node). The cell's graph (docs/LANGUAGE.md, "Graphs") adds a source `in`
    feeding X0 and X1 (preprocessing, parameterized) and an output `out` fed by X2 and X3
    (concatenation); `sep` is parameterized, `mp` and `skip` are not. `edges` and
    `in_degree` leave the frame out."""
    node_choices = {t: [tuple(zip(subset, ops, strict=True)) for subset in itertools.combinations(range(t), 2)
                        for ops in itertools.product(range(3), repeat=2)] for t in (2, 3)}
    kept = []
    for c in (4, 8):
        classes = Classes()
        for x2, x3 in itertools.product(node_choices[2], node_choices[3]):
            picked = [(s, 2, PICK_OPS[o]) for s, o in x2] + [(s, 3, PICK_OPS[o]) for s, o in x3]
            # graph nodes: in = "in", X0..X3 = 0..3, out = "out"
            frame = [("in", 0, "pre"), ("in", 1, "pre"), (2, "out", "cat"), (3, "out", "cat")]
            g = nx.DiGraph()
            g.add_nodes_from([("in", {"role": "in"}), (0, {"role": "x0"}), (1, {"role": "x1"}), (2, {"role": "mid"}),
                              (3, {"role": "mid"}), ("out", {"role": "out"})])
            g.add_edges_from((s, t, {"op": op}) for s, t, op in picked + frame)
            depths = [sum(g.edges[e]["op"] in ("pre", "sep") for e in zip(p, p[1:], strict=False))
                      for p in nx.all_simple_paths(g, "in", "out")]
            into = Counter(t for _, t, _ in picked)
            m = {"paths": len(depths), "depth": max(depths), "min_depth": min(depths),
                 "mean_depth": Fraction(sum(depths), len(depths)), "skip_paths": depths.count(0), "dead_edges": 0,
                 "edges": len(picked), "in_degree": max(into.values())}
            if not keep(m) or (unique and not classes.is_new(g)):
                continue
            groups = {t: [f"{op}~{s}" for s, tt, op in sorted(picked) if tt == t] for t in (2, 3)}
            kept.append(f"{c};" + cell_id(groups, 2, 3))
    return kept


@pytest.mark.parametrize("filters, keep", [
    ("require paths < 5", lambda m: m["paths"] < 5),  # 162 of 486, 90 under unique
    ("require paths > 4", lambda m: m["paths"] > 4),
    ("require mean_depth < 2.5\n require depth > 2", lambda m: m["mean_depth"] < Fraction(5, 2) and m["depth"] > 2),
    ("require edges == 4\n require in_degree < 3\n require skip_paths < 1", lambda m: True),
    ("require min_depth > 1", lambda m: m["min_depth"] > 1),
])
@pytest.mark.parametrize("unique", [False, True])
def test_two_input_pick_cells_with_a_numeric_choice_and_filters(filters, keep, unique):
    sp = nflc.loads(pick_space(filters + ("\n unique" if unique else "")))
    expected = brute_pick_space(keep, unique)
    assert sp.raw_count() == 2 * 9 * 27 and 0 < len(expected)
    assert_space_is(sp, expected)
