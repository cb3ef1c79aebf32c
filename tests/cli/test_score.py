"""`nflc score` (data-free scores without accuracies, for search loops; `nflc.score` in the
API) and `nflc rank` on NAS-Bench-Suite-Zero's JSON as NASLib publishes it
(``{dataset: {"(arch tuple)": {"id", "val_accuracy", proxy: {"score", "time"}}}}``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy.stats import kendalltau
from typer.testing import CliRunner

import nflc
from nflc import encodings as enc
from nflc.analysis.rank_score import architecture_score
from nflc.cli import app
from nflc.rank import naslib_entries, rank, read_benchmark

ROOT = Path(__file__).resolve().parents[2]
NB201, NB101, DARTS, H3 = (ROOT / "specs" / f for f in ("nb201.nfl", "nb101.nfl", "darts.nfl", "nfl_h3.nfl"))


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


@pytest.fixture(scope="module")
def nb201():
    return nflc.load(NB201, space="nb201")


# ------------------------------------------------------------------ nflc score


def test_score_json_on_stdout_gives_each_architectures_score_in_order(nb201):
    archs = nb201.sample(6, seed=2)
    res = cli("score", NB201, "--space", "nb201", "--archs", ",".join(str(a.index) for a in archs), "--json", "-")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["space"] == "nb201" and doc["score"] == "nflc" and doc["higher_is_better"] is True
    assert [r["id"] for r in doc["architectures"]] == [a.id for a in archs]
    assert [r["params"] for r in doc["architectures"]] == [a.params for a in archs]
    # as nflc rank writes them: a network without an input-output path scores the string "-inf" (JSON has no -inf)
    scores = [-math.inf if r["score"] == "-inf" else r["score"] for r in doc["architectures"]]
    assert scores == pytest.approx([architecture_score(a) for a in archs]) and -math.inf in scores


def test_the_python_equivalent_is_nflc_score(nb201):
    archs = nb201.sample(5, seed=3)
    assert nflc.score(archs) == pytest.approx([architecture_score(a) for a in archs])
    assert nflc.score(archs[0]) == pytest.approx(architecture_score(archs[0]))
    assert nflc.score(archs, kind="params") == [float(a.params) for a in archs]
    # no input-output path: the lowest possible score
    dead = nb201.architecture("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert nflc.score(dead) == -math.inf
    with pytest.raises(nflc.NflcError, match="unknown score"):
        nflc.score(archs, kind="accuracy")


def test_darts_scores_a_sample_of_twenty_as_the_issue_asks():
    res = cli("score", DARTS, "--archs", "sample:20", "--json", "-")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["architectures"]
    space = nflc.load(DARTS)
    assert [r["id"] for r in rows] == [a.id for a in space.sample(20, seed=0)]
    assert all(isinstance(r["score"], float) and r["score"] > 0 for r in rows)


def test_from_file_reads_ids_encodings_and_entries_in_their_order(nb201, tmp_path):
    a, b, c, d = nb201.sample(4, seed=5)
    items = [a.id, enc.from_id(b.id, "op_indices"), {"arch_str": c.id, "val_accuracy": 91.0},
             {"naslib_op_indices": enc.from_id(d.id, "op_indices")}, d.index]
    (tmp_path / "archs.json").write_text(json.dumps(items))
    res = cli("score", NB201, "--space", "nb201", "--from-file", tmp_path / "archs.json", "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "s.json").read_text())["architectures"]
    assert [r["id"] for r in rows] == [a.id, b.id, c.id, d.id, d.id]
    genotype = nflc.load(DARTS).sample(1, seed=9)[0]
    (tmp_path / "darts.json").write_text(json.dumps([enc.from_id(genotype.id, "genotype"),
                                                     str(tuple(map(tuple, map(lambda cell: tuple(map(tuple, cell)),
                                                                              enc.from_id(genotype.id, "compact")))))]))
    res = cli("score", DARTS, "--from-file", tmp_path / "darts.json", "--json", "-")
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in json.loads(res.output)["architectures"]] == [genotype.id] * 2


def test_from_file_reports_every_bad_item_at_once(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps(["|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|",
                                                   [9, 9, 9, 9, 9, 9], {"arch_str": 3.5}, "not an id"]))
    res = cli("score", NB201, "--space", "nb201", "--from-file", tmp_path / "bad.json")
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "4 of 4 item(s) not read" in text and "item 0" in text and "item 1" in text


def test_score_refuses_both_selections_and_a_table_lists_best_first(nb201, tmp_path):
    (tmp_path / "a.json").write_text("[0]")
    both = cli("score", NB201, "--space", "nb201", "--archs", "sample:2", "--from-file", tmp_path / "a.json")
    assert both.exit_code == 2 and "give one of them" in both.output
    res = cli("score", NB201, "--space", "nb201", "--archs", "sample:4")
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if line.startswith("│")]
    scores = [float(line.split("│")[-2]) for line in rows]
    assert len(rows) == 4 and scores == sorted(scores, reverse=True)


# ------------------------------------------------------------------ NAS-Bench-Suite-Zero's published JSON


def naslib_table(entries: list[dict], key_of) -> dict:
    """A zc_nasbench*.json table written the way NASLib writes it: str(tuple) keys, a
    running 'id', each proxy as {"score", "time"}."""
    table = {}
    for i, e in enumerate(entries):
        row = {"id": i, "val_accuracy": e["val_accuracy"]}
        for name, value in e["proxies"].items():
            row[name] = {"score": value, "time": 0.5 + i}
        table[key_of(e)] = row
    return table


def test_a_naslib_nb201_file_is_read_as_published(nb201, tmp_path):
    archs = nb201.sample(8, seed=4)
    entries = [{"ops": enc.from_id(a.id, "op_indices"), "val_accuracy": 80.0 + i,
                "proxies": {"synflow": float(i % 3), "params": a.params / 1e6}} for i, a in enumerate(archs)]
    doc = {"cifar10": naslib_table(entries, lambda e: str(tuple(e["ops"]))),
           "cifar100": naslib_table(entries[:3], lambda e: str(tuple(e["ops"])))}
    path = tmp_path / "zc_nasbench201.json"
    path.write_text(json.dumps(doc))
    got = read_benchmark(path)
    assert [g.id for g in got] == [a.id for a in archs]  # NASLib's running 'id' is not read as an nflc id
    assert [g.accuracy for g in got] == [80.0 + i for i in range(8)]
    assert got[5].proxies == {"synflow": 2.0, "params": archs[5].params / 1e6} and got[5].proxy_seconds["synflow"] == 5.5
    assert len(read_benchmark(path, "cifar100")) == 3
    res = rank(nb201, path)
    by = {r.name: r for r in res.table}
    acc = [80.0 + i for i in range(8)]
    assert by["synflow"].kendall_tau == pytest.approx(kendalltau([i % 3 for i in range(8)], acc).statistic)
    assert by["synflow"].seconds_per_arch == pytest.approx(sum(0.5 + i for i in range(8)) / 8)
    assert by["nflc:nflc"].kendall_tau == pytest.approx(kendalltau([architecture_score(a) for a in archs], acc).statistic)
    out = cli("rank", NB201, "--space", "nb201", "--benchmark", path, "--benchmark-dataset", "cifar100")
    assert out.exit_code == 0 and "3 architectures of nb201" in out.output, out.output
    wrong = cli("rank", NB201, "--space", "nb201", "--benchmark", path, "--benchmark-dataset", "ImageNet16-120")
    assert wrong.exit_code == 2 and "has no dataset 'ImageNet16-120'; it has cifar10, cifar100" in " ".join(wrong.output.split())


def test_naslib_nb101_and_darts_keys_are_their_hashes(tmp_path):
    nb101 = nflc.load(NB101)
    a = nb101.sample(1, seed=1)[0]
    key101 = str(tuple(enc.from_id(a.id, "naslib_tuple")))  # 49 matrix entries then 7 op codes
    darts = nflc.load(DARTS)
    g = darts.sample(1, seed=2)[0]
    key301 = str(tuple(tuple(tuple(p) for p in cell) for cell in enc.from_id(g.id, "compact")))
    for table, key, want in (({key101: {"id": 0, "val_accuracy": 90.0}}, key101, a.id),
                             ({key301: {"id": 0, "val_accuracy": 94.0}}, key301, g.id)):
        entries = naslib_entries({"cifar10": table}, "f.json")
        assert enc.entry_id(entries[0]) == want and key.startswith("(")
        assert naslib_entries(table, "f.json") == entries  # one table saved as is


def test_a_file_in_neither_form_is_refused_with_both_forms_named(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"results": [1, 2]}))
    res = cli("rank", NB201, "--space", "nb201", "--benchmark", path)
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "neither an object with an 'architectures' list nor NAS-Bench-Suite-Zero's zero-cost JSON" in text
    path.write_text(json.dumps({"cifar10": {"(9, 9)": {"val_accuracy": 1}}}))
    res = cli("rank", NB201, "--space", "nb201", "--benchmark", path)
    assert res.exit_code == 2 and "1 malformed entry: entry 0: naslib_tuple: a NASLib NB101 tuple has n*n + n entries" in \
        " ".join(res.output.split())


def test_the_shared_nb201_file_ranks_the_same_in_naslibs_form(shared_data, nb201, tmp_path):
    path = shared_data("nb201/nb201_cifar10.json")
    entries = json.loads(path.read_text())["architectures"]
    table = {}
    for i, e in enumerate(entries):
        row = {"id": i, "val_accuracy": e["val_accuracy"]}
        row.update({k: {"score": v, "time": e["proxy_seconds"].get(k)} for k, v in e.items()
                    if k not in ("arch_str", "naslib_op_indices", "val_accuracy", "proxy_seconds")})
        table[str(tuple(e["naslib_op_indices"]))] = row
    (tmp_path / "zc.json").write_text(json.dumps({"cifar10": table}))
    ours, theirs = rank(nb201, path), rank(nb201, tmp_path / "zc.json")
    assert [(r.name, r.kendall_tau, r.seconds_per_arch) for r in ours.table[1:]] == \
        [(r.name, r.kendall_tau, r.seconds_per_arch) for r in theirs.table[1:]]
    assert ours.table[0].kendall_tau == theirs.table[0].kendall_tau
    assert [a["id"] for a in ours.per_arch] == [a["id"] for a in theirs.per_arch]
