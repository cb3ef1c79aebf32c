"""The analysis's scores by value, each against a computation written here:

- the generalization score ``-(sum_p d_p) sqrt(y^T Theta^-1 y / N)`` (centred one-hot
  labels, averaged over classes) and its label-free form, with Theta the textbook NTK of a
  ReLU MLP (each weight matrix's input Gram times the product of the ReLU derivative maps
  above it, arc-cosine kernels written from their definitions), for cells that are chains;
- ``sum_depth`` (the expressivity score), P and mean depth of stacked and shared cell
  placements against every input-output path of the network graph enumerated by networkx;
- the representative of each computing-graph group (the member with the fewest
  parameters, the first in order among equals: docs/ANALYZE.md) against classes found with
  networkx's isomorphism test and parameters counted by hand."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import nflc
from nflc.analysis.analyze import analyze

ROOT = Path(__file__).resolve().parents[2]

CHAIN_SPACE = """
space g {
    input [5]
    classes 3
    width 16
    bias false
    cell { nodes 3  edge * : zero | skip | linear >> relu as lin }
    network = linear(width) >> relu >> cell >> linear(classes)
}"""
# cells that are chains of linear edges: stem + n linear edges = n + 1 hidden ReLU layers
CHAINS = {"|zero~0|+|lin~0|zero~1|": 1, "|lin~0|+|zero~0|lin~1|": 2}


def arccos_maps(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(2 E[relu(u) relu(u')], 2 E[1(u > 0) 1(u' > 0)])`` for (u, u') ~ N(0, S): the
    arc-cosine kernels of degree 1 and 0 (Cho and Saul, 2009), with He's factor 2."""
    d = np.sqrt(np.diag(s))
    norms = np.outer(d, d)
    cos = np.clip(s / norms, -1.0, 1.0)
    theta = np.arccos(cos)
    return norms * (np.sin(theta) + (np.pi - theta) * cos) / np.pi, (np.pi - theta) / np.pi


