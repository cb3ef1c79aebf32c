"""Issue #28: `nflc list --rejected` neither hangs on spaces without filters (DARTS: 10^18
architectures, none rejected) nor walks a huge space without bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.frontend.conftest import cli, no_traceback

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.mark.parametrize("spec", ["darts.nfl", "nb201_independent.nfl"])
def test_a_space_without_filters_rejects_nothing_at_once(spec):
    res = cli("list", SPECS / spec, "--rejected", "--limit", "5")
    no_traceback(res)
    assert res.exit_code == 0 and "no rejected architectures" in res.output, res.output


def test_a_walk_that_finds_too_few_stops_and_says_how_far_it_got(tmp_path):
    # 10 edges of 4 choices: 4**10 = 1,048,576 architectures; `paths >= 0` rejects none
    spec = tmp_path / "big.nfl"
    spec.write_text("space s { input [4] classes 2 cell { nodes 5 edge * : zero | skip | relu | linear >> relu } "
                    "network = linear(8) >> cell >> linear(classes) require paths >= 0 }")
    res = cli("list", spec, "--rejected", "--limit", "3")
    no_traceback(res)
    assert res.exit_code == 2 and "stopped after examining 50,000 of the 1,048,576" in res.output, res.output
