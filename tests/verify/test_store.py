"""The SQLite results store: identity of a run, lifecycle, atomicity, locking, full disk."""

from __future__ import annotations

import math
import sqlite3

import pytest

from nflc.verify.store import (
    ResultStore,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreMismatchError,
    canonical_json,
)
from nflc.verify.train import Aspects, EpochRecord, TrainConfig

CONFIG = TrainConfig(epochs=3, lr=0.1, seed=1)


def rec(epoch: int, loss: float = 1.0) -> EpochRecord:
    return EpochRecord(epoch=epoch, train_loss=loss, train_acc=0.5, test_loss=loss + 0.1, test_acc=0.4)


def done_aspects(epochs: int = 3, **kw) -> Aspects:
    base = dict(expressivity=0.5, convergence=2, generalization=0.1, diverged=False, epochs=epochs)
    return Aspects(**{**base, **kw})


@pytest.fixture
def db(tmp_path):
    return tmp_path / "results.sqlite"


def test_open_creates_wal_database_with_foreign_keys(db):
    with ResultStore.open(db, "hash-a", CONFIG) as store:
        assert store.integrity_check() == "ok"
        assert store.config == CONFIG.model_dump(mode="json")
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "archs", "epochs", "checkpoints"} <= tables
    conn.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO epochs VALUES (1, 'ghost', 1, 1.0, 0.5, 1.0, 0.5)")


def test_reopen_with_same_spec_and_config_keeps_results(db):
    with ResultStore.open(db, "hash-a", CONFIG) as store:
        store.register(["a"])
        run_id = store.run_id
    # Same configuration given as a dict with another key order: same canonical JSON.
    same = dict(reversed(list(CONFIG.model_dump(mode="json").items())))
    with ResultStore.open(db, "hash-a", same) as store:
        assert store.run_id == run_id and store.statuses() == {"a": "pending"}


def test_other_spec_hash_is_refused_with_a_fix(db):
    ResultStore.open(db, "hash-a", CONFIG).close()
    with pytest.raises(StoreMismatchError) as info:
        ResultStore.open(db, "hash-b", CONFIG)
    assert "spec hash hash-a -> hash-b" in str(info.value)
    assert "--db" in info.value.diagnostics[0].hint


def test_a_database_of_another_schema_version_is_refused(db):
    # version 1 trained each architecture on its own data order: never mixed with today's
    ResultStore.open(db, "hash-a", CONFIG).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with pytest.raises(StoreMismatchError, match="schema version 1"):
        ResultStore.open(db, "hash-a", CONFIG)
    with ResultStore.open_readonly(db) as store:  # reading (nflc report) is fine: same tables
        assert store.config == CONFIG.model_dump(mode="json")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with pytest.raises(StoreMismatchError, match="schema version 3"):
        ResultStore.open_readonly(db)


def test_other_config_is_refused_naming_the_field(db):
    ResultStore.open(db, "hash-a", CONFIG).close()
    with pytest.raises(StoreMismatchError) as info:
        ResultStore.open(db, "hash-a", CONFIG.model_copy(update={"lr": 0.2}))
    assert "lr: 0.1 -> 0.2" in str(info.value) and "spec hash" not in str(info.value)


def test_canonical_json_ignores_key_order_and_rejects_nan():
    assert canonical_json({"b": 1, "a": [1.5, None]}) == canonical_json({"a": [1.5, None], "b": 1}) == '{"a":[1.5,null],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"lr": math.nan})


def test_lifecycle_pending_running_done(db):
    with ResultStore.open(db, "h", CONFIG) as store:
        store.register(["a", "b"])
        store.register(["b", "c"])  # already present: kept, not duplicated
        assert store.statuses() == {"a": "pending", "b": "pending", "c": "pending"}
        store.start("a")
        store.save_progress("a", [rec(1), rec(2)], 2, b"state-2")
        assert store.status("a") == "running" and store.checkpoint("a") == (2, b"state-2")
        assert store.aspects("a") is None and store.results() == {}
        store.finish("a", [rec(3, 0.5)], done_aspects(convergence=None))
        assert store.status("a") == "done" and store.checkpoint("a") is None
        assert [r.epoch for r in store.epochs("a")] == [1, 2, 3]
        assert store.epochs("a")[2] == rec(3, 0.5)
        assert store.aspects("a") == done_aspects(convergence=None)
        assert list(store.results()) == ["a"]


