"""`nflc verify` and `nflc report` end to end on a tiny setting: a database written,
resumed without retraining, reported as JSON; bad input is a clear error (exit 2)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nflc.verify.population as population_mod
import nflc.verify.driver as driver_mod
from nflc.cli import app
from nflc.verify.store import ResultStore

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
NB201 = REPO / "specs" / "nb201.nfl"
IDS = [
    "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|",
    "|zero~0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|",
    "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|",
    "|skip~0|+|linear~0|linear~1|+|zero~0|skip~1|linear~2|",
]
TINY = ["--archs", ",".join(IDS), "--samples", "160", "--epochs", "2", "--width", "8", "--lr", "0.1", "--quiet"]


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("verify") / "results.sqlite"
    res = cli("verify", H3, *TINY, "--db", path)
    assert res.exit_code == 0, res.output
    assert "trained 4 (4 in populations, 0 one at a time)" in res.output
    return path


def test_verify_writes_every_architecture_and_its_epochs(db):
    with ResultStore.open_readonly(db) as store:
        assert store.statuses() == {i: "done" for i in IDS}
        assert all(len(store.epochs(i)) == 2 for i in IDS)
        assert store.config["width"] == 8 and store.config["data"]["samples"] == 160
        assert store.config["train"]["epochs"] == 2
        info = store.info("arch:")
        assert info[f"arch:{IDS[0]}"]["paths"] == 4 and info[f"arch:{IDS[1]}"]["paths"] == 0
        assert store.integrity_check() == "ok"


def test_a_budget_space_trains_each_network_at_its_solved_width(tmp_path):
    import nflc

    spec = REPO / "specs" / "nfl_h3_budget.nfl"
    ids = IDS[:3:2]  # P = 4 and P = 2: different solved widths
    res = cli("verify", spec, "--archs", ",".join(ids), "--samples", "100", "--epochs", "1", "--quiet",
              "--db", tmp_path / "b.sqlite")
    assert res.exit_code == 0, res.output
    assert "width solved per architecture for the budget" in res.output
    space = nflc.load(spec)
    with ResultStore.open_readonly(tmp_path / "b.sqlite") as store:
        info = store.info("arch:")
    for i in ids:
        assert info[f"arch:{i}"]["params"] == space.architecture(i).params
        assert abs(info[f"arch:{i}"]["params"] - 300_000) <= 6_000
    assert info[f"arch:{ids[0]}"]["params"] != info[f"arch:{ids[1]}"]["params"]
    res = cli("report", "--db", tmp_path / "b.sqlite")
    assert "width solved per architecture for the budget" in res.output and "width 256" not in res.output


@pytest.mark.parametrize("width, split", [(256, "0 in populations, 1 one at a time"),
                                          (12, "1 in populations, 0 one at a time")])
def test_by_default_a_cpu_batches_only_small_networks(tmp_path, width, split):
    res = cli("verify", H3, "--archs", IDS[0], "--samples", "100", "--epochs", "1", "--width", width,
              "--device", "cpu", "--quiet", "--db", tmp_path / "w.sqlite")
    assert res.exit_code == 0, res.output
    assert f"trained 1 ({split})" in res.output


def test_rerun_resumes_and_trains_nothing(db, monkeypatch):
    calls = []
    real_pop, real_group = population_mod.train_population, driver_mod.train_group
    monkeypatch.setattr(population_mod, "train_population", lambda *a, **k: calls.append("pop") or real_pop(*a, **k))
    monkeypatch.setattr(driver_mod, "train_group", lambda *a, **k: calls.append("group") or real_group(*a, **k))
    before = {i: ResultStore.open_readonly(db).epochs(i) for i in IDS}
    res = cli("verify", H3, *TINY, "--db", db)
    assert res.exit_code == 0, res.output
    assert "trained 0" in res.output and "already done 4" in res.output
    assert calls == []
    assert {i: ResultStore.open_readonly(db).epochs(i) for i in IDS} == before


def test_one_at_a_time_gives_the_same_numbers(db, tmp_path):
    other = tmp_path / "alone.sqlite"
    res = cli("verify", H3, *TINY, "--db", other, "--no-population")
    assert res.exit_code == 0 and "0 in populations, 4 one at a time" in res.output
    a, b = ResultStore.open_readonly(db), ResultStore.open_readonly(other)
    for i in IDS:
        for x, y in zip(a.epochs(i), b.epochs(i), strict=True):
            assert y.train_loss == pytest.approx(x.train_loss, rel=1e-5)


# the topology of IDS by hand: (P, mean depth); IDS[1] has no input-output path
TOPOLOGY = [(4, (1 + 2 + 2 + 3) / 4),  # all linear: paths 0-3, 0-1-3, 0-2-3, 0-1-2-3
            (0, None),
            (2, (2 + 1) / 2),  # 0-1-3 (linear, linear), 0-1-2-3 (linear, skip, skip)
            (3, (0 + 2 + 2) / 3)]  # 0-1-3 (skip, skip), 0-1-2-3 (skip, lin, lin), 0-2-3 (lin, lin)


def _tau(x, y):
    from scipy.stats import kendalltau

    return None if len(set(x)) < 2 or len(set(y)) < 2 else kendalltau(x, y).statistic


def test_report_json_has_every_architecture_and_the_statistics(db, tmp_path):
    analysis = tmp_path / "an.json"
    assert cli("analyze", H3, "--archs", ",".join(IDS), "--samples", "32", "--json", analysis).exit_code == 0
    out = tmp_path / "report.json"
    res = cli("report", "--db", db, "--analysis", analysis, "--json", out, "--plot", tmp_path / "plots",
              "--bootstrap", "50")
    assert res.exit_code == 0, res.output
    assert "Kendall tau of each measured quantity with topology" in res.output
    rep = json.loads(out.read_text())
    assert [a["id"] for a in rep["architectures"]] == IDS

    # the measured aspects, recomputed from the stored epochs: final train loss, first epoch
    # at 50% training accuracy (never: epochs + 1 = 3), final test - train loss
    with ResultStore.open_readonly(db) as store:
        hist = {i: store.epochs(i) for i in IDS}
    loss = [hist[i][-1].train_loss for i in IDS]
    epochs = [next((r.epoch for r in hist[i] if r.train_acc >= 0.5), 3) for i in IDS]
    gap = [hist[i][-1].test_loss - hist[i][-1].train_loss for i in IDS]
    for a, l, e, g in zip(rep["architectures"], loss, epochs, gap, strict=True):  # noqa: E741 (l: a loss)
        assert a["diverged"] is False and a["expressivity"] == pytest.approx(l) and a["generalization"] == pytest.approx(g)
        assert a["convergence"] == (e if e <= 2 else None)
    assert loss[1] == pytest.approx(2.302585, abs=1e-4)  # P = 0: a constant output, ln 10

    live = [k for k, (p, _) in enumerate(TOPOLOGY) if p > 0]
    paths = [TOPOLOGY[k][0] for k in live]
    depth = [TOPOLOGY[k][1] for k in live]
    raw = {"expressivity": [loss[k] for k in live], "convergence": [epochs[k] for k in live],
           "generalization": [gap[k] for k in live]}
    for aspect, values in raw.items():
        topo = rep["measured_vs_topology"][aspect]
        assert topo["paths"]["tau"] == pytest.approx(_tau(values, paths))
        assert topo["mean_depth"]["tau"] == pytest.approx(_tau(values, depth))
        assert topo["paths"]["n"] == 3

    # predicted (the analysis file's scores) against measured oriented higher = better
    scores = {a["id"]: a["scores"] for a in json.loads(analysis.read_text())["architectures"]}
    pvm = rep["predicted_vs_measured"]
    for aspect, values in raw.items():
        predicted = [scores[IDS[k]][aspect] for k in live]
        want = _tau(predicted, [-v for v in values])
        assert pvm[aspect]["n"] == 3  # the P = 0 net is left out
        assert pvm[aspect]["tau"] == pytest.approx(want)
        if want is not None:
            assert pvm[aspect]["ci_low"] - 1e-12 <= want <= pvm[aspect]["ci_high"] + 1e-12

    # winners: the least loss, fewest epochs, least gap among P > 0 (ties kept), over the
    # networks that learned something if the report says which did not (a training loss
    # that never fell 1% below chance, about ln 10 = 2.30 here)
    learned = [k for k in live if rep["architectures"][k].get("left_chance") is not False]
    for k in set(live) - set(learned):
        assert min(r.train_loss for r in hist[IDS[k]]) > 0.99 * 2.2
    assert learned
    winners = {}
    for aspect in raw:
        values = {k: v for k, v in zip(live, raw[aspect], strict=True) if k in learned}
        winners[aspect] = [IDS[k] for k, v in values.items() if v == min(values.values())]
    assert rep["nfl"]["winners"] == winners
    common = set.intersection(*map(set, winners.values()))
    if common:
        assert rep["nfl"]["verdict"].startswith("free lunch: ") and "no free lunch" not in res.output
    else:
        assert rep["nfl"]["verdict"].startswith("no free lunch") and "no free lunch" in res.output
    assert (tmp_path / "plots" / "measured_topology.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "predicted_vs_measured.png").stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    (["--dataset", "mnist", "--db", "{tmp}/a.sqlite"], "unknown dataset"),
    (["--dataset", "digits", "--db", "{tmp}/a.sqlite"], "(64,)"),
    (["--samples", "99999", "--db", "{tmp}/a.sqlite"], "--samples"),
    (["--lr", "-1", "--db", "{tmp}/a.sqlite"], "lr"),
    (["--archs", "sample:x", "--db", "{tmp}/a.sqlite"], "sample:K"),
    (["--width", "0", "--db", "{tmp}/a.sqlite"], "width"),
    (["--db", "{tmp}/no/such/dir/a.sqlite"], "cannot open results database"),
])
def test_bad_verify_input_is_a_clear_error(tmp_path, args, message):
    res = cli("verify", H3, "--samples", "100", "--epochs", "1", "--quiet", *[a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 2, res.output
    assert message in res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    res = cli("verify", H3, *TINY, "--device", "cuda", "--db", tmp_path / "c.sqlite")
    assert res.exit_code == 2 and "CUDA is not available" in res.output


def test_a_database_of_another_run_is_refused_and_left_intact(db):
    res = cli("verify", H3, *[("0.05" if a == "0.1" else a) for a in TINY], "--db", db)
    assert res.exit_code == 2 and "belongs to another run" in res.output and "lr" in res.output
    res = cli("verify", NB201, "-s", "nb201", "--archs", "0", "--dataset", "mnist5k", "--db", db, "--quiet")
    assert res.exit_code == 2  # the 784-dim MNIST does not fit NB201's 3x32x32 images either way
    with ResultStore.open_readonly(db) as store:
        assert store.integrity_check() == "ok" and set(store.statuses().values()) == {"done"}


def test_a_locked_database_is_a_clear_error(db):
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        res = cli("verify", H3, *TINY, "--db", db, "--lock-timeout", "0.2")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert res.exit_code == 2 and "locked" in res.output


def test_bad_report_input_is_a_clear_error(db, tmp_path):
    assert "no results database" in cli("report", "--db", tmp_path / "none.sqlite").output
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    res = cli("report", "--db", junk)
    assert res.exit_code == 2 and "junk.sqlite" in res.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"spec_hash": "0" * 64, "architectures": [{"id": IDS[0], "scores": {}}]}))
    res = cli("report", "--db", db, "--analysis", other)
    assert res.exit_code == 2 and "another spec" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    res = cli("report", "--db", db, "--analysis", bad)
    assert res.exit_code == 2 and "cannot read analysis file" in res.output
