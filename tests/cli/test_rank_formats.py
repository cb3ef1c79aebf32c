"""nflc rank on NAS-Bench-101 and NAS-Bench-301 files (NASLib's encodings as they come):
tau against scipy, per-architecture id and params, malformed entries named."""

import copy
import json
import math
import re
from pathlib import Path

import pytest
from scipy.stats import kendalltau
from typer.testing import CliRunner

import nflc
from nflc import encodings as enc
from nflc.cli import app
from nflc.rank import rank

ROOT = Path(__file__).resolve().parents[2]
NB101 = ROOT / "specs" / "nb101.nfl"
DARTS = ROOT / "specs" / "darts.nfl"


@pytest.fixture(scope="module")
def nb101_space():
    return nflc.load(NB101)


def ranked_by_scipy(res, entries):
    """The reported taus against scipy's on the columns as the test reads them."""
    acc = [e["val_accuracy"] for e in entries]
    by_name = {r.name: r for r in res.table}
    for name in ("synflow", "params", "flops"):  # proxy columns of the file
        assert by_name[name].kendall_tau == pytest.approx(kendalltau([e[name] for e in entries], acc).statistic)
    assert not any(r.name.endswith("_seconds") for r in res.table)
    scores = [math.inf if s == "inf" else -math.inf if s == "-inf" else s for s in (a["score"] for a in res.per_arch)]
    assert all(math.isfinite(s) for s in scores)
    assert res.table[0].kendall_tau == pytest.approx(kendalltau(scores, acc).statistic)


def test_nb101_file_tau_ids_and_params(shared_data, nb101_space, tmp_path):
    path = shared_data("nb101/nb101_cifar10.json")
    entries = json.loads(path.read_text())["architectures"]
    sp = nb101_space
    res = rank(sp, path, score="params")
    params = [sp.architecture(enc.nb101_to_id(e["matrix"], e["ops"])).params for e in entries]
    acc = [e["val_accuracy"] for e in entries]
    assert res.table[0].name == "nflc:params"
    assert res.table[0].kendall_tau == pytest.approx(kendalltau(params, acc).statistic)
    ranked_by_scipy(res, entries)
    # the default score, whatever its values, through the command's --json
    out = tmp_path / "r.json"
    cli = CliRunner().invoke(app, ["rank", str(NB101), "--benchmark", str(path), "--json", str(out)])
    assert cli.exit_code == 0, cli.output
    doc = json.loads(out.read_text())
    assert [a["id"] for a in doc["per_arch"]] == [enc.nb101_to_id(e["matrix"], e["ops"]) for e in entries]
    assert [a["params"] for a in doc["per_arch"]] == params
    scores = [a["score"] for a in doc["per_arch"]]
    assert doc["table"][0]["kendall_tau"] == pytest.approx(kendalltau(scores, acc).statistic)


def test_nb301_file_tau_ids_params_and_seconds(shared_data):
    path = shared_data("nb301/nb301_cifar10.json")
    entries = json.loads(path.read_text())["architectures"]
    sp = nflc.load(DARTS)  # specs/darts.nfl: not skipped when missing
    res = rank(sp, path, score="params")
    acc = [e["val_accuracy"] for e in entries]
    ids = [enc.genotype_to_id(e["genotype"]) for e in entries]
    assert [a["id"] for a in res.per_arch] == ids
    # nflc's params are NAS-Bench-301's network's (the file's params are millions, 6 decimals)
    assert [round(a["params"] / 1e6, 6) for a in res.per_arch] == [e["params"] for e in entries]
    assert res.table[0].kendall_tau == pytest.approx(kendalltau([a["params"] for a in res.per_arch], acc).statistic)
    ranked_by_scipy(res, entries)
    synflow = next(r for r in res.table if r.name == "synflow")
    assert synflow.seconds_per_arch == pytest.approx(sum(e["synflow_seconds"] for e in entries) / len(entries))
    ranked_by_scipy(rank(sp, path), entries)


# ---------------------------------------------------------------- malformed entries (no shared data needed)

CHAIN = [[0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0],
         [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]]
OPS = ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"]


