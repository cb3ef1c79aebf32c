"""The specs shipped in specs/: each compiles, and each means what its comment says."""

from __future__ import annotations

import json

import pytest

import nflc

from .conftest import SPECS, cli, no_traceback

ALL_SPECS = sorted(SPECS.glob("*.nfl"))


@pytest.mark.parametrize("path", ALL_SPECS, ids=[p.name for p in ALL_SPECS])
def test_every_spec_compiles_cleanly(path):
    spaces = nflc.load_all(path)
    assert spaces
    for sp in spaces.values():
        assert sp.ir.lint() == []
        assert sp.warnings == [], [w.message for w in sp.warnings]
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 0 and "warning" not in res.output, res.output


def test_counts_from_the_issue():
    assert cli("count", SPECS / "nfl_h3.nfl").output.strip() == "729"
    assert cli("count", SPECS / "nb201.nfl", "--space", "nb201").output.strip() == "15625"
    assert cli("count", SPECS / "nb201.nfl", "--space", "nb201_unique").output.strip() == "8765"


# ---------------------------------------------------------------- NAS-Bench-201

@pytest.fixture(scope="module")
def nb201():
    return nflc.load(SPECS / "nb201.nfl", space="nb201")


def test_nb201_all_none_network_has_73306_parameters(nb201):
    a = nb201.architecture("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert a.index == 0 and a.params == 73_306


def test_nb201_parameter_counts_equal_the_benchmark(nb201, nb201_records):
    records = nb201_records
    assert len(records) > 300
    for r in records:
        a = nb201.architecture(r["arch_str"])
        assert round(a.params / 1e6, 6) == pytest.approx(r["params"], abs=1e-9), r["arch_str"]


def test_nb201_ids_round_trip(nb201, nb201_records):
    for r in nb201_records:
        assert nb201.architecture(r["arch_str"]).id == r["arch_str"]


def test_nb201_largest_network(nb201):
    """All edges nor_conv_3x3: the benchmark's largest model, 1.531546M parameters."""
    a = nb201.architecture("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert a.params == 1_531_546


# ---------------------------------------------------------------- the chain

def test_resnet_chain():
    sp = nflc.load(SPECS / "resnet_chain.nfl", space="resnet_chain")
    shared = nflc.load(SPECS / "resnet_chain.nfl", space="resnet_chain_shared")
    assert sp.count() == 16 and shared.count() == 2
    assert len(sp.instances) == 4 and len(shared.instances) == 1
    assert sum(st.kind == "cell" for st in shared.ir.network) == 4
    # skip or plain does not change the parameters: 784*128 + 4 blocks * 2 * 128^2 + 128*10
    assert {a.params for a in sp} == {784 * 128 + 8 * 128 * 128 + 1280}
    resnet = sp.architecture("|dense~0|+|skip~0|dense~1|;" * 3 + "|dense~0|+|skip~0|dense~1|")
    plain = sp.architecture(";".join(["|dense~0|+|plain~0|dense~1|"] * 4))
    assert resnet.index == 0 and plain.index == 15
    assert all(resnet.topology(k).paths == 2 for k in sp.instances)
    assert all(plain.topology(k).paths == 1 for k in sp.instances)
    g = resnet.network_graph
    assert g.has_edge("%3.X0", "%3.X2") and not plain.network_graph.has_edge("%3.X0", "%3.X2")


# ---------------------------------------------------------------- width solving

@pytest.fixture(scope="module")
def budget():
    return nflc.load(SPECS / "nfl_h3_budget.nfl")


def n_linear(a) -> int:
    return a.id.count("linear~")


def test_budget_solves_a_sensible_width_per_architecture(budget):
    b = budget.scale_budget
    assert (b.metric, b.cmp, b.value, b.tolerance, b.scale) == ("params", "==", 300_000, 6000, "width")
    kept = list(budget)
    assert len(kept) == budget.count() == 729  # 2% is wide enough for every cell
    by_linear = {}
    for a in kept:
        assert abs(a.params - 300_000) <= 6000
        by_linear.setdefault(n_linear(a), set()).add(a.width)
    # parameters depend on the number of linear edges only, so the width does too ...
    assert all(len(ws) == 1 for ws in by_linear.values())
    widths = [by_linear[k].pop() for k in range(7)]
    # ... and it shrinks as the cell gets more linear layers: 794 w + k w^2 ~ 300k
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == 7
    assert widths[0] == 378 and 150 < widths[6] < 200


def test_budget_width_is_the_nearest(budget):
    for a in budget.sample(40, seed=0):
        w = a.width
        dist = abs(a.params - 300_000)
        for other in (w - 1, w + 1):
            assert abs(a.cost(overrides={"width": other}).params - 300_000) >= dist


def test_budget_drops_what_misses_the_tolerance_and_says_why():
    text = (SPECS / "nfl_h3_budget.nfl").read_text().replace("+- 2%", "+- 0.05%")
    sp = nflc.loads(text)
    kept, dropped = list(sp), list(sp.rejections())
    assert kept and dropped and len(kept) + len(dropped) == 729 == sp.raw_count()
    assert sp.count() == len(kept)
    assert all(abs(a.params - 300_000) <= 150 for a in kept)
    for r in dropped:
        a = sp.architecture(r.index)
        assert r.reason.startswith("budget params == 300,000 +- 150: the nearest width = ")
        assert abs(a.params - 300_000) > 150 and f"gives {a.params:,}" in r.reason


def test_list_shows_the_solved_width():
    res = cli("list", SPECS / "nfl_h3_budget.nfl", "--limit", "3", "--json")
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["width"] for r in rows] == [378, 378, 279]


# ---------------------------------------------------------------- a space too large to enumerate

def test_nb201_independent_counts_exactly():
    sp = nflc.load(SPECS / "nb201_independent.nfl")
    assert len(sp.instances) == 15
    assert sp.count() == 15625 ** 15 > 10 ** 60
    res = cli("count", SPECS / "nb201_independent.nfl")
    assert res.exit_code == 0 and res.output.strip() == str(15625 ** 15)


def test_nb201_independent_samples_reproducibly():
    # (its speed, about 0.3 s, is benchmarks/bench_frontend.py's business: a wall-clock
    # assert fails on a busy machine)
    first = cli("list", SPECS / "nb201_independent.nfl", "--sample", "5", "--seed", "1", "--json")
    second = cli("list", SPECS / "nb201_independent.nfl", "--sample", "5", "--seed", "1", "--json")
    assert first.exit_code == 0 and first.output == second.output
    rows = [json.loads(line) for line in first.output.splitlines()]
    assert len(rows) == 5 and all(r["id"].count(";") == 14 for r in rows)
    assert len({r["index"] for r in rows}) == 5
    sp = nflc.load(SPECS / "nb201_independent.nfl")
    for r in rows:
        assert sp.architecture(r["id"]).index == r["index"]
        assert sp.architecture(r["index"]).params == r["params"]


def test_nb201_independent_with_one_choice_everywhere_is_nb201():
    """Every placement choosing the same cell gives NAS-Bench-201's network and its parameters."""
    ind = nflc.load(SPECS / "nb201_independent.nfl")
    nb = nflc.load(SPECS / "nb201.nfl", space="nb201")
    for i in (0, 777, 15624):
        cell = nb.architecture(i).id
        assert ind.architecture(";".join([cell] * 15)).params == nb.architecture(i).params


def test_listing_a_huge_space_needs_a_limit():
    res = cli("list", SPECS / "nb201_independent.nfl")
    assert res.exit_code == 2 and "--limit N or --sample K" in res.output
    res = cli("list", SPECS / "nb201_independent.nfl", "--limit", "2", "--json")
    assert [json.loads(x)["index"] for x in res.output.splitlines()] == [0, 1]
