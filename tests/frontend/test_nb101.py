"""Node cells (`node * : ...`, NAS-Bench-101's cells) and specs/nb101.nfl (issue #14): the
count against NAS-Bench-101's published 423624 unique graphs, the dedicated enumerator
against brute force (networkx isomorphism on pruned graphs), ids, and bad input."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

import nflc
from nflc.space import graph as graphs
from nflc.space import labelled_dags
from nflc.errors import NflcError

from .conftest import SPECS, check_mistake, cli, edit

NB101_UNIQUE_GRAPHS = 423624  # Ying et al. 2019, NAS-Bench-101's number of unique graphs


@pytest.fixture(scope="module")
def nb101() -> nflc.Space:
    return nflc.load(SPECS / "nb101.nfl")


def test_count_is_nb101s_published_number():
    # its time (about a second) is measured by benchmarks/bench_responsiveness.py
    res = cli("count", SPECS / "nb101.nfl")
    assert res.exit_code == 0 and res.output.strip().splitlines()[-1] == str(NB101_UNIQUE_GRAPHS), res.output


def _brute_force(nodes: int, n_ops: int, max_edges: int | None) -> list[int]:
    """The first raw index of every class, by networkx isomorphism on pruned labelled graphs."""
    pairs = graphs.dag_pairs(nodes)
    mids, out = nodes - 2, nodes - 1
    classes: list[tuple[nx.DiGraph, int]] = []
    for edge_code in range(1 << len(pairs)):
        edges = [pr for p, pr in enumerate(pairs) if (edge_code >> (len(pairs) - 1 - p)) & 1]
        alive, live = graphs.prune_dag(nodes, edges)
        if not live or (max_edges is not None and len(live) > max_edges):
            continue
        for op_code, labels in enumerate(itertools.product(range(n_ops), repeat=mids)):
            g = nx.DiGraph()
            g.add_nodes_from((v, {"op": "in" if v == 0 else "out" if v == out else labels[v - 1]}) for v in alive)
            g.add_edges_from(live)
            if not any(nx.is_isomorphic(g, h, node_match=lambda a, b: a["op"] == b["op"]) for h, _ in classes):
                classes.append((g, edge_code * n_ops ** mids + op_code))
    return sorted(i for _, i in classes)


@pytest.mark.parametrize("nodes, n_ops, max_edges", [(3, 2, None), (4, 2, None), (4, 3, 3), (5, 2, None), (5, 2, 4),
                                                     (5, 1, 5)])
def test_enumerator_matches_brute_force(nodes, n_ops, max_edges):
    reps, keys = labelled_dags.unique_labelled_dags(nodes, n_ops, max_edges, with_keys=True)
    assert reps.tolist() == _brute_force(nodes, n_ops, max_edges)
    # the canonical form of one cell agrees with the vectorised one
    assert [labelled_dags.labelled_dag_key(nodes, n_ops, int(i)) for i in reps] == keys


def test_small_unlabelled_counts_are_known_numbers():
    # one op: unique pruned DAGs with a fixed source and sink; 3 nodes: 0->2, 0->1->2, both
    assert len(labelled_dags.unique_labelled_dags(3, 1)) == 3
    assert len(labelled_dags.unique_labelled_dags(2, 1)) == 1


SMALL = """\
space s {
    input [3, 8, 8]
    classes 10
    bias false
    op c3 = conv2d(3) >> batchnorm >> relu
    cell m {
        nodes 5
        channels 8
        edge * : zero | skip
        node * : c3 | max_pool(3) as mp
    }
    network = conv2d(3, 8) >> m x2 >> global_avg_pool >> linear(classes)
    require edges <= 5
    unique
}
"""


def test_the_fast_path_agrees_with_walking_the_cell():
    fast = nflc.loads(SMALL)
    # `require dead_edges >= 0` takes the enumerator off (dead edges are not one value per
    # isomorphism class, so that filter walks the choices)
    walked = nflc.loads(SMALL.replace("    unique", "    require dead_edges >= 0\n    unique"))
    cell = fast.instances[0]
    assert fast.cell(fast.cell_of[cell].name).node_enumeration is not None
    assert walked.cell(walked.cell_of[cell].name).node_enumeration is None
    assert fast.count() == walked.count() == len(_brute_force(5, 2, 5))
    assert [a.index for a in fast] == [a.index for a in walked]


def test_without_unique_every_cell_with_a_path_counts():
    sp = nflc.loads(SMALL.replace("    require edges <= 5\n    unique\n", ""))
    n = 0
    for edge_code in range(1 << 10):
        edges = [pr for p, pr in enumerate(graphs.dag_pairs(5)) if (edge_code >> (9 - p)) & 1]
        n += bool(graphs.prune_dag(5, edges)[1])
    assert sp.count() == n * 2 ** 3


def test_ids_round_trip_and_name_ops_and_inputs(nb101):
    for a in nb101.sample(20, seed=3):
        assert nb101.architecture(a.id).index == a.index
        assert a.rejection is None
    a = nb101.architecture("conv3x3_bn_relu(0)+conv1x1_bn_relu(1)+maxpool3x3(0,2)+conv3x3_bn_relu()"
                           "+conv3x3_bn_relu()+(3)")
    assert a.id.startswith("conv3x3_bn_relu(0)+conv1x1_bn_relu(1)+maxpool3x3(0,2)+")
    g = a.graph
    assert g.nodes[2]["op"] == "conv1x1_bn_relu"
    assert {(s, t) for s, t, k in g.in_edges(3, data="kind") if k != "zero"} == {(0, 3), (2, 3)}


def test_an_isomorphic_cell_is_rejected_naming_its_representative(nb101):
    # two nodes in parallel, swapped ops: one class
    one = nb101.architecture("conv3x3_bn_relu(0)+conv1x1_bn_relu(0)+conv3x3_bn_relu()+conv3x3_bn_relu()"
                             "+conv3x3_bn_relu()+(1,2)")
    two = nb101.architecture("conv1x1_bn_relu(0)+conv3x3_bn_relu(0)+conv3x3_bn_relu()+conv3x3_bn_relu()"
                             "+conv3x3_bn_relu()+(1,2)")
    first, second = sorted([one, two], key=lambda a: a.index)
    assert second.rejection is not None and "isomorphic" in second.rejection
    rep = nb101.architecture(nb101.cell(nb101.cell_of[nb101.instances[0]].name).representative(second.index))
    assert rep.rejection is None and rep.index <= first.index


@pytest.mark.parametrize("text, match", [
    ("conv3x3_bn_relu(0)+(1)", "expected 6 groups"),
    ("conv3x3_bn_relu(0)+conv3x3_bn_relu(1)+conv3x3_bn_relu(2)+conv3x3_bn_relu(3)+conv3x3_bn_relu(4)+maxpool3x3(5)",
     "names an op"),
    ("conv5x5(0)+conv3x3_bn_relu(1)+conv3x3_bn_relu(2)+conv3x3_bn_relu(3)+conv3x3_bn_relu(4)+(5)",
     "'conv5x5' is not an op of node 1"),
    ("conv3x3_bn_relu(1)+conv3x3_bn_relu(1)+conv3x3_bn_relu(2)+conv3x3_bn_relu(3)+conv3x3_bn_relu(4)+(5)",
     "is not an earlier node"),
])
def test_bad_ids(nb101, text, match):
    with pytest.raises(NflcError, match=match):
        nb101.architecture(text)


def test_a_cell_without_a_path_is_not_in_the_space(nb101):
    a = nb101.architecture(0)
    assert "no input-output path" in a.rejection


CASES = [
    ("an op on an edge of a node cell", edit(SMALL, "edge * : zero | skip", "edge * : zero | c3"), ("c3\n", 1, 0),
     "in a node cell an edge only exists or not", "write 'edge * : zero | skip'"),
    ("an op for the input node", edit(SMALL, "node * :", "node 0 : c3\n        node * :"), ("0 : c3", 1, 0),
     "node 0 is the cell's input", None),
    ("a node without ops", edit(SMALL, "node * :", "node 1 :"), ("cell m", 1, 0),
     "node X2 of node cell 'm' chooses no op", "node * : ..."),
    ("a zero node op", edit(SMALL, "max_pool(3) as mp", "zero"), ("zero\n", 1, 0),
     "node op 'zero' is zero", None),
    ("a node op that changes the channels", edit(SMALL, "max_pool(3) as mp", "conv2d(3, 16) as wide"),
     ("conv2d(3, 16)", 1, 0), "node op 'wide' in cell 'm' changes the shape", "leave 'out' to default"),
    ("a node op with an id-breaking label", edit(SMALL, "max_pool(3) as mp", "max_pool(3)"),
     ("max_pool(3)\n", 1, 0), "cannot name itself in architecture ids", "as NAME"),
    ("a node cell on a flat input", edit(SMALL, "conv2d(3, 8) >> m x2", "flatten >> m x2"),
     ("m x2", 1, 0), "needs an image-shaped input", None),
    ("a node out of range", edit(SMALL, "node * :", "node 7 :"), ("7 :", 1, 0), "node 7 is out of range", None),
    ("an unknown edge metric", edit(SMALL, "require edges", "require edgez"), ("edgez", 1, 0),
     "unknown", "did you mean 'edges'?"),
]


@pytest.mark.parametrize("name, text, where, message, hint", CASES, ids=[c[0] for c in CASES])
def test_user_mistake(spec, name, text, where, message, hint):
    check_mistake(spec(text), text, where, message, hint)


def test_node_is_still_a_name():
    sp = nflc.loads(edit(SMALL, "classes 10", "classes 10\n    node = 3", "conv2d(3, 8)", "conv2d(node, 8)"))
    assert sp.count() > 0


def test_nb101_ir_lints_clean(nb101):
    assert nb101.ir.lint() == []
    assert "node 1: conv3x3_bn_relu=" in nb101.ir.to_text()


def test_require_in_degree_against_networkx():
    """`require in_degree <= 2` keeps exactly the node-cell choices whose computing graph
    (nodes on an input-output path) has no node with more than two incoming edges."""
    text = """
space s {
    input [3, 8, 8]
    classes 2
    op conv = conv2d(3) >> batchnorm >> relu
    cell c {
        nodes 5
        edge * : zero | skip
        node * : conv | max_pool(3) as pool
    }
    network = conv2d(3, 4) >> c >> global_avg_pool >> linear(classes)
    require in_degree <= 2
}
"""
    sp = nflc.loads(text)
    full = nflc.loads(text.replace("    require in_degree <= 2\n", ""))
    pairs = graphs.dag_pairs(5)
    kept = 0
    for i in range(full.raw_count()):
        a = full.architecture(i)
        if a.rejection is not None:
            continue
        g = nx.DiGraph([p for p, d in zip(pairs, a.choices["c"], strict=False) if d])
        live = [(s_, t) for s_, t in g.edges if nx.has_path(g, 0, s_) and g.has_node(4) and nx.has_path(g, t, 4)]
        degree = max((sum(1 for e in live if e[1] == v) for v in range(5)), default=0)
        kept += degree <= 2
    assert 0 < sp.count() == kept < full.count()
