"""`nflc analyze` runs on the spaces of issue #14 (NAS-Bench-101, NATS-Bench SSS, DARTS):
data-free (`--dataset none --measure none`), a sample of each, JSON rows whose ids parse
back to architectures with the reported parameter counts and topology."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nflc
from nflc.cli import app

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.mark.parametrize("spec", ["nb101", "nats_sss", "darts"])
def test_analyze_data_free_on_the_new_spaces(spec, tmp_path):
    out = tmp_path / "a.json"
    res = CliRunner().invoke(app, ["analyze", str(SPECS / f"{spec}.nfl"), "--archs", "sample:3", "--seed", "1",
                                   "--dataset", "none", "--measure", "none", "--json", str(out), "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    doc = json.loads(out.read_text())
    space = nflc.load(SPECS / f"{spec}.nfl")
    rows = doc["architectures"]
    assert len(rows) == 3
    for row in rows:
        arch = space.architecture(row["index"])
        assert row["params"] == arch.params
        cells = row["topology"]["cells"]
        assert set(cells) == set(space.instances)
        for k in space.instances:
            assert cells[k]["paths"] == arch.topology(k).paths
        assert math.isfinite(row["scores"]["expressivity"])
