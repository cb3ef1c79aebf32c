"""Node cells (NAS-Bench-101's: ops on nodes, 1x1 projections from the cell input) have path
depths through their node ops and projections: by hand on small cells, and against the
layers nasbench-pytorch's reference cell applies along every path of its matrix."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import nflc
from nflc.space.topology import topology

NODE_CELL = """
space s {
    input [3, 8, 8]
    classes 10
    op c3 = conv2d(3) >> batchnorm >> relu
    op mp = max_pool(3)
    cell block(c) {
        nodes 4
        channels c
        edge * : zero | skip
        node * : c3 | mp
    }
    network = conv2d(3, 8) >> block(8) >> global_avg_pool >> linear(classes)
}
"""


@pytest.fixture(scope="module")
def small():
    return nflc.loads(NODE_CELL)


def test_depths_through_node_ops_and_projections_by_hand(small):
    # X0 -> X1 (c3) -> X2 (mp) -> X3 (output), and X0 -> X3:
    #   path 0-1-2-3: projection + c3 + mp (no weights) = 2 layers; path 0-3: projection = 1
    arch = small.architecture("c3(0)+mp(1)+(0,2)")
    topo = arch.topology()
    assert topo.paths == 2 and topo.depths == (1, 2) and topo.sum_depth == 3
    assert topo == topology(arch.graph)  # the graph and the edge tuples agree
    # X1 max pool, X2 conv: 0-1-2-3 = projection + mp + c3 = 2; 0-2-3 = projection + c3 = 2
    arch = small.architecture("mp(0)+c3(0,1)+(2)")
    assert arch.topology().depths == (2, 2)
    # only max pools: a path still passes its projection
    assert small.architecture("mp(0)+mp(1)+(2)").topology().depths == (1,)
    # the analysis reports them (mean depth, total path depth as expressivity)
    from nflc.analysis.analyze import analyze

    res = analyze(small, data="none", samples=4, measure="none", archs=[small.architecture("c3(0)+mp(1)+(0,2)")])
    row = res.architectures[0]
    assert row.topology["mean_depth"] == 1.5 and row.scores["expressivity"].value == 3


def test_graph_marks_node_ops_and_projections(small):
    g = small.architecture("c3(0)+mp(1)+(0,2)").graph
    assert g.nodes[1]["parameterized"] is True and g.nodes[2]["parameterized"] is False
    assert g.edges[0, 1].get("projection") and g.edges[0, 3].get("projection")
    assert not g.edges[1, 2].get("projection") and not g.edges[2, 3].get("projection")


def test_require_depth_counts_node_ops():
    spec = NODE_CELL.replace("    network =", "    require depth >= 3\n    network =")
    sp = nflc.loads(spec)
    # brute force over every choice, with the depth rule by hand on the cell's paths
    def deepest(arch):
        g = arch.graph
        best = 0
        for path in nx.all_simple_paths(nx.DiGraph([(s, t) for s, t, a in g.edges(data=True) if a["kind"] != "zero"]), 0, 3):
            layers = 1 + sum(1 for v in path[1:-1] if g.nodes[v]["parameterized"])  # the projection + conv nodes
            best = max(best, layers)
        return best

    full = nflc.loads(NODE_CELL)
    expected = sum(1 for a in full if deepest(a) >= 3)
    assert expected > 0 and sp.count() == expected


def nflc_id(matrix, ops) -> str:
    """A NAS-Bench-101 (matrix, ops) of up to 7 vertices as an id of specs/nb101.nfl (as in
    tests/backend/test_nb101_backend.py)."""
    n = len(matrix)
    pos = list(range(n - 1)) + [6]
    groups = {pos[j]: (ops[j].replace("-", "_") if j < n - 1 else "")
              + "(" + ",".join(str(pos[i]) for i in range(j) if matrix[i][j]) + ")" for j in range(1, n)}
    return "+".join(groups.get(t, "conv3x3_bn_relu()") for t in range(1, 7))


def test_path_depths_equal_the_reference_cells_conv_layers(shared_data):
    """For NAS-Bench-101 architectures of the benchmark file: every input-output path of the
    matrix passes the convolutions nasbench-pytorch's Cell applies (the projection of an
    edge from the input, each conv vertex's op); their multiset is nflc's depths."""
    import torch.nn as nn

    reference = pytest.importorskip("nasbench_pytorch.model.model", reason="nasbench-pytorch (test extra) not installed")

    space = nflc.load(Path(__file__).resolve().parents[2] / "specs" / "nb101.nfl")
    entries = json.loads(Path(shared_data("nb101/nb101_cifar10.json")).read_text())["architectures"][:25]
    for entry in entries:
        cell = reference.Cell(reference.ModelSpec(np.array(entry["matrix"]), entry["ops"]), 8, 8)
        matrix = np.asarray(cell.matrix)  # the reference prunes vertices on no input-output path
        convs = lambda m: sum(isinstance(x, nn.Conv2d) for x in m.modules())  # noqa: E731
        last = len(matrix) - 1
        dag = nx.DiGraph([(i, j) for i in range(len(matrix)) for j in range(len(matrix)) if matrix[i, j]])
        depths = sorted(convs(cell.input_op[p[1]]) + sum(convs(cell.vertex_op[v]) for v in p[1:-1])
                        for p in nx.all_simple_paths(dag, 0, last))
        arch = space.architecture(nflc_id(entry["matrix"], entry["ops"]))
        assert list(arch.topology(space.instances[0]).depths) == depths, entry["matrix"]
