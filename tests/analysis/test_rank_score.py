"""Tests for nflc.analysis.rank_score (hand-derived values, monotonicity, NB201 ranking)."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import networkx as nx
import pytest

from nflc.analysis.rank_score import rank_score, rank_score_components, transform_weight

C = 16
T3 = math.log(1 + C * C * 9 + 2 * C)  # ln(2337): nor_conv_3x3 at C = 16
T1 = math.log(1 + C * C * 1 + 2 * C)  # ln(289):  nor_conv_1x1 at C = 16

NONE, SKIP, C1, C3, POOL = "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"


def _edge_attrs(op: str) -> dict:
    if op == "none":
        return dict(kind="zero", parameterized=False, kernel=None, params=0, prims=())
    if op == "skip_connect":
        return dict(kind="skip", parameterized=False, kernel=None, params=0, prims=())
    if op.startswith("nor_conv_"):
        k = int(op.rsplit("_", 1)[1].split("x")[0])
        return dict(kind="conv", parameterized=True, kernel=k, params=C * C * k * k + 2 * C,
                    prims=("relu", "conv2d", "batchnorm"))
    if op == "avg_pool_3x3":
        return dict(kind="pool", parameterized=False, kernel=3, params=0, prims=("avg_pool",))
    raise ValueError(op)


def cell_from_arch_str(arch: str) -> nx.DiGraph:
    """Local stand-in for the project's NB201 loader: ``|op~0|+|op~0|op~1|+|...|``."""
    g = nx.DiGraph()
    groups = arch.strip("|").split("|+|")
    for i in range(len(groups) + 1):
        g.add_node(i, label=f"X{i}")
    for t, grp in enumerate(groups, start=1):
        for tok in grp.strip("|").split("|"):
            op, src = tok.split("~")
            g.add_edge(int(src), t, op=op, **_edge_attrs(op))
    return g


def arch(e01, e02, e12, e03, e13, e23) -> str:
    return f"|{e01}~0|+|{e02}~0|{e12}~1|+|{e03}~0|{e13}~1|{e23}~2|"


def score(*ops) -> float:
    return rank_score(cell_from_arch_str(arch(*ops)))


# ---------------------------------------------------------------- hand-derived values


def test_all_none_has_no_path_and_scores_minus_inf():
    assert score(NONE, NONE, NONE, NONE, NONE, NONE) == float("-inf")


def test_edges_not_reaching_output_give_minus_inf():
    # node 1 has no input; 1->3 is a skip from a dead node: still no end-to-end path
    assert score(NONE, SKIP, C3, NONE, SKIP, NONE) == float("-inf")


def test_only_path_skip_only_scores_zero():
    assert score(NONE, NONE, NONE, SKIP, NONE, NONE) == 0.0
    # pooling transforms nothing either (no parameters): a pool-only chain is also 0
    assert score(POOL, NONE, POOL, NONE, NONE, POOL) == 0.0


def test_single_conv_paths():
    assert score(NONE, NONE, NONE, C3, NONE, NONE) == pytest.approx(T3)
    assert score(NONE, NONE, NONE, C1, NONE, NONE) == pytest.approx(T1)
    assert T1 == pytest.approx(2 * math.log(17))  # 289 = 17**2


def test_deep_chain_sums_depth():
    assert score(C3, NONE, C3, NONE, NONE, C3) == pytest.approx(3 * T3)
    assert score(C3, NONE, C1, NONE, NONE, POOL) == pytest.approx(T3 + T1)


def test_all_conv3_mean_depth_two():
    # paths 0-3, 0-1-3, 0-2-3, 0-1-2-3 have depths 1, 2, 2, 3: mean 2
    assert score(C3, C3, C3, C3, C3, C3) == pytest.approx(2 * T3)


def test_resnet_like_cell():
    # best NB201 cell: paths 0-3 (skip, 0), 0-1-3 (2), 0-2-3 (skip+conv, 1), 0-1-2-3 (3)
    assert score(C3, SKIP, C3, SKIP, C3, C3) == pytest.approx(1.5 * T3)


def test_transform_weight():
    assert transform_weight(_edge_attrs(NONE)) == 0.0
    assert transform_weight(_edge_attrs(SKIP)) == 0.0
    assert transform_weight(_edge_attrs(POOL)) == 0.0
    assert transform_weight(_edge_attrs(C3)) == pytest.approx(T3)
    # a zero edge never counts, whatever other attributes claim
    assert transform_weight(dict(kind="zero", parameterized=True, params=100)) == 0.0


def test_components_hand_values():
    c = rank_score_components(cell_from_arch_str(arch(C3, SKIP, C3, SKIP, C3, C3)))
    assert c["paths"] == 4 and c["skip_only_paths"] == 1
    assert c["mean_depth"] == pytest.approx(1.5)
    assert c["score"] == c["expressivity"] == pytest.approx(1.5 * T3)
    f0 = 1 / math.pi  # normalized arc-cosine map at rho = 0

    def f(r):
        return (math.sqrt(1 - r * r) + (math.pi - math.acos(r)) * r) / math.pi

    lam = (1 - 0) + (1 - f0) + (1 - f(f0)) + (1 - f(f(f0)))
    assert c["convergence"] == pytest.approx(lam)
    assert c["generalization"] == pytest.approx(6 / math.sqrt(lam))
    c15 = rank_score_components(cell_from_arch_str(arch(C3, SKIP, C3, SKIP, C3, C3)), n_cells=15)
    assert c15["score"] == c["score"]
    assert c15["expressivity"] == pytest.approx(15 * c["expressivity"])
    assert c15["mean_depth"] == pytest.approx(22.5)
    assert c15["log_paths"] == pytest.approx(15 * math.log(4))
    empty = rank_score_components(cell_from_arch_str(arch(*[NONE] * 6)), n_cells=15)
    assert empty["paths"] == 0 and empty["convergence"] == 0.0
    assert empty["generalization"] == float("inf")


