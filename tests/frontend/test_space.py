"""Spaces: enumeration order, indices and ids, lookup, seeded uniform sampling, filters,
and `unique` checked against an independent brute force."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

import nflc
from nflc.errors import SpaceError

from .conftest import BASE, SPECS

OPS3 = ("zero", "skip", "linear")
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@pytest.fixture(scope="module")
def h3():
    return nflc.load(SPECS / "nfl_h3.nfl")


@pytest.fixture(scope="module")
def nb201():
    return nflc.load(SPECS / "nb201.nfl", space="nb201")


def cell_id(groups) -> str:
    """NAS-Bench-201's string of ``groups[t - 1][s]`` = op of edge s -> t."""
    return "+".join("|" + "|".join(f"{op}~{s}" for s, op in enumerate(g)) + "|" for g in groups)


def groups_of(ops6):
    """Six ops in (dst, src) order -> groups of a 4-node cell."""
    return [list(ops6[0:1]), list(ops6[1:3]), list(ops6[3:6])]


def parse_groups(text: str) -> dict[tuple[int, int], str]:
    """Edges {(s, t): op} of an id string, parsed independently of nflc."""
    out = {}
    for t, g in enumerate(text.split("+"), start=1):
        for item in g.strip("|").split("|"):
            op, src = item.split("~")
            out[(int(src), t)] = op
    return out


# ---------------------------------------------------------------- order, indices, ids

def test_enumeration_order_is_deterministic_and_raw(h3):
    first = [a.id for a in h3]
    assert first == [a.id for a in nflc.load(SPECS / "nfl_h3.nfl")]
    assert [a.index for a in h3] == list(range(729))
    # (dst, src) edge order, last edge fastest, choices in their written order
    expected = [cell_id(groups_of(ops)) for ops in itertools.product(OPS3, repeat=6)]
    assert first == expected


def test_index_and_id_round_trip_nfl_h3(h3):
    for i in range(729):
        a = h3.architecture(i)
        assert a.index == i
        assert h3.architecture(a.id).index == i
        assert h3.architecture(str(i)).index == i
        assert h3.parse_id(a.id) == i


def test_index_and_id_round_trip_nb201_sample(nb201):
    rng = random.Random(0)
    for i in [0, 15624] + rng.sample(range(15625), 300):
        a = nb201.architecture(i)
        assert a.index == i and nb201.architecture(a.id).index == i


def test_nb201_ids_are_nas_bench_201_strings(nb201):
    for ops in [("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")]:
        text = cell_id(groups_of(ops))
        assert nb201.architecture(text).id == text
    # the prelude's other names for the same ops are accepted and normalised
    assert nb201.architecture(cell_id(groups_of(["zero", "identity"] + ["none"] * 4))).id == \
        cell_id(groups_of(["none", "skip_connect"] + ["none"] * 4))


def test_paper_dag_2_02_002(h3):
    """The paper's "2_02_002" (0 zero, 1 skip, 2 linear; groups per target node)."""
    text = "|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|"
    a = h3.architecture(text)
    assert a.id == text
    assert a.index == int("202002", 3)
    g = a.graph
    assert {(s, t) for s, t, d in g.edges(data=True) if d["op"] != "zero"} == {(0, 1), (1, 2), (2, 3)}
    assert all(d["kind"] == "linear_relu" for _, _, d in g.edges(data=True) if d["op"] == "linear")


def test_lookup_errors(h3):
    for bad in [-1, 729, True, "x", "|linear~0|", 3.0]:
        with pytest.raises(SpaceError):
            h3.architecture(bad)


def test_id_whitespace_and_alias_tolerance(h3):
    text = "|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|"
    assert h3.architecture("  " + text + " ").id == text
    assert h3.architecture(text.replace("zero", "none")).id == text  # 'none' is the prelude's zero


def test_indices_are_mixed_radix_numbers_with_the_last_edge_fastest():
    """Edges of 2, 3 and 3 choices: index i is the i-th tuple of itertools.product over the
    edges in (target, source) order, whatever order the spec lists them in."""
    text = BASE.replace("nodes 4", "nodes 3").replace(
        "edge * : zero | skip | linear >> relu as linear",
        "edge 1 -> 2 : zero | skip | linear >> relu as lin\n        edge 0 -> 2 : zero | skip | linear >> relu as lin\n"
        "        edge 0 -> 1 : skip | linear >> relu as lin")
    sp = nflc.loads(text)
    choices = {(0, 1): ("skip", "lin"), (0, 2): ("zero", "skip", "lin"), (1, 2): ("zero", "skip", "lin")}
    order = [(0, 1), (0, 2), (1, 2)]
    expected = list(itertools.product(*(choices[e] for e in order)))
    assert sp.count() == len(expected) == 18
    for i, ops in enumerate(expected):
        a = sp.architecture(i)
        assert parse_groups(a.id) == dict(zip(order, ops, strict=True)), (i, a.id)
        assert sp.architecture(a.id).index == i