def mlp_kernels(q_in: np.ndarray, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK of ``x -> v . sqrt(2) relu(W_L ... sqrt(2) relu(W_1 x / sqrt(d)) ... / sqrt(m)) / sqrt(m)``
    in the infinite-width limit: NNGP = Sigma_L, and every weight matrix W_l adds its input
    Gram Sigma_{l-1} times the derivative maps k0(Sigma_{j-1}) of the layers j = l .. L it
    feeds (the readout adds Sigma_L)."""
    sigma, deriv = [q_in], []
    for _ in range(hidden):
        k1, k0 = arccos_maps(sigma[-1])
        sigma.append(k1)
        deriv.append(k0)
    ntk = sigma[-1].copy()
    for layer in range(1, hidden + 1):
        term = sigma[layer - 1].copy()
        for j in range(layer, hidden + 1):
            term = term * deriv[j - 1]
        ntk += term
    return sigma[-1], ntk


@pytest.fixture(scope="module")
def chain_space():
    return nflc.loads(CHAIN_SPACE)


def test_generalization_score_by_the_ntk_of_an_mlp(chain_space, tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(7, 5)) + 0.5  # correlated inputs of unequal norms
    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    np.savez(tmp_path / "d.npz", x=x, y=labels)
    archs = [chain_space.architecture(i) for i in CHAINS]
    res = analyze(chain_space, data=str(tmp_path / "d.npz"), samples=7, seed=0, archs=archs)
    # the data is read as float32, then every input rescaled to |x|^2 = d; the sample is the
    # whole file (the quadratic form does not depend on the samples' order)
    x = x.astype(np.float32).astype(np.float64)
    xs = x * np.sqrt(5) / np.linalg.norm(x, axis=1, keepdims=True)
    q_in = xs @ xs.T / 5
    y = np.eye(3)[labels]
    y = y - y.mean(axis=0)
    for row in res.architectures:
        depth = CHAINS[row.id]
        nngp, ntk = mlp_kernels(q_in, hidden=1 + depth)
        assert row.topology["sum_depth"] == depth
        y_inv_y = np.trace(y.T @ np.linalg.solve(ntk, y)) / 3  # averaged over the classes
        assert row.kernels["ntk"]["y_inv_y"] == pytest.approx(y_inv_y, rel=1e-9), (row.id, "y_inv_y, averaged over classes")
        expected = -depth * math.sqrt(y_inv_y / 7)
        assert row.scores["generalization"].value == pytest.approx(expected, rel=1e-9), (row.id, "generalization")
        eig = np.linalg.eigvalsh(ntk)
        assert row.kernels["ntk"]["lambda_min"] == pytest.approx(eig[0], rel=1e-9), (row.id, "lambda_min")
        assert row.kernels["ntk"]["lambda_max"] == pytest.approx(eig[-1], rel=1e-9), (row.id, "lambda_max")
        assert row.kernels["ntk"]["condition"] == pytest.approx(eig[-1] / eig[0], rel=1e-8), (row.id, "condition")
        pair = min((nngp[i, i] + nngp[j, j]) / 2 - nngp[i, j] for i in range(7) for j in range(7) if i != j)
        assert row.scores["convergence"].value == pytest.approx(pair, rel=1e-9), (row.id, "convergence")
        assert row.scores["expressivity"].value == depth


def test_label_free_generalization_score_on_orthonormal_inputs(chain_space):
    archs = [chain_space.architecture(i) for i in CHAINS]
    res = analyze(chain_space, data="none", samples=5, seed=0, archs=archs)
    for row in res.architectures:
        depth = CHAINS[row.id]
        _, ntk = mlp_kernels(np.eye(5), hidden=1 + depth)  # data-free: q_in = I
        lam = np.linalg.eigvalsh(ntk)[0]
        assert "y_inv_y" not in row.kernels["ntk"]
        # the orthonormal inputs are float32: q_in is I to about 1e-7
        assert row.scores["generalization"].value == pytest.approx(-depth / math.sqrt(lam), rel=1e-6), row.id


def test_no_parameterized_path_scores_zero_and_no_path_scores_nothing(chain_space):
    archs = [chain_space.architecture("|skip~0|+|zero~0|skip~1|"), chain_space.architecture("|zero~0|+|zero~0|skip~1|")]
    res = analyze(chain_space, data="none", samples=4, seed=0, archs=archs)
    skip_only, dead = res.architectures
    assert skip_only.topology["sum_depth"] == 0 and skip_only.scores["generalization"].value == 0.0
    assert dead.topology["paths"] == 0 and dead.scores["expressivity"].value == 0.0
    assert res.report.left_out == [dead.id]


# ---------------------------------------------------------------- stacked placements

STACKED = """
space st {
    input [5]
    classes 3
    width 8
    bias false
    cell a { nodes 4  edge * : zero | skip | linear >> relu as lin }
    cell b { nodes 3  edge * : zero | skip | linear >> relu as lin | linear as plain }
    network = linear(width) >> relu >> a x2 >> b >> a >> linear(classes)
}"""


def network_paths(arch) -> list[int]:
    """The depth (parameterized cell edges) of every input-output path of the network graph."""
    g = arch.network_graph
    return [sum(1 for s, t in zip(p, p[1:], strict=False) if g.edges[s, t].get("kind", "skip") != "skip")
            for p in nx.all_simple_paths(g, "input", "output")]


def test_sum_depth_of_stacked_and_shared_placements_is_the_sum_over_network_paths():
    sp = nflc.loads(STACKED)
    archs = sp.sample(40, seed=5)
    res = analyze(sp, data="none", samples=3, seed=0, archs=archs, measure="none")
    checked = 0
    for a, row in zip(archs, res.architectures, strict=True):
        depths = network_paths(a)
        topo = row.topology
        assert topo["placements"] == 4
        assert topo["paths"] == len(depths), (a.id, "paths")
        assert topo["sum_depth"] == sum(depths), (a.id, "sum_depth")
        assert row.scores["expressivity"].value == sum(depths), (a.id, "expressivity")
        # the paper's Thm 4.1 curvature: 1 / sum over network paths of exp(-5 d_p / 8m), m = 8 everywhere
        jacobian = sum(math.exp(-5 * d / (8 * 8)) for d in depths)
        assert row.indicators["curvature_thm41"] == pytest.approx(1 / jacobian if depths else 0.0), (a.id, "curvature")
        if depths:
            assert topo["mean_depth"] == pytest.approx(sum(depths) / len(depths)), (a.id, "mean_depth")
            assert topo["sum_depth"] == pytest.approx(topo["paths"] * topo["mean_depth"])
            checked += len(set(depths)) > 1
    assert checked >= 10  # networks whose paths differ in depth


# ---------------------------------------------------------------- group representatives


def computing_graph(arch) -> nx.DiGraph:
    """The cell's non-zero edges on some 0 -> H path, labelled by op (networkx paths)."""
    g = arch.graph
    h = max(g.nodes)
    nz = nx.DiGraph([(s, t, {"op": d["op"]}) for s, t, d in g.edges(data=True) if d["kind"] != "zero"])
    live = nx.DiGraph()
    live.add_nodes_from([(0, {"role": "in"}), (h, {"role": "out"})])
    if 0 in nz and h in nz:
        for p in nx.all_simple_paths(nz, 0, h):
            for s, t in zip(p, p[1:], strict=False):
                live.add_node(s, role=live.nodes[s].get("role", "mid") if s in live else "mid")
                live.add_node(t, role=live.nodes[t].get("role", "mid") if t in live else "mid")
                live.add_edge(s, t, op=nz.edges[s, t]["op"])
    return live


REVERSED = """
space r {
    input [6]
    classes 3
    width 8
    bias false
    cell { nodes 4  edge * : linear >> relu as lin | skip | zero }   # linear first: early members carry dead edges
    network = linear(width) >> relu >> cell >> linear(classes)
}"""


def test_each_group_is_represented_by_its_member_with_fewest_parameters_first_among_equals():
    sp = nflc.loads(REVERSED)
    archs = list(sp)
    # parameters by hand: 6 x 8 stem, 8 x 8 per linear edge (dead ones too), 8 x 3 readout
    params = [6 * 8 + a.id.count("lin~") * 8 * 8 + 8 * 3 for a in archs]
    assert params == [a.params for a in archs]
    graphs = [computing_graph(a) for a in archs]
    em = nx.algorithms.isomorphism.categorical_edge_match("op", None)
    nm = nx.algorithms.isomorphism.categorical_node_match("role", None)
    classes: list[list[int]] = []
    by_key: dict[tuple, list[int]] = {}
    for i, g in enumerate(graphs):
        key = (tuple(sorted(d["op"] for *_, d in g.edges(data=True))), g.number_of_nodes())
        for c in by_key.setdefault(key, []):
            if nx.is_isomorphic(g, graphs[classes[c][0]], node_match=nm, edge_match=em):
                classes[c].append(i)
                break
        else:
            by_key[key].append(len(classes))
            classes.append([i])
    expected = {}
    for members in classes:
        rep = min(members, key=lambda i: (params[i], i))
        expected.update({i: (rep, len(members)) for i in members})
    assert len(classes) == 261  # as nfl_h3's (docs/ANALYZE.md): the same cells in another order
    # the rule matters here: groups whose first member is not the lightest, and lightest ties
    assert sum(min(m, key=lambda i: (params[i], i)) != m[0] for m in classes) >= 10
    assert sum(sorted(params[i] for i in m)[:2] == [min(params[i] for i in m)] * 2 for m in classes) >= 10
    res = analyze(sp, data="none", samples=3, seed=0, archs=archs)
    for row in res.architectures:
        assert (row.group, row.group_size) == expected[row.index], (row.id, "group representative")
    # the same rule in nflc.analysis.groups.representatives (positions in the list: here the indices)
    from nflc.analysis import groups

    reps = groups.representatives(archs)
    assert reps == [expected[i][0] for i in range(len(archs))], "groups.representatives"


NUMERIC = """
space n {
    input [6]
    classes 3
    bias false
    w in {4, 8}
    cell { nodes 4  edge * : linear >> relu as lin | skip | zero }
    network = linear(w) >> relu >> cell >> linear(classes)
}"""


def test_groups_never_join_networks_of_different_widths():
    """A numeric choice changes the function: members of a group share their width. Each
    group is a networkx class within one value of w (the same 261 classes at each)."""
    sp = nflc.loads(NUMERIC)
    archs = list(sp)
    classes: dict[int, list[list[int]]] = {4: [], 8: []}
    buckets: dict[tuple, list[list[int]]] = {}
    graphs = [computing_graph(a) for a in archs]
    em = nx.algorithms.isomorphism.categorical_edge_match("op", None)
    nm = nx.algorithms.isomorphism.categorical_node_match("role", None)
    for i, (a, g) in enumerate(zip(archs, graphs, strict=True)):
        key = (a.numeric["w"], tuple(sorted(d["op"] for *_, d in g.edges(data=True))), g.number_of_nodes())
        for members in buckets.setdefault(key, []):
            if nx.is_isomorphic(g, graphs[members[0]], node_match=nm, edge_match=em):
                members.append(i)
                break
        else:
            buckets[key].append([i])
            classes[a.numeric["w"]].append(buckets[key][-1])
    assert [len(c) for c in classes.values()] == [261, 261]
    expected = {}
    for members in classes[4] + classes[8]:
        rep = min(members, key=lambda i: (archs[i].params, i))
        expected.update({i: (archs[rep].index, len(members)) for i in members})
    res = analyze(sp, data="none", samples=3, seed=0, archs=archs, measure="none")
    for row in res.architectures:
        assert (row.group, row.group_size) == expected[row.index], (row.id, "group of a width")


def permuted_twin(sp, arch, perm: dict[int, int]):
    """The architecture whose cell is ``arch``'s with intermediate node v renumbered perm[v]
    (None when an edge would then point backwards): the same computing graph by construction."""
    edges = {(s, t): d["op"] for s, t, d in arch.graph.edges(data=True)}
    moved = {(perm.get(s, s), perm.get(t, t)): op for (s, t), op in edges.items()}
    if any(s >= t for s, t in moved if moved[(s, t)] != "zero"):
        return None
    h = max(arch.graph.nodes)
    groups_ = ["|" + "|".join(f"{moved.get((s, t), 'zero')}~{s}" for s in range(t)) + "|" for t in range(1, h + 1)]
    return sp.architecture("+".join(groups_))


def test_per_architecture_canonical_forms_of_a_million_cell_space():
    """Cells of more choices than the walked table holds get a canonical form each: a cell
    and its renumbered twin share a key, and keys differ exactly when networkx finds the
    computing graphs non-isomorphic."""
    from nflc.analysis import groups

    sp = nflc.loads("""
    space big {
        input [6]
        classes 3
        bias false
        width 4
        cell { nodes 5  edge * : zero | skip | linear >> relu as lin | linear as plain }
        network = linear(width) >> relu >> cell >> linear(classes)
    }""")
    assert sp.raw_count() == 4**10
    archs = sp.sample(150, seed=11)
    twins = 0
    for a in archs:
        for perm in itertools.permutations((1, 2, 3)):
            twin = permuted_twin(sp, a, dict(zip((1, 2, 3), perm, strict=True)))
            if twin is not None and twin != a:
                assert groups.function_key(twin) == groups.function_key(a), (a.id, twin.id, "renumbered twin")
                twins += 1
    assert twins >= 50
    em = nx.algorithms.isomorphism.categorical_edge_match("op", None)
    nm = nx.algorithms.isomorphism.categorical_node_match("role", None)
    graphs = [computing_graph(a) for a in archs[:60]]
    keys = [groups.function_key(a) for a in archs[:60]]
    for i, j in itertools.combinations(range(60), 2):
        same = nx.is_isomorphic(graphs[i], graphs[j], node_match=nm, edge_match=em)
        assert (keys[i] == keys[j]) == same, (archs[i].id, archs[j].id)


def test_the_top_tables_hold_the_best_representatives_first_in_order_among_ties():
    """``top=K``: per aspect the K best computing graphs (their representatives, networks
    with a path), by score, the first in order among equal scores: checked by sorting all rows."""
    from nflc.analysis.analyze import analyze_stream

    sp = nflc.loads(REVERSED)
    rows = []
    summary = analyze_stream(sp, data="none", samples=3, seed=0, on_rows=rows.extend, top=7)
    for aspect in ("expressivity", "convergence", "generalization"):
        reps = [(pos, r) for pos, r in enumerate(rows) if r.group == r.index and r.topology["paths"] > 0]
        best = sorted(reps, key=lambda pr: (-pr[1].scores[aspect].value, pr[0]))[:7]
        assert [t.id for t in summary.top[aspect]] == [r.id for _, r in best], (aspect, "top table")
    ties = [r.scores["expressivity"].value for r in rows if r.group == r.index and r.topology["paths"] > 0]
    assert len(ties) > len(set(ties))  # equal expressivity scores: the tie rule decides