# ---------------------------------------------------------------- derived properties

ALL_OPS = (NONE, SKIP, C1, C3, POOL)
ALL_ARCHS = list(itertools.product(ALL_OPS, repeat=6))  # 15625 NB201 cells


def _paths(g):
    live = nx.DiGraph([(u, v) for u, v, a in g.edges(data=True) if a["kind"] != "zero"])
    live.add_nodes_from(g.nodes)
    return [list(zip(p[:-1], p[1:], strict=True)) for p in nx.all_simple_paths(live, 0, max(g.nodes))]


def test_matches_path_enumeration_on_random_dags():
    rng = random.Random(0)
    for _ in range(200):
        H = rng.randint(1, 6)
        g = nx.DiGraph()
        g.add_nodes_from(range(H + 1))
        for s, t in itertools.combinations(range(H + 1), 2):
            g.add_edge(s, t, op="x", **_edge_attrs(rng.choice(ALL_OPS)))
        ps = _paths(g)
        got = rank_score(g)
        if not ps:
            assert got == float("-inf")
            continue
        ref = sum(sum(transform_weight(g.edges[e]) for e in p) for p in ps) / len(ps)
        assert got == pytest.approx(ref, rel=1e-12, abs=1e-12)
        assert rank_score_components(g)["paths"] == len(ps)


def _live(g):
    return {e for p in _paths(g) for e in p}


EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def _sample(n=1500, seed=1):
    return random.Random(seed).sample(ALL_ARCHS, n)


def test_parameterizing_a_live_edge_raises_score():
    # skip/pool -> conv on an edge of some end-to-end path: every path through it deepens
    for ops in _sample():
        g = cell_from_arch_str(arch(*ops))
        live = _live(g)
        for i, e in enumerate(EDGES):
            if ops[i] in (SKIP, POOL) and e in live:
                for conv in (C1, C3):
                    new = list(ops)
                    new[i] = conv
                    assert score(*new) > score(*ops)


def test_larger_kernel_on_live_edge_raises_score():
    for ops in _sample():
        live = _live(cell_from_arch_str(arch(*ops)))
        for i, e in enumerate(EDGES):
            if ops[i] == C1 and e in live:
                new = list(ops)
                new[i] = C3
                assert score(*new) > score(*ops)


def test_dead_edges_do_not_matter():
    for ops in _sample():
        live = _live(cell_from_arch_str(arch(*ops)))
        for i, e in enumerate(EDGES):
            if ops[i] != NONE and e not in live:
                for other in ALL_OPS[1:]:
                    new = list(ops)
                    new[i] = other
                    assert score(*new) == score(*ops)


def test_parameter_free_shortcut_lowers_a_transforming_cell():
    # adding a skip-only path 0->3 dilutes the mean depth of a cell that transforms
    for ops in _sample():
        if ops[3] == NONE and score(*ops) > 0:
            new = list(ops)
            new[3] = SKIP
            assert score(*new) < score(*ops)


def test_skip_and_pool_are_interchangeable():
    # both are parameter-free: the score does not distinguish them
    for ops in _sample(300):
        swapped = [POOL if o == SKIP else SKIP if o == POOL else o for o in ops]
        assert score(*swapped) == score(*ops)


def test_op_names_are_not_used():
    g = cell_from_arch_str(arch(C3, SKIP, C1, SKIP, C3, POOL))
    h = g.copy()
    for _, _, a in h.edges(data=True):
        a["op"] = "renamed"
    assert rank_score(h) == rank_score(g)


def test_no_path_is_below_every_cell_with_a_path():
    scores = [score(*ops) for ops in _sample(3000, seed=2)]
    finite = [s for s in scores if s != float("-inf")]
    assert min(finite) == 0.0
    assert all(s >= 0.0 for s in finite)


# ---------------------------------------------------------------- NB201 benchmark

PROXIES = ("synflow", "nwot", "jacov", "snip", "grasp", "fisher", "grad_norm", "epe_nas",
           "plain", "l2_norm", "flops", "params")


def test_kendall_tau_beats_every_zero_cost_proxy_on_nb201(nb201_records):
    """On the cells nflc builds from specs/nb201.nfl (not stand-ins), Kendall tau with the
    benchmark's accuracies by scipy, against each of its twelve zero-cost proxies."""
    from scipy.stats import kendalltau

    import nflc

    space = nflc.load(Path(__file__).resolve().parents[2] / "specs" / "nb201.nfl", space="nb201")
    graphs = [space.architecture(a["arch_str"]).graph for a in nb201_records]
    acc = [a["val_accuracy"] for a in nb201_records]
    best = max(kendalltau([a[p] for a in nb201_records], acc)[0] for p in PROXIES)
    ours = kendalltau([rank_score(g) for g in graphs], acc)[0]
    assert ours >= best, (ours, best)
