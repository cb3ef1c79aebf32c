"""DARTS's cells (`inputs 2`, `pick`, `output concat`, `stride 2`) and specs/darts.nfl
(issue #14): the count against the issue's (180 * 7^8)^2, counting as a product against
brute force on small cells, the choice encoding, ids, and every new kind of mistake."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import pytest

import nflc
from nflc.space.radix import decode

from .conftest import SPECS, check_mistake, cli, edit

DARTS_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5"]


@pytest.fixture(scope="module")
def darts() -> nflc.Space:
    return nflc.load(SPECS / "darts.nfl")


def test_count_is_the_issues_number_at_once():
    # nodes 2..5 pick 2 distinct of their 2, 3, 4, 5 possible inputs, one of 7 ops on each
    per_cell = math.prod(math.comb(j, 2) * 7 ** 2 for j in range(2, 6))
    assert per_cell == 180 * 7 ** 8
    # a product of per-cell counts, never an enumeration (its time: benchmarks/bench_responsiveness.py)
    res = cli("count", SPECS / "darts.nfl")
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(per_cell ** 2) == "1076746950455072400"


SMALL = """
space s {
    input [3, 8, 8]
    classes 2
    bias false
    cell c(w) {
        inputs 2
        nodes NODES
        channels w
        edge * : sep_conv(3) as sep | max_pool(3) as pool | skip
        EXTRA
        pick PICK
        output concat
    }
    network = conv2d(3, 4) >> batchnorm >> c(4) x2 >> global_avg_pool >> linear(classes)
}
"""


def _small(nodes: int, pick: int, extra: str = "") -> nflc.Space:
    return nflc.loads(edit(SMALL, "NODES", str(nodes), "PICK", str(pick), "EXTRA", extra))


def _brute(nodes: int, pick: int, n_ops: int, ops_of=lambda s, t: None) -> list[tuple]:
    """Every choice by enumeration: per node, which `pick` earlier nodes feed it and each one's op."""
    per_node = []
    for t in range(2, nodes):
        options = []
        for sub in itertools.combinations(range(t), pick):
            counts = [ops_of(s, t) or n_ops for s in sub]
            options += [tuple(zip(sub, o, strict=True)) for o in itertools.product(*(range(c) for c in counts))]
        per_node.append(options)
    return list(itertools.product(*per_node))


@pytest.mark.parametrize("nodes, pick", [(3, 1), (3, 2), (4, 2), (5, 2), (5, 1), (4, 1)])
def test_pick_counts_as_a_product_equal_to_enumeration(nodes, pick):
    sp = _small(nodes, pick)
    brute = _brute(nodes, pick, 3)
    assert sp.count() == len(brute)
    # the encoding is a bijection onto exactly these choices
    cell = sp.cell_of["c"]
    seen = set()
    for i in range(sp.count()):
        choice = sp.cell(cell.name).choice(i)
        picked = tuple(tuple((e.src, d - 1) for e, d in zip(cell.edges, choice, strict=True) if d and e.dst == t)
                       for t in range(2, nodes))
        seen.add(picked)
        assert cell.compress(choice) == decode(i, cell.radices())
    assert seen == set(brute)


def test_edges_with_different_choice_counts_count_per_subset():
    sp = _small(4, 2, "edge 0 -> 3 : skip")  # one candidate edge with a single op
    brute = _brute(4, 2, 3, ops_of=lambda s, t: 1 if (s, t) == (0, 3) else None)
    assert sp.count() == len(brute) == 9 * (3 * 3 + 3 + 3)  # node 2: C(2,2)*9; node 3: pairs with 0->3 have 3


