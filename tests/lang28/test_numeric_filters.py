"""Issue #28: filters, budgets, constants and `unique` that use a numeric choice are judged at
each architecture's own values. Expected counts come from the hand formula of the space's
parameters (a 12 -> w stem, w -> 3 readout, no bias: 15w; w^2 per linear edge, dead ones
too), enumerated here over every choice of the 3 edges."""

from __future__ import annotations

import itertools
import json

import pytest

import nflc
from tests.frontend.conftest import cli, no_traceback

SPACE = """space s {{ input [12]  classes 3  bias false  {numeric}
  {extra}
  cell {{ nodes 3  edge * : zero | skip | linear >> relu as lin }}
  network = linear(w) >> relu >> cell >> linear(classes)
  {filters} }}"""


def by_hand(values: dict[str, list[int]], keep) -> int:
    """Architectures (numeric values x 3 edges of zero | skip | lin) with ``keep(params, values)``."""
    n = 0
    for combo in itertools.product(*values.values()):
        v = dict(zip(values, combo, strict=True))
        for edges in itertools.product(["zero", "skip", "lin"], repeat=3):
            n += keep(15 * v["w"] + edges.count("lin") * v["w"] ** 2, v)
    return n


@pytest.mark.parametrize("numeric, extra, filters, keep", [
    ("w in {4, 8, 16}", "", "require params <= w * 20", lambda p, v: p <= 20 * v["w"]),
    ("w in {4, 8, 16}", "", "budget params <= w * 20", lambda p, v: p <= 20 * v["w"]),
    ("w in {4, 8, 16}", "cap = w * 20", "require params <= cap", lambda p, v: p <= 20 * v["w"]),
    ("w in {4, 8}  v in {10, 20}", "", "require params <= w * v", lambda p, v: p <= v["w"] * v["v"]),
    ("w in {16, 4}", "", "budget params == 20 * w +- w", lambda p, v: abs(p - 20 * v["w"]) <= v["w"]),
])
def test_a_network_filter_holds_at_each_value(tmp_path, numeric, extra, filters, keep):
    src = SPACE.format(numeric=numeric, extra=extra, filters=filters)
    expected = by_hand({k: [int(x) for x in vs.strip(" {}").split(",")]
                        for k, vs in (part.split(" in ") for part in numeric.split("  "))}, keep)
    sp = nflc.loads(src)
    assert sp.count() == expected == len(list(sp))
    path = tmp_path / "s.nfl"
    path.write_text(src)
    res = cli("count", path)
    no_traceback(res)
    assert res.output.strip() == str(expected)


def test_the_issue_reproducer_counts_36_and_names_the_bound_at_w_8(tmp_path):
    src = SPACE.format(numeric="w in {4, 8, 16}", extra="", filters="require params <= w * 20")
    assert by_hand({"w": [4, 8, 16]}, lambda p, v: p <= 20 * v["w"]) == 20 + 8 + 8 == 36
    sp = nflc.loads(src)
    assert sp.count() == 36
    path = tmp_path / "s.nfl"
    path.write_text(src)
    res = cli("list", path, "--rejected", "--json", "-")
    no_traceback(res)
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert len(rows) == 3 * 27 - 36
    at8 = [r for r in rows if r["id"].startswith("8;")]
    # w = 8: 120 + 64 * lin > 160 exactly when lin >= 1
    assert at8 and all(r["reason"] == f"require params <= 160: has {120 + 64 * r['id'].count('lin~')}" for r in at8)


def test_a_cell_filter_that_uses_a_numeric_choice():
    # `require paths <= w - 3`: w = 4 keeps cells with at most one path 0 -> 2, w = 5 at most two
    src = SPACE.format(numeric="w in {4, 5}", extra="", filters="require paths <= w - 3")
    paths = []
    for e01, e02, e12 in itertools.product(["zero", "skip", "lin"], repeat=3):
        paths.append((e02 != "zero") + (e01 != "zero" and e12 != "zero"))
    expected = sum(p <= 1 for p in paths) + sum(p <= 2 for p in paths)
    assert nflc.loads(src).count() == expected


def test_unique_is_decided_at_each_value():
    # conv2d(k) and conv2d(3) are one op at k = 3 only (the brute force of
    # tests/frontend/test_feature_combinations.py gives 275 for 4 nodes; here 3 nodes by hand):
    # 3 edges of zero | a | b. k = 3: a == b, so classes of {zero, op}^3 = 8 graphs, of which
    # those with a path 0 -> 2 or not ... counted by an explicit canonical form below.
    src = """space s { input [3, 8, 8] classes 3 bias false k in {3, 5}
        cell { nodes 3  edge * : zero | conv2d(k) >> batchnorm as a | conv2d(3) >> batchnorm as b }
        network = conv2d(3, 4) >> cell >> global_avg_pool >> linear(classes)
        unique }"""

    def classes(same: bool) -> int:
        seen = set()
        for e01, e02, e12 in itertools.product(["zero", "a", "b"], repeat=3):
            norm = {"zero": "zero", "a": "b" if same else "a", "b": "b"}
            # a 3-node cell has one intermediate node: no renumbering, only dead edges to drop
            live01 = e01 != "zero" and e12 != "zero"
            seen.add((norm[e02], norm[e01] if live01 else "zero", norm[e12] if live01 else "zero"))
        return len(seen)

    assert nflc.loads(src).count() == classes(True) + classes(False)
