"""The space package's parts, each against an independent fact: a cell's choices and
topology (from edge tuples) against its graph, structured rejections against the filter
that dropped the architecture, the one metrics registry the compiler and the space share."""

from __future__ import annotations

import networkx as nx
import pytest

import nflc
from nflc.ir.checks import BUDGET_METRICS, REQUIRE_METRICS
from nflc.metrics import METRICS, NETWORK_METRICS
from nflc.space import CellSpace, Rejection
from nflc.space.radix import decode, encode, radix_product
from nflc.space.topology import topology

from .conftest import BASE, SPECS


def test_mixed_radix_round_trip():
    radices = [3, 1, 5, 2]
    assert radix_product(radices) == 30 and radix_product([]) == 1
    for i in range(30):
        assert encode(decode(i, radices), radices) == i
    assert decode(29, radices) == (2, 0, 4, 1)  # the last digit varies fastest
    assert decode(1, radices) == (0, 0, 0, 1)


@pytest.mark.parametrize("spec, space, step", [("nb201.nfl", "nb201", 97), ("darts.nfl", None, None),
                                               ("nb101.nfl", None, None), ("nfl_h3.nfl", None, 1)])
def test_a_cells_topology_from_edge_tuples_is_its_graphs(spec, space, step):
    sp = nflc.load(SPECS / spec, space=space)
    for k in sp.instances:
        cs = sp.cell(sp.cell_of[k].name)
        assert isinstance(cs, CellSpace) and cs.count == radix_product(cs.ir.radices())
        if step is None:  # cells too large to walk: a seeded sample of architectures
            choices = [a.cell_index(k) for a in sp.sample(30, seed=4)]
        else:
            choices = range(0, cs.count, step)
        for i in choices:
            g = cs.graph(i)
            assert cs.index(cs.choice(i)) == i
            assert cs.topology(i) == topology(g) == sp.cell_topology(cs.name, i)
            assert nx.utils.graphs_equal(g, sp.cell_graph(cs.name, i))


def test_cell_metrics_by_hand_and_registry():
    """Choice |skip~0|+|zero~0|linear~1|+|linear~0|zero~1|zero~2| of a 4-node cell: paths
    0 -> 1 -> 2 (a dead end: node 2 has no way out) and 0 -> 3 (one linear): P = 1, depth 1,
    edges 0 -> 1 and 1 -> 2 dead."""
    sp = nflc.loads(BASE)
    cs = sp.cell(sp.cell_of[sp.instances[0]].name)
    i = sp.architecture("|skip~0|+|zero~0|linear~1|+|linear~0|zero~1|zero~2|").cell_index(sp.instances[0])
    m = cs.metrics(i)
    assert m == {"paths": 1, "depth": 1, "min_depth": 1, "mean_depth": 1.0, "skip_paths": 0, "dead_edges": 2,
                 "edges": 1, "in_degree": 1}
    # one registry: what `require` may name is what the space computes, network metrics aside
    assert set(m) | set(NETWORK_METRICS) == set(REQUIRE_METRICS) == set(METRICS)
    assert BUDGET_METRICS == NETWORK_METRICS == ("params", "flops")


def test_rejections_are_structured_and_read_as_before():
    sp = nflc.loads(BASE.replace("    network", "    require paths >= 2\n    budget params <= 300k\n    network"))
    seen = set()
    for r in sp.rejections():
        rej = r.rejection
        assert isinstance(rej, Rejection) and r.reason == str(rej) == sp.architecture(r.index).rejection
        seen.add(rej.kind)
        if rej.kind == "require":
            assert (rej.metric, rej.comparison, rej.bound, rej.cell) == ("paths", ">=", 2.0, "cell")
            assert rej.value == sp.cell("cell").metrics(sp.architecture(r.index).cell_index("cell"))["paths"] < 2
            assert r.reason == f"require paths >= 2: cell 'cell' has paths = {rej.value:g}"
        else:
            assert (rej.kind, rej.metric, rej.comparison, rej.bound) == ("budget", "params", "<=", 300_000)
            assert rej.value == sp.architecture(r.index).params > 300_000
            assert r.reason == f"budget params <= 300,000: has {rej.value:,}"
    assert seen == {"require", "budget"}


def test_unique_and_scale_rejections():
    sp = nflc.loads(BASE.replace("    network", "    unique\n    network"))
    r = next(sp.rejections()).rejection
    assert r.kind == "unique" and r.cell == "cell" and r.detail is not None
    earlier = sp.architecture(r.detail)
    assert earlier.rejected_by is None and str(r) == f"unique: cell is isomorphic to the earlier {r.detail}"
    # a tolerance no integer width meets: the nearest width and its parameter count
    tight = nflc.loads((SPECS / "nfl_h3_budget.nfl").read_text().replace("+- 2%", "+- 0.01%"))
    for a in (tight.architecture(i) for i in range(0, 729, 73)):
        rej = a.rejected_by
        assert rej is not None and (rej.kind, rej.metric, rej.comparison, rej.bound, rej.tolerance) == \
            ("budget", "params", "==", 300_000, 30)
        width = int(rej.detail.split("width = ")[1].split()[0])
        assert rej.value == a.cost(overrides={"width": width}).params and abs(rej.value - 300_000) > 30
        assert str(rej) == f"budget params == 300,000 +- 30: the nearest width = {width} gives {rej.value:,}"


def test_a_warning_names_the_statement_that_dropped_everything():
    text = BASE.replace("    network", "    require paths >= 0\n    budget params <= 10\n    network")
    warning = nflc.loads(text).filters_reject_all()
    assert warning is not None and warning.span is not None
    assert text.splitlines()[warning.span.line - 1].strip() == "budget params <= 10"
    assert "(the first: budget params <= 10: has " in warning.message