def test_multi_cell_ids_join_instances_with_semicolons():
    sp = nflc.load(SPECS / "resnet_chain.nfl", space="resnet_chain")
    assert len(sp.instances) == 4 and sp.count() == 16
    a = sp.architecture(5)
    assert a.id.count(";") == 3 and sp.architecture(a.id).index == 5
    with pytest.raises(SpaceError, match="4 cell instance"):
        sp.architecture(a.id.split(";")[0])


# ---------------------------------------------------------------- sampling

def test_sampling_is_seeded(h3):
    a = [x.index for x in h3.sample(20, seed=3)]
    assert a == [x.index for x in h3.sample(20, seed=3)]
    assert a != [x.index for x in h3.sample(20, seed=4)]
    assert len(set(a)) == 20  # without replacement


def test_sampling_is_uniform_chi_square():
    """8 architectures (3 edges x {zero, skip}); 4000 single draws with different seeds."""
    stats = pytest.importorskip("scipy.stats")
    sp = nflc.loads(BASE.replace("nodes 4", "nodes 3").replace("zero | skip | linear >> relu as linear", "zero | skip"))
    assert sp.count() == 8
    counts = Counter(sp.sample(1, seed=s)[0].index for s in range(4000))
    assert set(counts) == set(range(8))
    assert stats.chisquare([counts[i] for i in range(8)]).pvalue > 1e-3


def test_sampling_a_filtered_space_is_uniform_over_what_it_keeps():
    stats = pytest.importorskip("scipy.stats")
    text = BASE.replace("nodes 4", "nodes 3").replace("zero | skip | linear >> relu as linear", "zero | skip")
    sp = nflc.loads(text.replace("    network", "    require paths >= 1\n    network"))
    kept = [a.index for a in sp]
    assert len(kept) == 5  # of 8: 0->2 alone, or 0->1 and 1->2, in any combination
    counts = Counter(sp.sample(1, seed=s)[0].index for s in range(3000))
    assert set(counts) == set(kept)
    assert stats.chisquare([counts[i] for i in kept]).pvalue > 1e-3


# ---------------------------------------------------------------- filters

def connected(edges: dict[tuple[int, int], str], h: int) -> bool:
    """Is there a path X0 -> XH over non-zero edges? (plain DFS)"""
    seen, todo = {0}, [0]
    while todo:
        s = todo.pop()
        for (a, b), op in edges.items():
            if a == s and op not in ("zero", "none") and b not in seen:
                seen.add(b)
                todo.append(b)
    return h in seen


def test_require_paths_filters_exactly_the_connected_cells():
    sp = nflc.loads(BASE.replace("    network", "    require paths >= 1\n    network"))
    brute = [cell_id(groups_of(ops)) for ops in itertools.product(OPS3, repeat=6)
             if connected(parse_groups(cell_id(groups_of(ops))), 3)]
    assert sp.count() == len(brute) == len(list(sp))
    assert [a.id for a in sp] == brute
    dropped = list(sp.rejections())
    assert len(dropped) == 729 - len(brute)
    assert all("require paths >= 1" in r.reason and "paths = 0" in r.reason for r in dropped)
    assert sp.architecture(0).rejection is not None


def test_network_budget_filter_with_reasons():
    sp = nflc.loads(BASE.replace("    network", "    budget params <= 300k\n    network"))
    kept = list(sp)
    assert 0 < len(kept) < 729 and sp.count() == len(kept)
    assert all(a.params <= 300_000 for a in kept)
    for r in sp.rejections(limit=5):
        assert r.reason.startswith("budget params <= 300,000: has ")
        assert sp.architecture(r.index).params > 300_000


MULTI = """
space multi {
    input [6]
    classes 2
    width 4
    cell a {
        nodes 3
        edge * : zero | skip | linear >> relu as linear
    }
    cell b {
        nodes 2
        edge 0 -> 1 : zero | skip | linear >> relu as linear
    }
    network = linear(width) >> relu >> a x2 independent >> b >> linear(classes)
    FILTERS
}
"""


