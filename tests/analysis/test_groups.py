"""Architectures computing the same function: groups checked against a brute force written
here (zero and dead edges removed by enumerating every path, intermediate nodes renumbered
every way), and the kernels a group shares against each member's own exact kernels."""

import itertools
from pathlib import Path

import numpy as np
import pytest

import nflc
from nflc.analysis.analyze import analyze
from nflc.analysis.exact import normalize_inputs
from nflc.analysis.groups import representatives

ROOT = Path(__file__).resolve().parents[2]
H3 = ROOT / "specs" / "nfl_h3.nfl"


def brute_computing_graph(arch) -> tuple:
    """The cell's edges on some 0 -> 3 path, zero edges dropped, least over relabelings of 1, 2."""
    g = arch.graph
    h = max(g.nodes)
    edges = [(s, t, a["op"]) for s, t, a in g.edges(data=True) if a["kind"] != "zero"]

    def paths(node):  # every path from node to h, as edge lists
        if node == h:
            return [[]]
        return [[e, *rest] for e in edges if e[0] == node for rest in paths(e[1])]

    live = {e for p in paths(0) for e in p}
    forms = []
    for perm in itertools.permutations(range(1, h)):
        m = {0: 0, h: h, **{old: new for old, new in zip(range(1, h), perm, strict=True)}}
        forms.append(tuple(sorted((m[s], m[t], op) for s, t, op in live)))
    return min(forms)


@pytest.fixture(scope="module")
def h3():
    return nflc.load(H3)


def test_groups_are_the_brute_force_classes(h3):
    archs = list(h3)
    reps = representatives(archs)
    forms = [brute_computing_graph(a) for a in archs]
    for i in range(len(archs)):
        for j in range(i + 1, len(archs)):
            assert (reps[i] == reps[j]) == (forms[i] == forms[j]), (archs[i].id, archs[j].id)
    assert len(set(reps)) == len(set(forms))
    # the representative has the fewest parameters of its group
    for i, r in enumerate(reps):
        assert archs[r].params <= archs[i].params


def test_shared_kernels_equal_each_members_own(h3):
    """A group computes its kernels once; every member's own exact kernels agree."""
    archs = [h3.architecture(i) for i in range(0, 729, 7)]
    res = analyze(h3, data="none", samples=12, seed=0, archs=archs)
    from nflc.analysis.analyze import analysis_inputs

    x, _, _ = analysis_inputs(h3, "none", 12, 0)
    xs = normalize_inputs(x)
    checked = 0
    for a, r in zip(archs, res.architectures, strict=True):
        own = nflc.kernels(a, xs)
        k = own.nngp
        i, j = np.triu_indices(len(k), 1)
        bound = np.min((np.diag(k)[i] + np.diag(k)[j]) / 2 - k[i, j])
        assert r.kernels["nngp"]["pair_bound"] == pytest.approx(bound, rel=1e-10, abs=1e-12)
        assert r.kernels["ntk"]["lambda_max"] == pytest.approx(np.linalg.eigvalsh(own.ntk)[-1], rel=1e-10)
        checked += r.group != r.index
    assert checked > 0  # some members used their group's computation


def test_group_sizes_in_the_report(h3):
    archs = list(h3)
    res = analyze(h3, data="none", samples=8, seed=0, archs=archs)
    forms = [brute_computing_graph(a) for a in archs]
    size = {f: forms.count(f) for f in set(forms)}
    for _a, r, f in zip(archs, res.architectures, forms, strict=True):
        assert r.group_size == size[f]
    rep = res.report
    for asp, ids in rep.winners.items():
        assert rep.winner_groups[asp] == len({forms[h3.architecture(i).index] for i in ids})
    assert rep.pareto_groups == len({forms[h3.architecture(i).index] for i in rep.pareto_front})


def test_budget_solved_widths_split_groups():
    """nfl_h3_budget solves each network's width: a dead linear edge still costs parameters,
    so members of a computing-graph class can get different widths, and are then different
    functions."""
    sp = nflc.load(ROOT / "specs" / "nfl_h3_budget.nfl")
    archs = list(sp)
    reps = representatives(archs)
    for a, r in zip(archs, reps, strict=True):
        assert a.width == archs[r].width
    forms = [brute_computing_graph(a) for a in archs]
    split = {f for f in forms if len({a.width for a, g in zip(archs, forms, strict=True) if g == f}) > 1}
    assert split  # the spec has such classes, and they are split by width
    for f in split:
        widths = {a.width for a, g in zip(archs, forms, strict=True) if g == f}
        groups = {r for r, g in zip(reps, forms, strict=True) if g == f}
        assert len(groups) == len(widths)
