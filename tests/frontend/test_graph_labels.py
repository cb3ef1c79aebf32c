"""`nflc graph` of node cells shows each node's op (DOT and GraphML), and the whole network's
nodes carry readable labels (the primitive and its stage; the cell instance, its placement,
the node and a node cell's op) next to their stable keys."""

from __future__ import annotations

import networkx as nx
import pytest

import nflc
from nflc import encodings as enc

from .conftest import SPECS, cli


@pytest.fixture(scope="module")
def nb101():
    return nflc.load(SPECS / "nb101.nfl")


def test_node_cell_dot_and_graphml_name_each_nodes_op(nb101):
    for arch in nb101.sample(3, seed=4):
        matrix, ops = enc.id_to_nb101(arch.id)  # the ops as NAS-Bench-101 writes them, decoded from the id alone
        ops = [o.replace("-", "_") for o in ops]
        dot = cli("graph", SPECS / "nb101.nfl", arch.id).output
        gml = nx.parse_graphml(cli("graph", SPECS / "nb101.nfl", arch.id, "--format", "graphml").output, node_type=int)
        g = arch.graph
        live = [v for v in g if g.nodes[v].get("op")]
        assert len(live) == len(ops) - 2  # every intermediate node of the pruned graph has an op
        for v in live:
            op = g.nodes[v]["op"]
            assert f'"{v}" [label="X{v}: {op}" op="{op}"];' in dot
            assert gml.nodes[v]["op"] == op
        assert sorted(g.nodes[v]["op"] for v in live) == sorted(ops[1:-1])
        assert '"0" [label="X0"];' in dot and f'"{len(g) - 1}" [label="X{len(g) - 1}"];' in dot


def test_network_labels_say_what_each_node_is(nb101):
    arch = nb101.sample(1, seed=1)[0]
    res = cli("graph", SPECS / "nb101.nfl", arch.id, "--network")
    assert res.exit_code == 0
    dot = res.output
    assert '"%0" [label="conv2d #0"];' in dot and '"%6" [label="max_pool #6"];' in dot
    g = arch.network_graph
    cells = [i for i, st in enumerate(nb101.ir.network) if st.kind == "cell"]
    assert len(cells) == 9
    for j, i in enumerate(cells, 1):  # nine placements of the one 'module' instance, in order
        assert g.nodes[f"%{i}.X0"]["label"] == f"module[{j}].X0"
        for v, d in arch.graph.nodes(data=True):
            if d.get("op"):
                assert g.nodes[f"%{i}.X{v}"]["label"] == f"module[{j}].X{v}: {d['op']}"
                assert g.nodes[f"%{i}.X{v}"]["node_op"] == d["op"]
    assert "%3.X2" not in dot.replace('"%3.X2"', "")  # the key only as a key, never as what a reader sees


def test_an_mlp_network_labels_its_stages_and_cell_nodes():
    h3 = nflc.load(SPECS / "nfl_h3.nfl")
    g = h3.architecture("|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|").network_graph
    assert [g.nodes[n]["label"] for n in ("input", "%0", "%1", "%2", "%3.X0", "%3.X3", "%4", "output")] == \
        ["input", "flatten #0", "linear #1", "relu #2", "cell[1].X0", "cell[1].X3", "linear #4", "output"]
    assert not any("node_op" in d for _, d in g.nodes(data=True))
