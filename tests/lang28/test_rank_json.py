"""Issue #28: `nflc rank --json` writes strict JSON: a correlation that is undefined (every
accuracy, or every score, the same) is null with the reason, never NaN."""

from __future__ import annotations

import json
from pathlib import Path

from tests.frontend.conftest import cli, no_traceback

NB201 = Path(__file__).resolve().parents[2] / "specs" / "nb201.nfl"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
OTHER = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def strict(text: str):
    def refuse(constant: str):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_equal_accuracies_give_null_with_a_reason(tmp_path):
    bench = tmp_path / "b.json"
    bench.write_text(json.dumps({"architectures": [
        {"arch_str": ARCH, "val_accuracy": 90.0, "nwot": 1.0},
        {"arch_str": OTHER, "val_accuracy": 90.0, "nwot": 2.0},
        {"arch_str": ARCH, "val_accuracy": 90.0, "nwot": 3.0}]}))
    out = tmp_path / "out.json"
    res = cli("rank", NB201, "-s", "nb201", "--benchmark", bench, "--score", "params", "--json", out)
    no_traceback(res)
    assert res.exit_code == 0, res.output
    doc = strict(out.read_text())
    rows = {r["name"]: r for r in doc["table"]}
    # every accuracy is 90: Kendall's tau and Spearman's rho are 0/0 for every column
    assert rows["nwot"]["kendall_tau"] is None and rows["nwot"]["undefined"] == "every accuracy is the same"
    assert rows["nflc:params"]["kendall_tau"] is None
