"""The data-free score on concatenating, two-input cells stacked in a network (DARTS,
NAS-Bench-301; rank_score.py steps 6 and 7): an op's layers, hand-derived values on a small
network, the network's mean depth against an enumeration of all its paths (networkx), the
refusal of a graph without layers, NAS-Bench-201 unchanged, and the Kendall tau on the
NB301 file that nflc/analysis/rank_score.py and docs/ANALYZE.md report."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import networkx as nx
import pytest
from scipy.stats import kendalltau

import nflc
from nflc import ops
from nflc.analysis.rank_score import architecture_score, edge_cell_graph, layer_params, rank_score, rank_score_components
from nflc.encodings import entry_id

SPECS = Path(__file__).resolve().parents[2] / "specs"
NB301_TAU = 0.19  # documented in rank_score.py and docs/ANALYZE.md (0.187)
NB301_GAP = 0.23  # below the file's best proxy column (nwot, 0.415)

# a small DARTS-like network: two-input cells, a reduction between two normal placements
SMALL = """
space s {
    input [3, 8, 8]
    classes 2
    bias false
    op fr = factorized_reduce
    cell c(w) {
        inputs 2
        nodes NODES
        channels w
        edge * : sep_conv(3) as sep | max_pool(3) as pool | fr as skip
        pick 2
        output concat
    }
    cell r(w) {
        inputs 2
        nodes NODES
        channels w
        edge * : sep_conv(3) as sep | max_pool(3) as pool | fr as skip
        pick 2
        output concat
        stride 2
    }
    network = conv2d(3, 4) >> batchnorm >> c(4) >> r(8) >> c(8) >> global_avg_pool >> linear(classes)
}
"""


def placements(nodes: int) -> list[tuple[str, int, int, int]]:
    """(cell, width, X0's source channels, X1's source channels) of the three placements: a
    cell of width w outputs (nodes - 2) * w channels."""
    k = nodes - 2
    return [("c", 4, 4, 4), ("r", 8, 4, 4 * k), ("c", 8, 4 * k, 8 * k)]


def small(nodes: int) -> nflc.Space:
    return nflc.loads(SMALL.replace("NODES", str(nodes)))


def ln(n: int) -> float:
    return math.log1p(n)


# ---------------------------------------------------------------- t by hand (affine batch norms)
def sep(w: int) -> float:
    return 2 * ln(9 * w + w * w + 2 * w)  # (relu, dw 3x3, 1x1, bn) twice: two layers


def pre(c_in: int, w: int) -> float:
    return ln(c_in * w + 2 * w)  # relu >> conv1x1 >> bn, or a stride-2 factorized_reduce: one layer


def op_t(op: str, w: int, reduction_input: bool) -> float:
    if op == "sep":
        return sep(w)
    if op == "skip" and reduction_input:
        return ln(w * w + 2 * w)  # factorized_reduce halving: two 1x1 convs w -> w/2, bn
    return 0.0  # pooling; the stride-1 factorized_reduce is the identity


STEM = ln(3 * 9 * 4 + 2 * 4)  # conv2d 3x3 3 -> 4 and its batch norm: one layer


def head(nodes: int) -> float:
    return ln((nodes - 2) * 8 * 2)  # global pooling, linear (nodes - 2) * 8 -> 2 without bias


# ---------------------------------------------------------------- layers
def test_layer_params_split_at_nonlinearities_and_inside_sep_conv():
    relu, bn = ops.Prim("relu"), ops.Prim("batchnorm")
    conv3 = ops.Prim("conv2d", (("k", 3), ("out", 16), ("stride", 1), ("padding", 1), ("bias", False)))
    assert layer_params((relu, conv3, bn), (16, 8, 8)) == (9 * 16 * 16 + 32,) == (ops.seq_cost((relu, conv3, bn), (16, 8, 8))[1],)
    assert layer_params((conv3, bn, relu, conv3, bn), (16, 8, 8)) == (9 * 16 * 16 + 32,) * 2
    sepc = ops.Prim("sep_conv", (("k", 5), ("out", 8), ("stride", 1), ("affine", False)))
    assert layer_params((sepc,), (4, 8, 8)) == (25 * 4 + 4 * 4, 25 * 4 + 4 * 8)  # c -> c, then c -> out
    assert sum(layer_params((sepc,), (4, 8, 8))) == ops.seq_cost((sepc,), (4, 8, 8))[1]
    dil = ops.Prim("dil_conv", (("k", 3), ("out", 4), ("stride", 1), ("dilation", 2)))
    assert layer_params((dil,), (4, 8, 8)) == (9 * 4 + 16 + 8,)
    pool = ops.Prim("max_pool", (("k", 3), ("stride", 1), ("padding", 1)))
    assert layer_params((pool, ops.Prim("batchnorm", (("affine", False),))), (4, 8, 8)) == ()
    assert layer_params((ops.Prim("factorized_reduce", (("out", 4), ("stride", 1))),), (4, 8, 8)) == ()  # identity
    assert layer_params((ops.Prim("factorized_reduce", (("out", 4), ("stride", 2))),), (4, 8, 8)) == (16 + 8,)
    assert layer_params((ops.Prim("zero"),), (4, 8, 8)) == ()


# ---------------------------------------------------------------- hand-derived values
def test_hand_derived_cell_and_network_values():
    sp = small(4)
    a = sp.architecture("|sep~0|skip~1|+|pool~1|sep~2|;|skip~0|pool~1|+|sep~0|pool~2|")
    stages = [st for st in sp.ir.network if st.kind == "cell"]

    # cell c: X2 = sep(X0) + skip(X1), X3 = pool(X1) + sep(X2). Block X2: paths X0 (P0 + S), X1 (P1);
    # block X3: X1 (P1), X0-X2-X3 (P0 + 2S), X1-X2-X3 (P1 + S); shares 1/2 each, X0's share of paths 5/12
    def c_cell(p0: float, p1: float, s: float) -> float:
        return (p0 + s + p1) / 2 / 2 + (p1 + p0 + 2 * s + p1 + s) / 3 / 2

    # cell r: X2 = skip(X0) (a halving, F) + pool(X1), X3 = sep(X0) + pool(X2). Block X2: X0 (P0 + F), X1 (P1);
    # block X3: X0 (P0 + S), X0-X2-X3 (P0 + F), X1-X2-X3 (P1); X0's share of paths 1/2 * 1/2 + 1/2 * 2/3 = 7/12
    def r_cell(p0: float, p1: float, s: float, f: float) -> float:
        return (p0 + f + p1) / 2 / 2 + (p0 + s + p0 + f + p1) / 3 / 2

    c0 = c_cell(pre(4, 4), pre(4, 4), sep(4))
    assert rank_score(edge_cell_graph(sp.ir.cells[stages[0].cell], a.choices["c"], stages[0])) == pytest.approx(c0, rel=1e-14)
    r1 = r_cell(pre(4, 8), pre(8, 8), sep(8), ln(8 * 8 + 16))
    assert rank_score(edge_cell_graph(sp.ir.cells[stages[1].cell], a.choices["r"], stages[1])) == pytest.approx(r1, rel=1e-14)
    c2 = c_cell(pre(8, 8), pre(16, 8), sep(8))

    d_stem = STEM
    d0 = c0 + d_stem  # both inputs of the first cell are the stem's output
    d1 = r1 + 7 / 12 * d_stem + 5 / 12 * d0  # X0: the first cell's input (the stem), X1: the first cell
    d2 = c2 + 5 / 12 * d0 + 7 / 12 * d1
    assert architecture_score(a) == pytest.approx(d2 + head(4), rel=1e-14)


def test_a_cell_that_reads_more_from_x0_shortens_the_network():
    sp = small(4)
    # the same ops, X3 reading X0 instead of X2: one cell's paths fewer, the network shallower
    deep = sp.architecture("|sep~0|sep~1|+|sep~1|sep~2|;|sep~0|sep~1|+|sep~0|sep~1|")
    wide = sp.architecture("|sep~0|sep~1|+|sep~0|sep~1|;|sep~0|sep~1|+|sep~0|sep~1|")
    assert architecture_score(deep) > architecture_score(wide)


# ---------------------------------------------------------------- against every network path
def network_paths_reference(sp: nflc.Space, a, nodes: int) -> tuple[float, float]:
    """(total weight, mean depth) over every stem-to-logits path of the network, enumerated with
    networkx on a graph written from the architecture's id. A path's weight is that of a walk
    backwards from the logits: at each concatenation it passes, 1 / (number of blocks), times
    1 / (number of the block's paths from the cell's inputs)."""
    picks = dict(zip(sp.instances, a.id.split(";"), strict=True))
    g = nx.DiGraph()
    g.add_node("stem")
    prev_prev, prev = "stem", "stem"
    block_paths: dict[tuple, int] = {}
    for k, (name, w, c0, c1) in enumerate(placements(nodes)):
        reduction = name == "r"
        g.add_edge(prev_prev, (k, 0), t=pre(c0, w))
        g.add_edge(prev, (k, 1), t=pre(c1, w))
        cell = nx.DiGraph()
        for j, group in enumerate(picks[name].split("+"), start=2):
            for item in group.strip("|").split("|"):
                op, _, src = item.rpartition("~")
                g.add_edge((k, int(src)), (k, j), t=op_t(op, w, reduction and int(src) < 2))
                cell.add_edge(int(src), j)
            g.add_edge((k, j), (k, "out"), t=0.0, block=j)
        blocks = [j for j in cell.nodes if j >= 2]
        for j in blocks:
            block_paths[k, j] = sum(len(list(nx.all_simple_paths(cell, i, j))) for i in (0, 1) if i in cell)
            block_paths[k, "n"] = len(blocks)
        prev_prev, prev = prev, (k, "out")
    g.add_edge(prev, "logits", t=head(nodes))
    total = mean = 0.0
    for path in nx.all_simple_paths(g, "stem", "logits"):
        w = 1.0
        for u, v in zip(path, path[1:], strict=False):
            if "block" in g.edges[u, v]:
                k = v[0]
                w /= block_paths[k, "n"] * block_paths[k, g.edges[u, v]["block"]]
        depth = STEM + sum(g.edges[u, v]["t"] for u, v in zip(path, path[1:], strict=False))
        total += w
        mean += w * depth
    return total, mean


@pytest.mark.parametrize("nodes", [4, 5])
def test_the_network_score_is_the_mean_depth_over_enumerated_network_paths(nodes):
    sp = small(nodes)
    rng = random.Random(nodes)
    for index in rng.sample(range(sp.count()), 12):
        a = sp.architecture(index)
        total, mean = network_paths_reference(sp, a, nodes)
        assert total == pytest.approx(1.0, rel=1e-12)  # the backward walk is a probability
        assert architecture_score(a) == pytest.approx(mean, rel=1e-12), a.id


def test_equal_networks_score_the_same_float():
    darts = nflc.load(SPECS / "darts.nfl")
    a = darts.architecture(987654321)
    normal, reduce = a.id.split(";")
    groups = normal.split("+")
    x, y = groups[0].strip("|").split("|")
    swapped = darts.architecture("+".join([f"|{y}|{x}|", *groups[1:]]) + ";" + reduce)
    assert architecture_score(swapped) == architecture_score(a)


# ---------------------------------------------------------------- graphs without layers; other cells
def test_a_concat_graph_without_layers_is_refused():
    sp = small(4)
    a = sp.architecture(7)
    with pytest.raises(ValueError, match="edge_cell_graph"):
        rank_score(a.cell_graphs["c"])
    st = next(s for s in sp.ir.network if s.kind == "cell")
    with pytest.raises(ValueError, match="only rank_score"):
        rank_score_components(edge_cell_graph(sp.ir.cells[st.cell], a.choices["c"], st))


def test_one_layer_ops_score_the_same_with_layers_nb201():
    nb201 = nflc.load(SPECS / "nb201.nfl", "nb201")
    st = next(s for s in nb201.ir.network if s.kind == "cell")
    cell = nb201.ir.cells[st.cell]
    for index in random.Random(0).sample(range(nb201.count()), 40):
        a = nb201.architecture(index)
        assert rank_score(edge_cell_graph(cell, a.choices[st.instance], st)) == rank_score(a.graph)  # bit for bit


# ---------------------------------------------------------------- the file
def test_kendall_tau_on_the_nb301_file_is_the_documented_one(shared_data):
    darts = nflc.load(SPECS / "darts.nfl")
    entries = json.loads(shared_data("nb301/nb301_cifar10.json").read_text())["architectures"]
    acc = [e["val_accuracy"] for e in entries]
    ours = [architecture_score(darts.architecture(entry_id(e))) for e in entries]
    assert all(math.isfinite(s) for s in ours)
    tau = kendalltau(ours, acc).statistic
    assert round(tau, 2) == NB301_TAU
    best = max(kendalltau([e[p] for e in entries], acc).statistic for p in ("nwot", "params", "flops", "synflow"))
    assert round(best - tau, 2) == NB301_GAP