def nb101_entries():
    out = []
    for k in range(4):  # valid: a chain with k extra edges from the input
        m = copy.deepcopy(CHAIN)
        for j in range(2, 2 + k):
            m[0][j] = 1
        out.append({"matrix": m, "ops": OPS, "val_accuracy": 90.0 + k, "synflow": float(k % 3)})
    return out


G = {"normal": [["sep_conv_3x3", 0], ["sep_conv_5x5", 1], ["skip_connect", 0], ["max_pool_3x3", 2],
                ["dil_conv_3x3", 1], ["avg_pool_3x3", 3], ["sep_conv_3x3", 0], ["dil_conv_5x5", 4]],
     "normal_concat": [2, 3, 4, 5], "reduce_concat": [2, 3, 4, 5]}


def nb301_entries():
    out = []
    for k in range(4):
        g = copy.deepcopy(G)
        g["normal"][0][0] = enc.DARTS_OPS[k]
        g["reduce"] = copy.deepcopy(G["normal"])
        out.append({"genotype": g, "val_accuracy": 90.0 + k, "synflow": float(k), "synflow_seconds": 0.25})
    return out


def run(tmp_path, spec, entries):
    p = tmp_path / "bench.json"
    p.write_text(json.dumps({"architectures": entries}))
    return CliRunner().invoke(app, ["rank", str(spec), "--benchmark", str(p), "--score", "params"])


def test_small_files_of_both_formats_rank(tmp_path):
    res = run(tmp_path, NB101, nb101_entries())
    assert res.exit_code == 0, res.output
    res = run(tmp_path, DARTS, nb301_entries())
    assert res.exit_code == 0, res.output
    assert "synflow" in res.output and "synflow_seconds" not in res.output


def nb101_bad(k, **change):
    entries = nb101_entries()
    entries[k].update(change)
    return entries


def nb301_bad(k, cell, pair, value):
    entries = nb301_entries()
    entries[k]["genotype"][cell][pair] = value
    return entries


@pytest.mark.parametrize("spec, entries, message", [
    (NB101, nb101_bad(1, matrix=[row[:] for row in CHAIN[:6]]), r"entry 1: matrix/ops: matrix\[0\] has 7 entries, not 6"),
    (NB101, nb101_bad(2, matrix=[[0] * 7] + CHAIN[1:6] + [[0, 0, 0, 0, 0, 1, 0]]),
     r"entry 2: matrix/ops: matrix\[6\]\[5\] = 1 is on or below the diagonal"),
    (NB101, nb101_bad(1, ops=OPS[:3] + ["maxpool5x5"] + OPS[4:]), r"entry 1: matrix/ops: ops\[3\]: 'maxpool5x5' is not one of"),
    (NB101, nb101_bad(3, naslib_tuple=[0] * 49 + [0, 4, 4, 4, 4, 4, 1]),
     r"entry 3: matrix and naslib_tuple name different architectures"),
    (NB101, nb101_bad(0, matrix=[[0] * 7 for _ in range(7)]),
     r"entry 0 \(.*\) is not in space 'nb101': node cell .* has no input-output path"),
    (NB101, nb101_bad(2, matrix=[[0, 1, 1, 1, 1, 1, 1]] + CHAIN[1:]),
     r"entry 2 \(.*\) is not in space 'nb101': require edges <= 9: cell .* has edges = 11"),
    (DARTS, nb301_bad(1, "normal", 3, ["max_pool_3x3", 0]),
     r"entry 1: genotype: genotype normal\[3\] = \[\"max_pool_3x3\", 0\] \(node 3\): both pairs of node 3 take input 0"),
    (DARTS, nb301_bad(2, "reduce", 7, ["sep_conv_7x7", 4]), r"entry 2: genotype: genotype reduce\[7\] .*'sep_conv_7x7' is not one"),
    (DARTS, nb301_bad(3, "normal", 1, ["sep_conv_5x5", 2]), r"entry 3: genotype: .*input 2 is not a node before node 2"),
    (DARTS, nb301_bad(0, "normal_concat", slice(0, 4), [2, 3, 4, 5, 6]), r"entry 0: genotype: normal_concat is \[2, 3, 4, 5, 6\]"),
])
def test_malformed_entries_are_named(tmp_path, spec, entries, message):
    res = run(tmp_path, spec, entries)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert re.search(message, res.output), res.output
