"""nflc rank: tau against scipy on a fixture, the NB201 claim, malformed files."""

import json
from pathlib import Path

import pytest
from scipy.stats import kendalltau, spearmanr
from typer.testing import CliRunner

import nflc
from nflc.cli import app
from nflc.rank import rank, top_precision

ROOT = Path(__file__).resolve().parents[2]
NB201 = ROOT / "specs" / "nb201.nfl"

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|skip_connect~2|",
]


def fixture_file(tmp_path, archs=ARCHS):
    entries = [{"arch_str": a, "val_accuracy": 60.0 + 5 * i, "proxy_a": float((i * 7) % 5), "proxy_seconds": {"proxy_a": 0.5}}
               for i, a in enumerate(archs)]
    p = tmp_path / "bench.json"
    p.write_text(json.dumps({"architectures": entries}))
    return p, entries


def test_tau_matches_scipy(tmp_path):
    path, entries = fixture_file(tmp_path)
    sp = nflc.load(NB201, space="nb201")
    res = rank(sp, path, score="params")
    acc = [e["val_accuracy"] for e in entries]
    params = [sp.architecture(e["arch_str"]).params for e in entries]
    row = res.table[0]
    assert row.kendall_tau == pytest.approx(kendalltau(params, acc).statistic)
    assert row.spearman_rho == pytest.approx(spearmanr(params, acc).statistic)
    proxy = next(r for r in res.table if r.name == "proxy_a")
    assert proxy.kendall_tau == pytest.approx(kendalltau([e["proxy_a"] for e in entries], acc).statistic)
    assert proxy.seconds_per_arch == 0.5
    # --json output: summary and per architecture its entry, nflc id, params and score
    out = tmp_path / "r.json"
    cli = CliRunner().invoke(app, ["rank", str(NB201), "-s", "nb201", "--benchmark", str(path), "--json", str(out)])
    assert cli.exit_code == 0, cli.output
    doc = json.loads(out.read_text())
    assert [a["id"] for a in doc["per_arch"]] == ARCHS and [a["entry"] for a in doc["per_arch"]] == list(range(len(ARCHS)))
    assert [a["params"] for a in doc["per_arch"]] == params and "score" in doc["per_arch"][0]
    assert doc["per_arch"][4]["score"] == "-inf"  # the all-none cell has no input-output path


def test_top_precision_counts_ties_by_expectation():
    import numpy as np

    acc = np.arange(40, dtype=float)  # top 5% of 40 = 2 architectures: indices 39, 38
    score = acc.copy()
    assert top_precision(score, acc) == 1.0
    score[[39, 0]] = 100.0  # a tie at the top between a true-top and a bottom architecture
    score[38] = -1
    assert top_precision(score, acc) == pytest.approx(0.5)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"architectures": []}', "empty"),
    ('{"archs": []}', "'architectures' list"),
    ('{"architectures": [{"arch_str": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"}]}', "missing 'val_accuracy'"),
    ('{"architectures": [{"arch_str": "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "val_accuracy": 1}]}',
     "entry 0"),
    ('{"architectures": [{"arch_str": "|none~0|", "val_accuracy": 1}, {"val_accuracy": "x"}]}', "entry 1: missing an architecture"),
])
def test_malformed_files_are_errors_not_tracebacks(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    res = CliRunner().invoke(app, ["rank", str(NB201), "-s", "nb201", "--benchmark", str(p)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    import re

    assert re.search(message, res.output)


def test_nb201_default_score_beats_every_proxy(shared_data):
    res = rank(nflc.load(NB201, space="nb201"), shared_data("nb201/nb201_cifar10.json"))
    nflc_tau = res.table[0].kendall_tau
    proxies = [r.kendall_tau for r in res.table[1:]]
    assert len(proxies) == 12
    assert nflc_tau >= max(proxies)
    # (its speed is a benchmark's business: a wall-clock assert fails on a busy machine)