def test_non_finite_losses_round_trip(db):
    with ResultStore.open(db, "h", CONFIG) as store:
        store.register(["x"])
        store.start("x")
        bad = EpochRecord(epoch=2, train_loss=math.nan, train_acc=0.1, test_loss=math.inf, test_acc=0.1)
        store.finish("x", [rec(1), bad], Aspects(expressivity=None, convergence=None, generalization=None, diverged=True, epochs=2))
        got = store.epochs("x")[1]
        assert math.isnan(got.train_loss) and got.test_loss == math.inf
        assert store.status("x") == "diverged" and store.aspects("x").diverged


def test_finish_refuses_missing_epochs_and_writes_nothing(db):
    with ResultStore.open(db, "h", CONFIG) as store:
        store.register(["a"])
        store.start("a")
        with pytest.raises(StoreError, match="2 epochs stored, the result claims 3"):
            store.finish("a", [rec(1), rec(2)], done_aspects(epochs=3))
        # the whole transaction rolled back: no epochs, still running
        assert store.epochs("a") == [] and store.status("a") == "running"


def test_failed_write_leaves_no_partial_rows(db):
    with ResultStore.open(db, "h", CONFIG) as store:
        store.register(["a"])
        store.start("a")
        store.save_progress("a", [rec(1)], 1, b"s1")
        with pytest.raises(StoreError):
            # epoch 2 is new, epoch 1 is a duplicate: the batch must not half-apply
            store.save_progress("a", [rec(2), rec(1)], 2, b"s2")
        assert [r.epoch for r in store.epochs("a")] == [1] and store.checkpoint("a") == (1, b"s1")
        with pytest.raises(StoreError, match="not registered"):
            store.save_progress("ghost", [rec(1)], 1, b"s")


def test_start_drops_epochs_not_covered_by_the_checkpoint(db):
    with ResultStore.open(db, "h", CONFIG) as store:
        store.register(["a", "b"])
        store.start("a")
        store.save_progress("a", [rec(1), rec(2)], 2, b"s")
    # Simulate a hand-edited file with an epoch beyond the checkpoint, and one without.
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO epochs VALUES (1, 'a', 3, 1.0, 0.5, 1.0, 0.5)")
    conn.execute("INSERT INTO epochs VALUES (1, 'b', 1, 1.0, 0.5, 1.0, 0.5)")
    conn.commit()
    conn.close()
    with ResultStore.open(db, "h", CONFIG) as store:
        store.start("a")
        store.start("b")
        assert [r.epoch for r in store.epochs("a")] == [1, 2] and store.epochs("b") == []


def test_locked_database_gives_a_clear_error(db):
    ResultStore.open(db, "h", CONFIG).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process writing
    try:
        with pytest.raises(StoreLockedError) as info:
            ResultStore.open(db, "h", CONFIG, timeout=0.1)
        assert "locked" in str(info.value) and "--db" in info.value.diagnostics[0].hint
    finally:
        other.execute("ROLLBACK")
        other.close()
    with ResultStore.open(db, "h", CONFIG, timeout=0.1) as store:
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreLockedError):
                store.register(["a"])
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.register(["a"])  # usable again once the lock is gone
        assert store.statuses() == {"a": "pending"}


def test_full_disk_gives_a_clear_error_and_keeps_the_file_consistent(db):
    with ResultStore.open(db, "h", CONFIG) as store:
        store.register(["a"])
        store.start("a")
        store.save_progress("a", [rec(1)], 1, b"small")
        # SQLite reports SQLITE_FULL once a connection's max_page_count is reached: the
        # same error as a full disk, without filling one.
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreFullError) as info:
            store.save_progress("a", [rec(2)], 2, b"x" * 200_000)
        assert "full" in str(info.value) and "--db" in info.value.diagnostics[0].hint
        assert [r.epoch for r in store.epochs("a")] == [1] and store.checkpoint("a") == (1, b"small")
        assert store.integrity_check() == "ok"


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("not a database, just some text that is long enough " * 40)
    with pytest.raises(StoreError, match="--db|unusable"):
        ResultStore.open(path, "h", CONFIG)
