"""`nflc graph --format svg|png`: the drawing shows exactly the architecture's graph.

The SVG's node and edge groups (ids ``node:PANEL:NAME``, ``edge:PANEL:SRC->DST``) are read
back with an XML parser and compared with ``arch.cell_graphs`` / ``arch.network_graph``:
every node, every non-zero edge with its op as its label, no zero edge; dead edges dashed.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nflc
from nflc import drawing
from nflc.cli import app

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
SVG = "{http://www.w3.org/2000/svg}"

ENGINES = ["networkx", pytest.param("graphviz", marks=pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (.ci/run installs it)"))]

# (spec, space, architecture): edge cells (NB201), two-input concat cells (DARTS), node
# cells with ops on nodes (NB101), the paper's MLP cells
CASES = [
    ("nb201.nfl", "nb201", "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"),
    ("nb201.nfl", "nb201", "|none~0|+|skip_connect~0|avg_pool_3x3~1|+|avg_pool_3x3~0|skip_connect~1|avg_pool_3x3~2|"),
    ("darts.nfl", "darts", "1000000000000000"),
    ("nb101.nfl", "nb101", "conv1x1_bn_relu(0)+conv1x1_bn_relu(1)+conv1x1_bn_relu(2)+conv1x1_bn_relu(2)+conv3x3_bn_relu(0,3,4)+(1,5)"),
    ("nfl_h3.nfl", "nfl_h3", "700"),
]


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def svg_groups(text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(text)
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id")}


def texts(group: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in group.iter(f"{SVG}text"))


def drawn(groups: dict, kind: str, panel: str) -> set[str]:
    prefix = f"{kind}:{panel}:"
    return {k[len(prefix):] for k in groups if k.startswith(prefix)}


def live_edges(g) -> set[tuple]:
    """Independently of nflc.drawing: edges on some path from node 0 to the last node."""
    import networkx as nx

    real = nx.DiGraph((s, t) for s, t, d in g.edges(data=True) if d["kind"] != "zero")
    first, last = min(g.nodes), max(g.nodes)
    if first not in real or last not in real:
        return set()
    return {(s, t) for s, t in real.edges if nx.has_path(real, first, s) and nx.has_path(real, t, last)}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("spec,space,ident", CASES)
def test_svg_has_the_cell_graphs_nodes_and_edges(tmp_path, spec, space, ident, engine):
    out = tmp_path / "a.svg"
    res = cli("graph", SPECS / spec, ident, "--space", space, "--format", "svg", "--layout", engine, "--out", out)
    assert res.exit_code == 0, res.output
    assert f"({engine} layout)" in res.output
    groups = svg_groups(out.read_text())
    arch = nflc.load(SPECS / spec, space=space).architecture(ident)
    assert texts(groups["id"]) == arch.id
    graphs = arch.cell_graphs
    assert {k.split(":")[1] for k in groups if k.startswith("node:")} == set(graphs)  # one panel per cell instance
    for k, g in graphs.items():
        assert drawn(groups, "node", k) == {str(v) for v in g.nodes}
        nonzero = {(s, t): d for s, t, d in g.edges(data=True) if d["kind"] != "zero"}
        assert drawn(groups, "edge", k) == {f"{s}->{t}" for s, t in nonzero}, "zero edges are left out, all others drawn"
        node_cell = any("op" in d for _, d in g.nodes(data=True))
        for (s, t), d in nonzero.items():
            if not node_cell:  # the edge's op is its label
                assert texts(groups[f"edge-label:{k}:{s}->{t}"]) == d["op"]
        for v, d in g.nodes(data=True):  # node labels: X0 .. XH (in / out), and a node cell's op
            label = texts(groups[f"node-label:{k}:{v}"])
            assert label.split()[0] == d["label"]
            if "op" in d:
                assert d["op"] in label
        live = live_edges(g)
        for s, t in nonzero:
            style = groups[f"edge:{k}:{s}->{t}"].find(f"{SVG}path").get("style")
            assert ("stroke-dasharray" in style) == ((s, t) not in live), f"{s}->{t}: dead edges dashed, live solid"


def test_dead_edges_exist_in_a_case():
    """The dashed-edge check above is not vacuous: the second NB201 case has dead edges."""
    arch = nflc.load(SPECS / "nb201.nfl", space="nb201").architecture(CASES[1][2])
    g = arch.graph
    nonzero = {(s, t) for s, t, d in g.edges(data=True) if d["kind"] != "zero"}
    assert nonzero - live_edges(g) == {(1, 2), (1, 3)}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("spec,space,ident", [CASES[0], CASES[2], CASES[4]])
def test_network_svg_has_the_network_graph(tmp_path, spec, space, ident, engine):
    out = tmp_path / "n.svg"
    res = cli("graph", SPECS / spec, ident, "--space", space, "--format", "svg", "--network", "--layout", engine,
              "--out", out)
    assert res.exit_code == 0, res.output
    groups = svg_groups(out.read_text())
    g = nflc.load(SPECS / spec, space=space).architecture(ident).network_graph
    assert drawn(groups, "node", "network") == {str(v) for v in g.nodes}
    assert drawn(groups, "edge", "network") == {f"{s}->{t}" for s, t in g.edges}


def test_rejected_architecture_is_flagged(tmp_path):
    sp = nflc.load(SPECS / "nb101.nfl")
    arch = sp.architecture(5000)  # no input-output path: the space's filters drop it
    assert arch.rejection is not None
    out = tmp_path / "r.svg"
    res = cli("graph", SPECS / "nb101.nfl", "5000", "--format", "svg", "--out", out)
    assert res.exit_code == 0, res.output
    assert "is rejected by space 'nb101'" in res.output
    groups = svg_groups(out.read_text())
    assert texts(groups["rejected"]) == f"rejected by space 'nb101': {arch.rejection}"
    ok = tmp_path / "ok.svg"
    assert cli("graph", SPECS / "nb101.nfl", CASES[3][2], "--format", "svg", "--out", ok).exit_code == 0
    assert "rejected" not in svg_groups(ok.read_text())


def test_svg_to_stdout_and_png(tmp_path):
    res = cli("graph", SPECS / "nfl_h3.nfl", "700", "--format", "svg")
    assert res.exit_code == 0
    assert "edge:cell:0->1" in {k for k in svg_groups(res.stdout)}
    png = tmp_path / "a.png"
    res = cli("graph", SPECS / "nfl_h3.nfl", "700", "--format", "png", "--out", png)
    assert res.exit_code == 0, res.output
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 100 and img.shape[1] > 200
    assert (img[..., :3] < 0.5).any(), "something dark (nodes, edges, labels) is drawn"


def test_layout_engines_and_errors(tmp_path, monkeypatch):
    arch = nflc.load(SPECS / "nfl_h3.nfl").architecture(700)
    assert drawing.draw(arch, engine="networkx").engine == "networkx"
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no dot: auto falls back, graphviz is refused
    assert drawing.layout_engine("auto") == "networkx"
    res = cli("graph", SPECS / "nfl_h3.nfl", "700", "--format", "svg", "--layout", "graphviz")
    assert res.exit_code == 2 and "needs Graphviz's 'dot' program" in res.output
    monkeypatch.undo()
    res = cli("graph", SPECS / "nfl_h3.nfl", "700", "--format", "svg", "--layout", "spring")
    assert res.exit_code == 2 and "unknown layout 'spring'" in res.output
    res = cli("graph", SPECS / "nfl_h3.nfl", "700", "--format", "svg", "--out", tmp_path / "missing" / "a.svg")
    assert res.exit_code == 2 and "does not exist" in res.output