@pytest.mark.parametrize("filters", ["require paths >= 1", "unique", "unique\n    require paths >= 1", ""])
def test_filtered_count_over_several_cell_instances(filters):
    """Three instances (two independent copies of cell a, one of b): the count is the
    product of what each instance keeps, brute-forced here cell by cell, and equals both
    the enumeration and a walk over every raw index."""
    sp = nflc.loads(MULTI.replace("FILTERS", filters))
    assert sp.instances == ["a#0", "a#1", "b"] and sp.raw_count() == 27 * 27 * 3

    def kept(h: int) -> int:
        pairs = [(s, t) for t in range(1, h + 1) for s in range(t)]
        classes, n = set(), 0
        for ops in itertools.product(OPS3, repeat=len(pairs)):
            edges = dict(zip(pairs, ops, strict=True))
            if "require" in filters and not connected(edges, h):
                continue
            if "unique" in filters:
                key = canonical(edges, h, "zero")
                if key in classes:
                    continue
                classes.add(key)
            n += 1
        return n

    expected = kept(2) * kept(2) * kept(1)
    walk = [i for i in range(sp.raw_count()) if sp.architecture(i).rejection is None]
    assert sp.count() == expected == len(walk) == len(list(sp))
    assert [a.index for a in sp] == walk


def canonical(edges: dict[tuple[int, int], str], h: int, zero: str) -> tuple:
    """Brute-force canonical form of a cell's computing graph: drop zero and dead edges, then
    the least sorted edge list over all permutations of the intermediate nodes."""
    live = {(s, t): op for (s, t), op in edges.items() if op != zero}
    fwd, bwd = {0}, {h}
    for _ in range(h):
        fwd |= {t for (s, t) in live if s in fwd}
        bwd |= {s for (s, t) in live if t in bwd}
    live = {(s, t): op for (s, t), op in live.items() if s in fwd and t in bwd}
    best = None
    for perm in itertools.permutations(range(1, h)):
        m = {0: 0, h: h, **{k: v for k, v in zip(range(1, h), perm, strict=True)}}
        form = tuple(sorted((m[s], m[t], op) for (s, t), op in live.items()))
        best = form if best is None or form < best else best
    return best


def brute_unique(ops: tuple[str, ...], zero: str) -> list[str]:
    """First id (in enumeration order) of each isomorphism class."""
    seen, keep = set(), []
    for choice in itertools.product(ops, repeat=6):
        text = cell_id(groups_of(choice))
        key = canonical(parse_groups(text), 3, zero)
        if key not in seen:
            seen.add(key)
            keep.append(text)
    return keep


def test_unique_nb201_matches_brute_force():
    sp = nflc.load(SPECS / "nb201.nfl", space="nb201_unique")
    brute = brute_unique(NB201_OPS, "none")
    assert len(brute) == 8765
    assert sp.count() == 8765
    assert [a.id for a in sp] == brute


def test_unique_nfl_h3_matches_brute_force():
    sp = nflc.loads(BASE.replace("    network", "    unique\n    network"))
    brute = brute_unique(OPS3, "zero")
    assert sp.count() == len(brute) == len(list(sp))
    assert [a.id for a in sp] == brute
    r = next(sp.rejections())
    assert r.reason.startswith("unique: cell is isomorphic to the earlier |")


def test_unique_vf2_path_agrees_with_canonical_forms(monkeypatch):
    from nflc.space import canonical

    text = BASE.replace("    network", "    unique\n    network")
    fast = nflc.loads(text).cell("cell").representatives
    monkeypatch.setattr(canonical, "CANONICAL_MAX_MIDS", 0)
    assert nflc.loads(text).cell("cell").representatives == fast


def nb201_unique_str(ops6) -> str:
    """NAS-Bench-201's Structure.to_unique_str(consider_zero=True), transcribed: skip edges
    merged into their source, sums sorted as strings, zero terms kept as '#'."""
    nodes = {0: "0"}
    for t, group in enumerate(groups_of(ops6), start=1):
        cur = []
        for xin, op in enumerate(group):
            if op == "none" or nodes[xin] == "#":
                cur.append("#")
            elif op == "skip_connect":
                cur.append(nodes[xin])
            else:
                cur.append("(" + nodes[xin] + ")" + f"@{op}")
        nodes[t] = "+".join(sorted(cur))
    return nodes[3]


def test_enumeration_matches_nas_bench_201_cell_set(nb201):
    """NAS-Bench-201's own functional de-duplication over our enumeration gives its published 6466."""
    strs = {nb201_unique_str(tuple(parse_groups(a.id)[(s, t)] for t in (1, 2, 3) for s in range(t)))
            for a in nb201}
    assert len(strs) == 6466


def test_unique_with_per_cell_filters_counts_without_enumerating():
    """Filters on single cells factor over instances: 15 independent NB201 cells, unique."""
    text = (SPECS / "nb201_independent.nfl").read_text().replace("linear(classes, bias=true)",
                                                                  "linear(classes, bias=true)\n    unique")
    sp = nflc.loads(text)
    assert sp.count() == 8765 ** 15
