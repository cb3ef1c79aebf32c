"""One writer per results database (docs/VERIFY.md, "Two processes, one database"): the
writer lease is taken atomically with the run check, refuses a second live writer with a
message naming it, expires with its holder, and fences a writer that lost it; two real
`nflc verify` processes on one database never lose finished work and end with the
database an uninterrupted run writes."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nflc.verify.store import ResultStore, StoreBusyError, WriterLease
from nflc.verify.train import Aspects, EpochRecord

from .helpers import dump_results, read_rows

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"train": {"epochs": 3}}


def rec(epoch: int) -> EpochRecord:
    return EpochRecord(epoch=epoch, train_loss=1.0 / epoch, train_acc=0.5, test_loss=1.0, test_acc=0.5)


def set_lease(db: Path, lease: WriterLease) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('writer', ?)", (lease.model_dump_json(),))
    conn.close()


def lease_row(db: Path):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'writer'").fetchone()
    finally:
        conn.close()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has it (pids are not reused this fast)


def test_a_second_writer_is_refused_with_the_holder_named_and_the_lease_is_released_on_close(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore.open(db, "h", CONFIG) as first:
        with pytest.raises(StoreBusyError) as info:
            ResultStore.open(db, "h", CONFIG, timeout=1)
        message = str(info.value)
        assert f"pid {os.getpid()}" in message and socket.gethostname() in message
        assert "rerun" in info.value.diagnostics[0].hint
        first.register(["a"])  # the holder still writes
    assert lease_row(db) is None
    with ResultStore.open(db, "h", CONFIG) as again:
        assert again.statuses() == {"a": "pending"}


def test_racing_openers_get_exactly_one_lease(tmp_path):
    # the check and the take are one transaction: of writers that start together, one wins
    for attempt in range(10):
        db = tmp_path / f"race{attempt}.sqlite"
        ResultStore.open(db, "h", CONFIG).close()
        barrier, attempted = threading.Barrier(4), threading.Barrier(4)
        outcomes: list = []

        def opener(barrier=barrier, attempted=attempted, db=db, outcomes=outcomes) -> None:
            barrier.wait()
            try:
                store = ResultStore.open(db, "h", CONFIG, timeout=10)
            except StoreBusyError as exc:
                outcomes.append(exc)
                attempted.wait()
                return
            outcomes.append(store)
            attempted.wait()  # hold the lease until every thread has tried
            store.close()  # in its own thread: sqlite3 connections stay in theirs

        threads = [threading.Thread(target=opener) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(isinstance(o, ResultStore) for o in outcomes) == 1 and len(outcomes) == 4


def test_a_dead_holders_lease_is_taken_over(tmp_path):
    db = tmp_path / "r.sqlite"
    ResultStore.open(db, "h", CONFIG).close()
    gone = WriterLease.mine().model_copy(update={"pid": dead_pid()})
    set_lease(db, gone)
    with ResultStore.open(db, "h", CONFIG) as store:
        assert store.lease.token != gone.token
    # a live pid that now runs another program (its start time differs): reused, so dead
    reused = WriterLease.mine().model_copy(update={"process_start": "1"})
    if reused.process_start is None:
        pytest.skip("no /proc here to tell a reused pid")
    set_lease(db, reused)
    ResultStore.open(db, "h", CONFIG).close()


def test_a_holder_on_another_host_expires_with_its_heartbeat(tmp_path):
    db = tmp_path / "r.sqlite"
    ResultStore.open(db, "h", CONFIG).close()
    fresh = WriterLease.mine().model_copy(update={"host": "elsewhere.invalid"})
    set_lease(db, fresh)
    with pytest.raises(StoreBusyError, match="elsewhere.invalid"):
        ResultStore.open(db, "h", CONFIG, timeout=1)
    stale = fresh.model_copy(update={"heartbeat": "2020-01-01T00:00:00+00:00"})
    set_lease(db, stale)
    ResultStore.open(db, "h", CONFIG).close()


def test_the_heartbeat_keeps_a_long_running_writer_alive(tmp_path, monkeypatch):
    import nflc.verify.store as store_module

    monkeypatch.setattr(store_module, "LEASE_HEARTBEAT", 0.05)
    db = tmp_path / "r.sqlite"
    with ResultStore.open(db, "h", CONFIG) as store:
        first = WriterLease.model_validate_json(lease_row(db)[0]).heartbeat
        for _ in range(1200):  # a hang guard (it beats every 0.05 s), not a speed goal
            if WriterLease.model_validate_json(lease_row(db)[0]).heartbeat != first:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the heartbeat never beat in 1200 polls")
        store.register(["a"])


def test_a_writer_that_lost_its_lease_stops_without_writing(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore.open(db, "h", CONFIG) as store:
        store.register(["a"])
        store.start("a")
        thief = WriterLease.mine().model_copy(update={"host": "elsewhere.invalid"})
        set_lease(db, thief)  # as if another host had judged this process dead
        with pytest.raises(StoreBusyError, match="lost the writer lease"):
            store.save_progress("a", [rec(1)], 1, b"state")
        assert store.epochs("a") == [] and store.checkpoint("a") is None
    assert thief.token in lease_row(db)[0]  # closing does not release someone else's lease


def test_a_finished_architecture_is_never_restarted(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultStore.open(db, "h", CONFIG) as store:
        store.register(["a"])
        store.start("a")
        store.finish("a", [rec(1), rec(2), rec(3)],
                     Aspects(expressivity=0.3, convergence=1, generalization=0.1, diverged=False, epochs=3))
        with pytest.raises(Exception, match="already done"):
            store.start("a")
        assert store.status("a") == "done" and len(store.epochs("a")) == 3


# ---------------------------------------------------------------------------------------
# two real `nflc verify` processes


ARGS = ["specs/nfl_h3.nfl", "--archs", "0,1,2", "--samples", "200", "--width", "8", "--epochs", "120",
        "--no-population", "--quiet", "--seed", "3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start_verify(db: Path, go: Path | None = None) -> subprocess.Popen:
    """`nflc verify ARGS --db db` in a new process; with ``go``, it imports everything and
    then waits for that file to exist before running, so a test can place its start
    within milliseconds of a moment of the other process."""
    argv = ["nflc", "verify", *ARGS, "--db", str(db)]
    code = ("import sys, time, pathlib; import torch, nflc.cli, nflc.verify.run, nflc.analysis, nflc.data\n"
            "nflc.data._mnist5k_arrays()\n"  # parsed once per process (about 2 s): before the start signal
            f"go = pathlib.Path({str(go)!r}) if {go is not None} else None\n"
            "while go is not None and not go.exists(): time.sleep(0.002)\n"
            f"sys.argv = {argv!r}; nflc.cli.main()")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def progress(db: Path) -> dict[str, tuple[str, int]]:
    """(status, stored epochs) per architecture, read as a viewer would; {} while unreadable."""
    rows = read_rows(db, "SELECT a.arch_id, a.status, (SELECT COUNT(*) FROM epochs e WHERE e.run_id = a.run_id "
                         "AND e.arch_id = a.arch_id) FROM archs a")
    return {a: (s, n) for a, s, n in rows or []}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    db = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    proc = start_verify(db)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return dump_results(db, info=True)


def wait_for(cond, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:  # a hang guard, not a speed goal
            pytest.fail("the first process made no progress")
        if proc.poll() is not None and not cond():
            pytest.fail(f"the first process ended first: {proc.stderr.read()[-2000:]}")
        time.sleep(0.01)


@pytest.mark.parametrize("moment", ["together", "training", "one finished"])
def test_two_processes_on_one_database(tmp_path, reference, moment):
    db, go, go_second = tmp_path / "r.sqlite", tmp_path / "go", tmp_path / "go-second"
    first = start_verify(db, go)
    second = start_verify(db, go if moment == "together" else go_second)
    go.touch()
    if moment == "training":
        wait_for(lambda: any(n > 0 for _, n in progress(db).values()), first)
    elif moment == "one finished":
        wait_for(lambda: any(s == "done" for s, _ in progress(db).values()), first)
    elif moment == "after":
        first.wait(timeout=300)
    go_second.touch()

    # a viewer's log of the database while both run: finished work must never shrink
    lost: list[str] = []
    finished: dict[str, int] = {}
    while first.poll() is None or second.poll() is None:
        for arch, (status, n) in progress(db).items():
            if arch in finished and (status != "done" or n < finished[arch]):
                lost.append(f"{arch}: done with {finished[arch]} epochs, then {status} with {n}")
            if status == "done":
                finished[arch] = n
        time.sleep(0.01)
    results = [(p.returncode, *p.communicate()) for p in (first, second)]
    assert not lost
    for code, _out, err in results:
        assert "Traceback" not in err
        assert code == 0 or (code == 2 and "being written by another nflc process" in err), (code, err)
    refused = [err for code, _, err in results if code == 2]
    if moment in ("training", "one finished"):
        assert len(refused) == 1 and f"pid {first.pid}" in refused[0]
    if moment == "after":
        assert not refused and "already done 3" in results[1][1]
    assert dump_results(db, info=True) == reference
    assert lease_row(db) is None


@pytest.mark.parametrize("signals", [1, 2])
def test_ctrl_c_stops_cleanly_releases_the_database_and_the_rerun_completes_it(tmp_path, reference, signals):
    import signal

    db, go = tmp_path / "r.sqlite", tmp_path / "go"
    proc = start_verify(db, go)
    go.touch()
    wait_for(lambda: any(n > 0 for _, n in progress(db).values()), proc)
    for _ in range(signals):  # a second Ctrl-C lands while the first is being handled
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, (proc.returncode, err)
    assert "interrupted" in err and "rerun the same command to resume" in err.replace("\n", " "), err
    assert lease_row(db) is None  # released on the way out
    rerun = start_verify(db)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert dump_results(db, info=True) == reference
