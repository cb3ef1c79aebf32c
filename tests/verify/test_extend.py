"""Extending a fixed-epoch run: `nflc verify --epochs 4` then `--epochs 5` on the same
database continues every finished network from its kept final state and ends bit for bit
where a 5-epoch run ends (on a CPU); shortening, other changes and runs without final
states are refused with what to do."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nflc.cli import app
from nflc.verify.store import ResultStore, StoreMismatchError, epochs_extension
from nflc.verify.train import TrainConfig

from .helpers import dump_results

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
IDS = "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|,|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|"
BASE = ["--archs", IDS, "--samples", "120", "--width", "8", "--quiet", "--threads", "1"]


def verify(db, *extra, ok=True):
    res = CliRunner().invoke(app, ["verify", str(H3), *BASE, "--db", str(db), *map(str, extra)])
    assert "Traceback" not in res.output, res.output
    if ok:
        assert res.exit_code == 0, res.output
    return res


@pytest.mark.parametrize("mode", ["--population", "--no-population"])
def test_four_then_five_epochs_equals_five_at_once(tmp_path, mode):
    verify(tmp_path / "ext.sqlite", "--epochs", "4", mode)
    with ResultStore.open_readonly(tmp_path / "ext.sqlite") as store:  # each finished network kept its final state
        assert {a: store.checkpoint(a)[0] for a in store.statuses()} == {a: 4 for a in IDS.split(",")}
    res = verify(tmp_path / "ext.sqlite", "--epochs", "5", mode)
    assert "extended the run in" in res.output and "from 4 to 5 epochs: 2 finished network(s)" in res.output
    verify(tmp_path / "once.sqlite", "--epochs", "5", mode)
    assert dump_results(tmp_path / "ext.sqlite") == dump_results(tmp_path / "once.sqlite")
    with ResultStore.open_readonly(tmp_path / "ext.sqlite") as store:
        assert store.config["train"]["epochs"] == 5
        assert [len(store.epochs(a)) for a in IDS.split(",")] == [5, 5]
    with sqlite3.connect(tmp_path / "ext.sqlite") as conn:
        history = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'extended'").fetchone()[0])
    assert [(h["from"], h["to"]) for h in history] == [(4, 5)]
    again = verify(tmp_path / "ext.sqlite", "--epochs", "5", mode)  # nothing left: a plain resume
    assert "extended" not in again.output and "already done 2" in again.output


def test_a_run_cannot_be_shortened_or_changed_otherwise(tmp_path):
    db = tmp_path / "r.sqlite"
    verify(db, "--epochs", "3")
    short = verify(db, "--epochs", "2", ok=False)
    assert short.exit_code == 2 and "a run can be extended, not shortened" in short.output
    other = verify(db, "--epochs", "4", "--lr", "0.05", ok=False)  # the epochs and something else
    assert other.exit_code == 2 and "belongs to another run" in other.output and "lr" in other.output
    with ResultStore.open_readonly(db) as store:  # refused: nothing changed
        assert store.config["train"]["epochs"] == 3 and set(store.statuses().values()) == {"done"}


def test_a_database_without_final_states_is_not_extended(tmp_path):
    db = tmp_path / "old.sqlite"
    verify(db, "--epochs", "2")
    with sqlite3.connect(db) as conn:  # as an nflc that did not keep them left it
        conn.execute("DELETE FROM checkpoints")
    res = verify(db, "--epochs", "3", ok=False)
    assert res.exit_code == 2 and "2 finished network(s) kept no final state" in " ".join(res.output.split())
    assert "rerun with --epochs 2" in " ".join(res.output.split())


def test_a_converging_run_is_not_extended_by_its_cap(tmp_path):
    db = tmp_path / "conv.sqlite"
    verify(db, "--until-converged", "--stop-rule", "window", "--max-epochs", "6", "--plateau-window", "3")
    res = verify(db, "--until-converged", "--stop-rule", "window", "--max-epochs", "7", "--plateau-window", "3",
                 ok=False)
    assert res.exit_code == 2 and "belongs to another run" in res.output
    with ResultStore.open_readonly(db) as store:  # a converging run keeps no final states
        assert all(store.checkpoint(a) is None for a in store.statuses())


def test_epochs_extension_reads_both_configuration_shapes():
    a, b = TrainConfig(epochs=4), TrainConfig(epochs=6)
    dump = lambda c: json.dumps(c.model_dump(mode="json"))  # noqa: E731
    assert epochs_extension(dump(a), dump(b)) == (4, 6)
    assert epochs_extension(json.dumps({"space": "s", "train": a.model_dump(mode="json")}),
                            json.dumps({"space": "s", "train": b.model_dump(mode="json")})) == (4, 6)
    assert epochs_extension(json.dumps({"space": "s", "train": a.model_dump(mode="json")}),
                            json.dumps({"space": "t", "train": b.model_dump(mode="json")})) is None
    assert epochs_extension(dump(a), dump(TrainConfig(epochs=6, lr=0.5))) is None


def test_the_store_extends_and_refuses_in_one_transaction(tmp_path):
    from nflc.verify.train import Aspects, EpochRecord

    db = tmp_path / "s.sqlite"
    rec = lambda e: EpochRecord(epoch=e, train_loss=1.0 / e, train_acc=0.5, test_loss=1.0, test_acc=0.5)  # noqa: E731
    with ResultStore.open(db, "h", TrainConfig(epochs=2)) as store:
        store.register(["a", "b", "c"])
        for arch in ("a", "b"):
            store.start(arch)
            store.save_progress(arch, [rec(1), rec(2)], 2, b"final")
        store.finish("a", [], Aspects(expressivity=0.5, convergence=1, generalization=0.5, diverged=False, epochs=2), keep_final=True)
        store.finish("b", [], Aspects(expressivity=None, convergence=None, generalization=None, diverged=True,
                                         epochs=2), keep_final=True)
        assert store.checkpoint("a") == (2, b"final") and store.checkpoint("b") is None  # a diverged one keeps nothing
    with ResultStore.open(db, "h", TrainConfig(epochs=3)) as store:
        assert store.extended == (2, 3, 1)
        assert store.statuses() == {"a": "running", "b": "diverged", "c": "pending"}
        assert store.checkpoint("a") == (2, b"final") and [r.epoch for r in store.epochs("a")] == [1, 2]
        assert store.aspects("a") is None and store.aspects("b").diverged
    with pytest.raises(StoreMismatchError, match="not shortened"):
        ResultStore.open(db, "h", TrainConfig(epochs=2))
    with ResultStore.open(db, "h", TrainConfig(epochs=3)) as store:
        assert store.extended is None