def test_ids_round_trip_and_name_only_picked_edges(darts):
    for index in [0, 1, 7, 123456789, darts.raw_count() // 3, darts.raw_count() - 1]:
        a = darts.architecture(index)
        normal, reduce = a.id.split(";")
        for part in (normal, reduce):
            groups = part.split("+")
            assert len(groups) == 4
            for t, g in enumerate(groups, start=2):
                items = g.strip("|").split("|")
                assert len(items) == 2  # exactly the two picked inputs
                srcs = [int(x.rpartition("~")[2]) for x in items]
                assert srcs == sorted(set(srcs)) and all(0 <= s < t for s in srcs)
                assert all(x.rpartition("~")[0] in DARTS_OPS for x in items)
        assert darts.architecture(a.id).index == index


def test_genotype_order_does_not_matter_but_duplicates_do(darts):
    a = darts.architecture(987654321)
    normal, reduce = a.id.split(";")
    groups = normal.split("+")
    x, y = groups[0].strip("|").split("|")
    swapped = "+".join([f"|{y}|{x}|", *groups[1:]]) + ";" + reduce
    assert darts.architecture(swapped).index == a.index
    with pytest.raises(nflc.errors.SpaceError, match="appears twice"):
        darts.architecture("+".join([f"|{x}|{x}|", *groups[1:]]) + ";" + reduce)
    one = "+".join([f"|{x}|", *groups[1:]]) + ";" + reduce
    with pytest.raises(nflc.errors.SpaceError, match="picks 1 edges, not 2"):
        darts.architecture(one)
    with pytest.raises(nflc.errors.SpaceError, match="not a choice"):
        darts.architecture(a.id.replace("max_pool_3x3", "none", 1) if "max_pool_3x3" in a.id else
                           a.id.replace("sep_conv_3x3", "none", 1).replace("skip_connect", "none", 1))


@pytest.mark.filterwarnings("ignore:The hashes produced")
def test_unique_on_a_small_two_input_cell_matches_networkx_isomorphism():
    text = edit(SMALL, "NODES", "5", "PICK", "2", "EXTRA", "", "network =", "unique\n    network =",
                "sep_conv(3) as sep | max_pool(3) as pool | skip", "sep_conv(3) as sep | skip")
    sp = nflc.loads(text)
    cell = sp.cell_of["c"]
    buckets: dict[str, list[nx.DiGraph]] = {}
    n_classes = 0
    for i in range(sp.raw_count()):  # 1152 cells: X0, X1 fixed, intermediates renumbered freely
        choice = sp.cell(cell.name).choice(i)
        g = nx.DiGraph()
        g.add_nodes_from((v, {"role": str(v) if v < 2 else "mid"}) for v in range(5))
        g.add_edges_from((e.src, e.dst, {"op": str(d)}) for e, d in zip(cell.edges, choice, strict=True) if d)
        key = nx.weisfeiler_lehman_graph_hash(g, node_attr="role", edge_attr="op")
        same = buckets.setdefault(key, [])
        if not any(nx.is_isomorphic(g, h, node_match=lambda a, b: a["role"] == b["role"],
                                    edge_match=lambda a, b: a["op"] == b["op"]) for h in same):
            same.append(g)
            n_classes += 1
    assert sp.raw_count() == 1152
    assert sp.count() == n_classes < 1152


def test_reduction_cells_halve_and_two_input_cells_read_the_previous_input(darts):
    ir = darts.ir
    cells = [st for st in ir.network if st.kind == "cell"]
    assert [st.cell.split("(")[0] for st in cells] == ["normal", "normal", "reduce", "normal", "normal", "reduce",
                                                       "normal", "normal"]
    assert [st.shape_out for st in cells] == [[128, 32, 32]] * 2 + [[256, 16, 16]] * 3 + [[512, 8, 8]] * 3
    # X0 comes from the input of the cell before (the stem's output for the first cell)
    assert [st.shape_prev for st in cells] == [[96, 32, 32], [96, 32, 32], [128, 32, 32], [128, 32, 32],
                                               [256, 16, 16], [256, 16, 16], [256, 16, 16], [512, 8, 8]]
    pre0 = [[p.name for p in st.preprocess[0]] for st in cells]
    assert pre0[3] == ["factorized_reduce"] and pre0[6] == ["factorized_reduce"]  # after each reduction
    assert all(p == ["relu", "conv2d", "batchnorm"] for i, p in enumerate(pre0) if i not in (3, 6))
    reduce = ir.cells["reduce(c=64)"]
    for e in reduce.edges:
        strides = {c.label: [p.args.get("stride") for p in c.prims if "stride" in p.args] for c in e.choices[1:]}
        assert all(v == ([2] if e.src < 2 else [1]) for v in strides.values()), (e.src, strides)


BASE = (SPECS / "darts.nfl").read_text()

CASES = [
    ("pick too large", edit(BASE, "pick    2                # each", "pick    3                # each"),
     ("pick    3",), "node X2 of cell 'normal' has 2 incoming edges but picks 3", "lower 'pick' to 2"),
    ("three inputs", edit(BASE, "inputs  2                # X0", "inputs  3                # X0"),
     ("3                # X0",), "has 3 inputs; a cell takes one input or two", "write 'inputs 2'"),
    ("two inputs without concat", edit(BASE, "        output  concat           # X2..X5 concatenated\n", ""),
     ("inputs  2                # X0",), "two-input cell 'normal' needs 'output concat'", "add 'output concat'"),
    ("unknown output", edit(BASE, "output  concat           # X2", "output  stack           # X2"),
     ("stack",), "a cell's output is 'sum' (its last node) or 'concat'", "write 'output concat'"),
    ("zero among picked ops", edit(BASE, "| dil_conv_3x3 | dil_conv_5x5\n        pick", "| none\n        pick"),
     ("none\n        pick",), "offers 'none', which is no edge", "leave zero out"),
    ("reduction of a stride-less op", edit(BASE, "skip_reduce as skip_connect | sep_conv_3x3 | sep_conv_5x5\n"
                                                 "               | dil_conv_3x3 | dil_conv_5x5\n        pick    2\n"
                                                 "        output  concat\n        stride",
                                           "skip_connect | sep_conv_3x3 | sep_conv_5x5\n"
                                           "               | dil_conv_3x3 | dil_conv_5x5\n        pick    2\n"
                                           "        output  concat\n        stride"),
     ("skip_connect | sep_conv_3x3", 2), "op 'skip_connect' on edge 0 -> 2 of reduction cell 'reduce' has no primitive",
     "factorized_reduce"),
    ("edge into an input", edit(BASE, "        pick    2                # each", "        edge 0 -> 1 : sep_conv_3x3\n"
                                "        pick    2                # each"),
     ("edge 0 -> 1",), "edge 0 -> 1 ends at an input of cell 'normal'", "X0..X1 are the cell's inputs"),
    ("map of X0 neither equal nor double", edit(BASE, ">> normal(c) x2 >> reduce(2 * c)",
                                                ">> normal(c) >> max_pool(4, stride=4) >> normal(c) >> reduce(2 * c)"),
     ("normal(c) >> reduce",), "takes X0 from the input of the cell before it, [96, 32, 32]", "only a reduction"),
    ("bad stride", edit(BASE, "stride  2                # edges", "stride  3                # edges"),
     ("3                # edges",), "stride 3: a cell's stride is 1 or 2", None),
    ("stride without concat", edit(BASE, "        output  concat\n        stride", "        stride"),
     ("inputs  2", 2), "two-input cell 'reduce' needs 'output concat'", None),
]


@pytest.mark.parametrize("name, text, where, message, hint", CASES, ids=[c[0] for c in CASES])
def test_user_mistake(spec, name, text, where, message, hint):
    check_mistake(spec(text), text, where, message, hint)


def test_existing_specs_keep_their_text():
    # `affine` is a new parameter of batchnorm whose default stays out of the IR's text, so
    # the spec hash (stored in verify's databases) of every older spec is unchanged
    sp = nflc.load(SPECS / "nb201.nfl", space="nb201")
    assert "affine" not in sp.ir.to_text()
    assert "batchnorm(affine=false)" in nflc.load(SPECS / "darts.nfl").ir.to_text()


def test_pick_encoding_against_listing_subsets():
    """A node's digit is its K-subsets in lexicographic order, each a block of the picked
    edges' ops (the first edge's most significant); computed by a recurrence, it equals
    listing them."""
    import random

    from nflc.ir.model import _pick_table, _rank_pick, _unrank_pick

    rng = random.Random(0)
    for _ in range(200):
        m = rng.randint(1, 6)
        k = rng.randint(1, m)
        sizes = tuple(rng.randint(1, 4) for _ in range(m))
        listed = [list(zip(sub, ops, strict=True)) for sub in itertools.combinations(range(m), k)
                  for ops in itertools.product(*(range(sizes[p]) for p in sub))]
        assert _pick_table(sizes, k)[0][k] == len(listed)
        for d, want in enumerate(listed):
            assert _unrank_pick(sizes, k, d) == want
            assert _rank_pick(sizes, k, want) == d


def test_a_large_two_input_cell_counts_at_once():
    sp = _small(62, 2)  # 60 intermediate nodes: about 10^235 choices per cell
    expected = math.prod(math.comb(t, 2) * 3 ** 2 for t in range(2, 62))
    assert sp.count() == expected
    a = sp.architecture(expected // 7)
    assert sp.architecture(a.id).index == a.index


NUMERIC_PICK = """
space t {
    input [3, 8, 8]
    classes 10
    k in {1, 2}
    cell normal(c) {
        inputs 2
        nodes 4
        channels c
        edge * : max_pool(3) | sep_conv(3)
        pick k
        output concat
    }
    network = conv2d(3, 12) >> batchnorm >> normal(4) >> global_avg_pool >> linear(classes)
}
"""


def test_a_numeric_choice_may_not_change_what_a_cell_chooses(spec):
    # an index decodes the cells' digits before the numeric values: `pick k` would be
    # counted with k = 1 for both values (found by review: 48 instead of 72)
    check_mistake(spec(NUMERIC_PICK), NUMERIC_PICK, ("k in {1, 2}",),
                  "with k = 2 (", "a numeric choice may change widths, not what a cell chooses")
    nodes = edit(NUMERIC_PICK, "k in {1, 2}", "k in {4, 5}", "nodes 4", "nodes k", "pick k", "pick 1")
    check_mistake(spec(nodes), nodes, ("k in {4, 5}",), "cell 'normal' has other choices than with k = 4", None)
    widths = edit(NUMERIC_PICK, "k in {1, 2}", "k in {4, 8}", "pick k", "pick 1", "normal(4)", "normal(k)")
    assert nflc.loads(widths).count() == 2 * 2 * (2 * 3 * 2)


def test_placements_sharing_a_choice_must_pick_alike(spec):
    text = edit(NUMERIC_PICK, "    k in {1, 2}\n", "", "normal(c)", "normal(c, p)", "pick k", "pick p",
                "normal(4) >>", "normal(4, 1) >> normal(4, 2) >>")
    check_mistake(spec(text), text, ("normal(4, 2)",), "share one choice but their edges differ",
                  "independent of the cell's arguments")


def test_a_one_input_reduction_cell_without_channels():
    text = edit(NUMERIC_PICK, "    k in {1, 2}\n", "", "inputs 2\n", "", "channels c\n", "", "pick k\n", "",
                "output concat\n", "output concat\n        stride 2\n", "normal(c)", "normal",
                "max_pool(3) | sep_conv(3)", "max_pool(3) as mp | sep_conv(3) as sep", "normal(4)", "normal")
    sp = nflc.loads(text)
    assert sp.count() == 2 ** 6
    a = sp.architecture(37)
    net = a.to_module()
    assert a.params == sum(p.numel() for p in net.parameters())
    assert sp.ir.network[2].shape_out == [36, 4, 4]  # three nodes of the input's 12 channels at half the map


def test_network_graph_of_two_input_cells(darts):
    a = darts.architecture(77)
    g = a.network_graph
    cells = [i for i, st in enumerate(darts.ir.network) if st.kind == "cell"]
    for i in cells:
        st = darts.ir.network[i]
        cell = darts.ir.cells[st.cell]
        c, hw = cell.channels, cell.node_shapes(st.shape_in)[-1][1:]
        j = sum(darts.ir.network[k].instance == st.instance for k in cells if k <= i)  # its placement, 1-based
        assert g.nodes[f"%{i}.out"] == {"op": "concat", "shape": st.shape_out, "cell": st.cell,
                                        "label": f"{st.instance}[{j}].out"}
        assert g.nodes[f"%{i}.X0"]["shape"] == [c, *st.shape_in[1:]]
        assert all(g.nodes[f"%{i}.X{k}"]["shape"] == [c, *hw] for k in range(2, 6))
        pre = [d["params"] for _, _, d in g.in_edges([f"%{i}.X0", f"%{i}.X1"], data=True)]
        assert sum(pre) == st.params
    assert nx.is_directed_acyclic_graph(g)


def test_a_negative_index_is_out_of_range(darts):
    with pytest.raises(nflc.errors.SpaceError, match=r"index -1 is out of range: space 'darts' has indices 0\.\.1076746950455072399"):
        darts.architecture(" -1")


# ------------------------------------------------------------------ every mistake of a run at once

DARTS_TEXT = (SPECS / "darts.nfl").read_text()
NORMAL_OPS = """edge * : max_pool_3x3 | avg_pool_bn as avg_pool_3x3 | skip_reduce as skip_connect | sep_conv_3x3 | sep_conv_5x5
               | dil_conv_3x3 | dil_conv_5x5
        pick    2                # each"""
REDUCE_TAIL = """        edge * : max_pool_3x3 | avg_pool_bn as avg_pool_3x3 | skip_reduce as skip_connect | sep_conv_3x3 | sep_conv_5x5
               | dil_conv_3x3 | dil_conv_5x5
        pick    2
        output  concat
        stride  2"""


def _errors(res) -> list[str]:
    return [line.split(": error: ", 1)[1] for line in res.output.splitlines() if ": error: " in line]


def test_a_zero_in_a_pick_cell_and_a_skip_in_a_stride_2_cell_are_both_reported(spec):
    text = edit(DARTS_TEXT, NORMAL_OPS, "edge * : zero | max_pool_3x3 | sep_conv_3x3\n        pick    2                # each",
                REDUCE_TAIL, REDUCE_TAIL.replace("skip_reduce as skip_connect", "skip"))
    res = cli("check", spec(text))
    assert res.exit_code == 2
    errors = _errors(res)
    assert len(errors) == 2, res.output
    # one error per written choice, naming how many edges offer it (every edge of `edge *`: 14)
    assert errors[0].startswith("edge 0 -> 2 (and 13 more edges) of cell 'normal' offers 'zero', which is no edge")
    assert errors[1].startswith("op 'skip' on edge 0 -> 2 of reduction cell 'reduce' has no primitive that takes a stride")


def test_a_missing_output_concat_and_a_missing_channels_are_both_reported(spec):
    text = edit(DARTS_TEXT, "        output  concat           # X2..X5 concatenated\n", "",
                "        inputs  2\n        nodes   6\n        channels c\n", "        inputs  2\n        nodes   6\n")
    res = cli("check", spec(text))
    assert res.exit_code == 2
    assert _errors(res) == ["two-input cell 'normal' needs 'output concat'", "two-input cell 'reduce' needs 'channels'"]
    both = DARTS_TEXT.replace("        channels c\n", "", 1).replace("        output  concat           # X2..X5 concatenated\n", "")
    assert _errors(cli("check", spec(both))) == ["two-input cell 'normal' needs 'output concat'",
                                                 "two-input cell 'normal' needs 'channels'"]


def test_a_network_mistake_and_the_mistake_of_a_cell_placed_after_it_are_both_reported(spec):
    # the walk over the network stops at the stem's mistake (what follows has no shape);
    # the cells it did not reach are still lowered with their placements' arguments
    text = edit(DARTS_TEXT, ">> batchnorm\n", ">> batchnrm\n", REDUCE_TAIL,
                REDUCE_TAIL.replace("skip_reduce as skip_connect", "skip"))
    errors = _errors(cli("check", spec(text)))  # in source order: the cell is written above the network
    assert len(errors) == 2 and errors[1].startswith("unknown op or cell 'batchnrm'"), errors
    assert "op 'skip' on edge 0 -> 2 of reduction cell 'reduce'" in errors[0]
