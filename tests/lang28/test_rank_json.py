"""Issue #28: `nflc rank --json` writes strict JSON: a correlation that is undefined (every
accuracy, or every score, the same) is null with the reason, never NaN."""

from __future__ import annotations

import json
from pathlib import Path

import nflc
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


def test_identical_architectures_are_scored_once_and_every_entry_is_checked_first(tmp_path, monkeypatch):
    import nflc.analysis.rank_score as rank_score

    calls = []
    real = rank_score.architecture_score
    monkeypatch.setattr(rank_score, "architecture_score", lambda a: calls.append(a.id) or real(a))
    entries = [{"arch_str": (ARCH, OTHER)[i % 2], "val_accuracy": 80.0 + i % 2 + i / 10**4} for i in range(2000)]
    bench = tmp_path / "b.json"
    bench.write_text(json.dumps({"architectures": entries}))
    out = tmp_path / "out.json"
    res = cli("rank", NB201, "-s", "nb201", "--benchmark", bench, "--score", "expressivity", "--bootstrap", "0",
              "--json", out)
    no_traceback(res)
    assert res.exit_code == 0, res.output
    assert sorted(calls) == sorted([ARCH, OTHER])  # two architectures, each scored once
    rows = strict(out.read_text())["per_arch"]
    assert len(rows) == 2000
    assert {r["score"] for r in rows[0::2]} == {real(nflc.load(NB201, "nb201").architecture(ARCH))}
    # a bad last entry is found before any scoring
    calls.clear()
    entries[-1] = {"arch_str": "|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|", "val_accuracy": 1.0}
    bench.write_text(json.dumps({"architectures": entries}))
    res = cli("rank", NB201, "-s", "nb201", "--benchmark", bench, "--score", "expressivity")
    assert res.exit_code == 2 and "entry 1999" in res.output and calls == [], res.output
