"""The results database under mishaps (issue #27, items 2, 3, 4, 7, 9, 10): a database
deleted or replaced under a running writer stops it with an error (never a success) and
what it held is saved; a damaged database is refused before anything is written, saying
what `nflc report` can still read; any schema object that is not nflc's makes a file
foreign; unreadable metadata and checkpoints are named errors; read-only databases are
read by `report` and refused by `verify` as read-only; a dangling or too long `--db`
is refused."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nflc.cli import app
from nflc.verify.store import ResultStore, StoreError
from nflc.verify.train import EpochRecord, TrainConfig

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
TINY = ["--archs", "0,1", "--samples", "160", "--epochs", "2", "--width", "8", "--quiet"]
CONFIG = TrainConfig(epochs=3, lr=0.1, seed=1)


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def rec(epoch: int) -> EpochRecord:
    return EpochRecord(epoch=epoch, train_loss=1.0, train_acc=0.5, test_loss=1.1, test_acc=0.4)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    db = tmp_path_factory.mktemp("finished") / "r.sqlite"
    res = cli("verify", H3, *TINY, "--db", db)
    assert res.exit_code == 0, res.output
    return db


@pytest.fixture
def db(tmp_path, finished):
    path = tmp_path / "r.sqlite"
    shutil.copy(finished, path)
    return path


# ---------------------------------------------------------------------------------------
# item 2: deleted or replaced under a running writer


def test_a_database_deleted_under_the_writer_stops_it_and_its_content_is_saved(tmp_path):
    path = tmp_path / "d.sqlite"
    store = ResultStore.open(path, "h", CONFIG)
    store.register(["a", "b"])
    store.start("a")
    store.save_progress("a", [rec(1)], 1, b"state")
    os.unlink(path)
    with pytest.raises(StoreError, match="deleted") as info:
        store.save_progress("a", [rec(2)], 2, b"state2")
    store.close()
    assert not path.exists()  # nothing recreated in its place
    saved = Path(str(path) + ".recovered")
    assert str(saved) in str(info.value)
    with ResultStore.open_readonly(saved) as back:
        assert back.statuses() == {"a": "running", "b": "pending"} and [r.epoch for r in back.epochs("a")] == [1]


def test_a_database_replaced_under_the_writer_stops_it_and_the_new_file_is_left_alone(tmp_path):
    path = tmp_path / "d.sqlite"
    store = ResultStore.open(path, "h", CONFIG)
    store.register(["a"])
    other = tmp_path / "other"
    other.write_bytes(b"someone else's file")
    os.replace(other, path)
    with pytest.raises(StoreError, match="replaced"):
        store.start("a")
    store.close()
    assert path.read_bytes() == b"someone else's file"


def test_the_heartbeat_never_recreates_a_deleted_database(tmp_path, monkeypatch):
    import nflc.verify.store as S

    monkeypatch.setattr(S, "LEASE_HEARTBEAT", 0.02)
    path = tmp_path / "d.sqlite"
    store = ResultStore.open(path, "h", CONFIG)
    os.unlink(path)
    time.sleep(0.2)  # ten heartbeats
    assert not path.exists()
    store.close()
    assert not path.exists()


def test_verify_stops_with_an_error_when_its_database_is_deleted_mid_run(tmp_path, monkeypatch):
    import nflc.verify.store as S

    db = tmp_path / "d.sqlite"
    real = S.ResultStore.save_progress

    def delete_after_the_first_epoch(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if db.exists():
            os.unlink(db)

    monkeypatch.setattr(S.ResultStore, "save_progress", delete_after_the_first_epoch)
    res = cli("verify", H3, *TINY, "--db", db)
    assert res.exit_code == 2 and "deleted" in res.output and "results in" not in res.output, res.output
    assert not db.exists() and Path(str(db) + ".recovered").exists()


# ---------------------------------------------------------------------------------------
# item 3: a damaged database


def _page_of(db: Path, table: str) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    conn.close()
    return (root - 1) * page_size, page_size


def _overwrite_page(db: Path, table: str) -> None:
    """Overwrite the page ``table`` starts at with bytes no b-tree page can have."""
    offset, size = _page_of(db, table)
    with open(db, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * size)


@pytest.mark.parametrize("damage", ["a page overwritten", "the last byte cut"])
def test_a_damaged_database_is_refused_untouched_saying_what_report_can_read(db, damage):
    if damage == "a page overwritten":
        _overwrite_page(db, "epochs")
    else:
        with open(db, "r+b") as fh:
            fh.truncate(db.stat().st_size - 1)
    before = db.read_bytes()
    res = cli("verify", H3, *TINY, "--db", db)
    assert res.exit_code == 2 and "damaged" in res.output and "nflc report" in res.output, res.output
    assert db.read_bytes() == before
    wal = db.with_name("r.sqlite-wal")  # (a reader of a WAL database may leave an empty -wal and a -shm)
    assert not wal.exists() or wal.stat().st_size == 0
    if damage == "a page overwritten":
        assert "cannot read" in res.output and "epochs" in res.output
        assert cli("report", "--db", db).exit_code == 2


def test_damage_where_report_does_not_read_leaves_the_results_readable(db):
    """The checkpoints' page damaged (a finished run has none; the report never reads
    them): verify refuses the file, says the report can still read it, and it can."""
    _overwrite_page(db, "checkpoints")
    res = cli("verify", H3, *TINY, "--db", db)
    assert res.exit_code == 2 and "damaged" in res.output and "can still read" in res.output, res.output
    rep = cli("report", "--db", db)
    assert rep.exit_code == 0 and "2 of 2 architectures finished" in rep.output, rep.output


# ---------------------------------------------------------------------------------------
# item 4: objects of another program


@pytest.mark.parametrize("extra", [
    "CREATE VIEW v AS SELECT 1 AS x",
    "CREATE TABLE notes (t TEXT)",
    "CREATE TRIGGER t AFTER INSERT ON archs BEGIN SELECT 1; END",
    "CREATE INDEX by_status ON archs(status)",
])
def test_any_schema_object_not_nflcs_makes_a_file_foreign(tmp_path, db, extra):
    if extra.startswith("CREATE VIEW"):  # a file holding only a view (no tables: once taken for new)
        db = tmp_path / "view.sqlite"
    conn = sqlite3.connect(db)
    conn.execute(extra)
    conn.commit()
    conn.close()
    before = db.read_bytes()
    res = cli("verify", H3, *TINY, "--db", db)
    assert res.exit_code == 2 and "another program" in res.output, res.output
    assert db.read_bytes() == before


def test_an_empty_sqlite_file_is_still_new(tmp_path):
    db = tmp_path / "empty.sqlite"
    sqlite3.connect(db).close()
    assert cli("verify", H3, *TINY, "--db", db).exit_code == 0


# ---------------------------------------------------------------------------------------
# item 7: unreadable metadata and checkpoints


def test_an_unreadable_schema_version_is_a_named_error(db):
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = 'abc' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    for args in (("verify", H3, *TINY, "--db", db), ("report", "--db", db)):
        res = cli(*args)
        assert res.exit_code == 2 and "schema_version" in res.output and "'abc'" in res.output, res.output


def test_an_unreadable_configuration_is_a_named_error(db):
    conn = sqlite3.connect(db)
    conn.execute("UPDATE runs SET config = '{not json'")
    conn.commit()
    conn.close()
    res = cli("report", "--db", db)
    assert res.exit_code == 2 and "configuration" in res.output, res.output


def test_a_checkpoint_that_does_not_unpickle_is_a_named_error(tmp_path):
    db = tmp_path / "c.sqlite"
    args = ["--archs", "0", "--samples", "160", "--epochs", "3", "--width", "8", "--quiet", "--db", db]
    assert cli("verify", H3, *args[:5], "2", *args[6:]).exit_code == 0  # 2 epochs of 2
    conn = sqlite3.connect(db)  # make it a 3-epoch run stopped after epoch 1, with a damaged checkpoint
    arch = conn.execute("SELECT arch_id FROM archs").fetchone()[0]
    config = conn.execute("SELECT config FROM runs").fetchone()[0].replace('"epochs":2', '"epochs":3')
    conn.execute("UPDATE runs SET config = ?", (config,))
    conn.execute("UPDATE archs SET status = 'running', expressivity = NULL, convergence = NULL, "
                 "generalization = NULL, epochs_run = NULL")
    conn.execute("DELETE FROM epochs WHERE epoch > 1")
    conn.execute("INSERT OR REPLACE INTO checkpoints VALUES (1, ?, 1, ?)", (arch, b"\x80\x04 not a checkpoint"))
    conn.commit()
    conn.close()
    res = cli("verify", H3, *args)
    assert res.exit_code == 2 and "checkpoint" in res.output and arch in res.output, res.output
    assert "DELETE FROM checkpoints" in res.output  # the way out


# ---------------------------------------------------------------------------------------
# item 10: --db paths


def test_a_dangling_db_link_is_refused_and_nothing_created_at_its_target(tmp_path):
    link = tmp_path / "r.sqlite"
    link.symlink_to(tmp_path / "elsewhere.sqlite")
    res = cli("verify", H3, *TINY, "--db", link)
    assert res.exit_code == 2 and "symbolic link" in res.output, res.output
    assert not (tmp_path / "elsewhere.sqlite").exists()


def test_a_db_name_too_long_is_a_clear_error(tmp_path, monkeypatch):
    for name in ("NFLC_THREADS", "OMP_NUM_THREADS"):  # threads then come from the load, and the
        monkeypatch.delenv(name, raising=False)       # run's recorded count is read from --db first
    res = cli("verify", H3, *TINY, "--db", tmp_path / ("x" * 300))
    assert res.exit_code == 2 and "too long" in res.output, res.output
    res = cli("report", "--db", tmp_path / ("x" * 300))
    assert res.exit_code == 2 and "too long" in res.output, res.output


# ---------------------------------------------------------------------------------------
# item 9: read-only media (a read-only bind mount in a user namespace of its own)


def _read_only_mount_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        script = f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" "{d}" && ! touch "{d}/x" 2>/dev/null'
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True)
    return probe.returncode == 0


readonly = pytest.mark.skipif(not _read_only_mount_available(), reason="no user namespaces to mount read-only")


def run_on_read_only(directory: Path, *nflc_args) -> subprocess.CompletedProcess:
    """``nflc ARGS`` with ``directory`` mounted read-only (for root too)."""
    d = str(directory)
    script = f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" "{d}" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", sys.executable, "-m", "nflc.cli",
                           *map(str, nflc_args)], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


@readonly
def test_report_reads_a_database_on_read_only_media(tmp_path, finished):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(finished, media / "r.sqlite")
    res = run_on_read_only(media, "report", "--db", media / "r.sqlite")
    assert res.returncode == 0 and "nfl_h3" in res.stdout, res.stderr
    # a copy taken while a writer ran: its -wal holds committed rows the main file does not
    live = tmp_path / "live.sqlite"
    shutil.copy(finished, live)
    conn = sqlite3.connect(live)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("UPDATE archs SET epochs_run = epochs_run WHERE 1")
    conn.execute("INSERT INTO meta VALUES ('info:note', '\"from the wal\"')")
    conn.commit()
    for suffix in ("", "-wal", "-shm"):
        shutil.copy(f"{live}{suffix}", media / f"w.sqlite{suffix}")
    conn.close()
    res = run_on_read_only(media, "report", "--db", media / "w.sqlite")
    assert res.returncode == 0 and "nfl_h3" in res.stdout, res.stderr


@readonly
def test_verify_on_a_read_only_database_says_it_is_read_only(tmp_path, finished):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(finished, media / "r.sqlite")
    res = run_on_read_only(media, "verify", H3, *TINY, "--db", media / "r.sqlite")
    assert res.returncode == 2 and "read-only" in res.stderr and "not an nflc" not in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    res = run_on_read_only(media, "verify", H3, *TINY, "--db", media / "new.sqlite")  # a new one there
    assert res.returncode == 2 and "cannot create results database" in res.stderr and "read-only" in res.stderr, res.stderr


@readonly
def test_analyze_json_into_a_read_only_directory_is_refused_before_the_work(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    res = run_on_read_only(media, "analyze", H3, "--dataset", "none", "--samples", "4", "--archs", "0,1",
                           "--json", media / "a.json")
    assert res.returncode == 2 and "read-only" in res.stderr and "analyzing" not in res.stderr, res.stderr
