"""SQLite store for verification results: one run per database file.

Tables (``SCHEMA``): ``runs`` (spec hash, canonical JSON configuration, creation time),
``archs`` (status and measured aspects per architecture), ``epochs`` (per-epoch metrics)
and ``checkpoints`` (serialized training state to resume an architecture mid-run).

Consistency rule, kept by writing each step in one ``BEGIN IMMEDIATE`` transaction:

- ``done``/``diverged``: all its epochs are stored, its aspects are set; no checkpoint, except
  that a network that finished a fixed-epoch run keeps its final state (a checkpoint at its
  last epoch), from which a longer run of the same database continues (:func:`epochs_extension`);
- ``running``: its epochs are exactly ``1 .. checkpoint.epoch`` (none without a
  checkpoint), because epochs are written together with the checkpoint that covers them;
- ``pending``: no epochs and no checkpoint.

A killed process therefore leaves every architecture either finished with all its epochs
or resumable from its last checkpoint.

One writer at a time (:class:`WriterLease`): a store opened for writing holds the
database's lease (``meta`` key ``writer``: token, pid, host, start time, heartbeat) from
:meth:`ResultStore.open` to :meth:`ResultStore.close`; a second writer is refused with
:class:`StoreBusyError` naming the holder. The lease is taken in the same transaction that
checks the run, so there is no window between the check and the first write, and every
later write transaction checks the token first (a writer whose lease was taken over stops
instead of writing). A lease outlives its holder only until someone looks: on the same
host a holder whose process is gone (pid not running, or running another program) has
lost it; on another host (a database on a shared disk) one whose heartbeat is older than
``LEASE_TTL`` seconds has. WAL journaling lets readers (a progress viewer,
the tests) read while a sweep writes; ``synchronous=NORMAL`` keeps this atomicity on a
process crash (a power cut may lose the last commits, never consistency).

The file itself is checked too. Before a store is opened for writing, an existing file
must be an nflc database (its application id, and no schema object of another program: a
view, a trigger, an index, a table), pass SQLite's ``quick_check`` (a damaged file is
refused untouched, with what ``nflc report`` can still read of it) and be writable (a
read-only file, directory or mount is named as such). While it writes, a store checks
before and after every transaction that the file at its path is still the one it opened
(device and inode): a database deleted or replaced under a running writer stops it with
:class:`StoreLostError`, and the content it held is saved beside it (``PATH.recovered``).
Read-only stores (reports) open read-only media too (SQLite's ``immutable`` mode when no
``-wal`` holds changes the file lacks).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import socket
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from pydantic import BaseModel

from nflc.errors import NflcError
from nflc.verify.train import Aspects, EpochRecord

__all__ = [
    "ResultStore",
    "StoreBusyError",
    "StoreDamagedError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreLostError",
    "StoreMismatchError",
    "canonical_json",
    "epochs_extension",
]

# 2: a sweep trains every architecture on one data order (nflc.verify.protocol.arch_seeds);
# version-1 databases hold per-architecture orders, so mixing them would break the
# comparison and a resumed sweep's repeatability: they are refused, not continued.
SCHEMA_VERSION = 2
OLDEST_READABLE = 1  # the tables have not changed since: reports read every version from it
APPLICATION_ID = 0x6E666C63  # "nflc" in the SQLite header: marks a file as an nflc results database
TABLES = frozenset({"meta", "runs", "archs", "epochs", "checkpoints"})
LEASE_HEARTBEAT = 10.0  # seconds between a writer's heartbeats
LEASE_TTL = 60.0  # a writer on another host is presumed dead after this long without one
STATUSES = ("pending", "running", "done", "diverged")
FINISHED = ("done", "diverged")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id        INTEGER PRIMARY KEY,
    spec_hash TEXT NOT NULL,
    config    TEXT NOT NULL,
    created   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS archs (
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    arch_id        TEXT NOT NULL,
    position       INTEGER NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'running', 'done', 'diverged')),
    expressivity   REAL,
    convergence    INTEGER,
    generalization REAL,
    epochs_run     INTEGER,
    updated        TEXT NOT NULL,
    PRIMARY KEY (run_id, arch_id)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id     INTEGER NOT NULL,
    arch_id    TEXT NOT NULL,
    epoch      INTEGER NOT NULL CHECK (epoch >= 1),
    train_loss REAL,
    train_acc  REAL NOT NULL,
    test_loss  REAL,
    test_acc   REAL NOT NULL,
    PRIMARY KEY (run_id, arch_id, epoch),
    FOREIGN KEY (run_id, arch_id) REFERENCES archs(run_id, arch_id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id  INTEGER NOT NULL,
    arch_id TEXT NOT NULL,
    epoch   INTEGER NOT NULL CHECK (epoch >= 1),
    state   BLOB NOT NULL,
    PRIMARY KEY (run_id, arch_id),
    FOREIGN KEY (run_id, arch_id) REFERENCES archs(run_id, arch_id) ON DELETE CASCADE
);
"""


class StoreError(NflcError):
    """A results database cannot be used as asked."""


class StoreMismatchError(StoreError):
    """The database holds a run of a different spec or configuration."""


class StoreLockedError(StoreError):
    """Another process holds the database's write lock for too long."""


class StoreFullError(StoreError):
    """The disk (or the database's size limit) is full."""


class StoreBusyError(StoreError):
    """Another live process is writing the database (it holds the writer lease)."""


class StoreDamagedError(StoreError):
    """The file is an SQLite database that fails SQLite's own checks."""


class StoreLostError(StoreError):
    """The database was deleted or replaced while this process wrote it."""


# ---------------------------------------------------------------------------------------
# the writer lease


def _process_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` (clock ticks since boot, Linux ``/proc``), which
    tells a live holder from an unrelated process that reused its pid; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the command name may contain spaces


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    except OSError:
        return False
    return True


class WriterLease(BaseModel):
    """Who writes a database: stored as JSON under ``meta.writer``."""

    token: str
    pid: int
    host: str
    started: str
    heartbeat: str
    process_start: Optional[str] = None

    @classmethod
    def mine(cls) -> "WriterLease":
        now = _now()
        return cls(token=uuid.uuid4().hex, pid=os.getpid(), host=socket.gethostname(), started=now, heartbeat=now,
                   process_start=_process_start(os.getpid()))

    def alive(self, ttl: float = LEASE_TTL) -> bool:
        """Whether the holder may still be writing (see the module docstring)."""
        if self.host == socket.gethostname():
            if not _pid_running(self.pid):
                return False
            now_start = _process_start(self.pid)
            return self.process_start is None or now_start is None or now_start == self.process_start
        try:
            age = (_dt.datetime.now(_dt.timezone.utc) - _dt.datetime.fromisoformat(self.heartbeat)).total_seconds()
        except ValueError:
            return False
        return age < ttl

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, since {self.started}, last heartbeat {self.heartbeat}"


def _read_lease(conn: sqlite3.Connection) -> Optional[WriterLease]:
    row = conn.execute("SELECT value FROM meta WHERE key = 'writer'").fetchone()
    if row is None:
        return None
    try:
        return WriterLease.model_validate_json(row[0])
    except ValueError:
        return None  # unreadable: nobody can be holding it


def _write_lease(conn: sqlite3.Connection, lease: WriterLease) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('writer', ?)", (lease.model_dump_json(),))


class _Heartbeat:
    """Refreshes the lease's heartbeat every ``LEASE_HEARTBEAT`` seconds from a thread
    with its own connection, so a long epoch does not look like a dead writer to another
    host. Failures (a busy database) are retried at the next beat."""

    def __init__(self, path: Path, lease: WriterLease, interval: Optional[float] = None,
                 identity: Optional[tuple[int, int]] = None):
        self._path, self._lease, self._identity = path, lease, identity
        self._interval = LEASE_HEARTBEAT if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nflc-store-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if _file_identity(self._path) != self._identity:
                continue  # deleted or replaced: the writer stops at its next write; never touch another file
            try:
                # mode=rw: a deleted database is never created again in its place
                conn = sqlite3.connect(f"{_uri(self._path)}?mode=rw", uri=True, timeout=1.0, isolation_level=None)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    held = _read_lease(conn)
                    if held is not None and held.token == self._lease.token:
                        _write_lease(conn, held.model_copy(update={"heartbeat": _now()}))
                    conn.execute("COMMIT")
                finally:
                    conn.close()
            except sqlite3.Error:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def canonical_json(config: BaseModel | Mapping[str, Any]) -> str:
    """One stable text per configuration: sorted keys, no whitespace, exact floats."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _describe_config_diff(stored: str, wanted: str) -> str:
    a, b = json.loads(stored), json.loads(wanted)
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return f"{stored} -> {wanted}"
    keys = sorted(set(a) | set(b))
    parts = [
        f"{k}: {json.dumps(a.get(k, '<absent>'))} -> {json.dumps(b.get(k, '<absent>'))}"
        for k in keys
        if a.get(k, object()) != b.get(k, object())
    ]
    return ", ".join(parts)


def _epochs_at(config: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Where a configuration keeps its epoch count: ``("train", "epochs")`` in a verify run's,
    ``("epochs",)`` in a bare training configuration's."""
    if isinstance(config.get("train"), dict) and "epochs" in config["train"]:
        return ("train", "epochs")
    return ("epochs",) if "epochs" in config else None


def epochs_extension(stored: str, wanted: str) -> Optional[tuple[int, int]]:
    """``(stored epochs, wanted epochs)`` when the two configurations differ in the epoch
    count of a fixed-epoch run only: such a run is extended (or refused as shortened), not
    refused as another run. None when anything else differs, or the run trains until
    converged (``plateau``)."""
    a, b = json.loads(stored), json.loads(wanted)
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return None
    where = _epochs_at(a)
    if where is None or where != _epochs_at(b):
        return None
    inner_a, inner_b = (a[where[0]], b[where[0]]) if len(where) == 2 else (a, b)
    if "plateau" in inner_a or "plateau" in inner_b:
        return None
    ea, eb = inner_a["epochs"], inner_b["epochs"]
    same = {**inner_a, "epochs": None} == {**inner_b, "epochs": None}
    if len(where) == 2:
        same = same and {**a, where[0]: None} == {**b, where[0]: None}
    return (ea, eb) if same and ea != eb and isinstance(ea, int) and isinstance(eb, int) else None


def _nan_to_none(value: float) -> Optional[float]:
    # SQLite stores NaN as NULL anyway; make it explicit (inf is stored as is).
    return None if math.isnan(value) else value


def _none_to_nan(value: Optional[float]) -> float:
    return math.nan if value is None else float(value)


class _Reads:
    """What a results database holds, read (the reads of :class:`ResultStore`)."""

    _conn: sqlite3.Connection
    path: Path
    run_id: int

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with _translated(self.path):
            return self._conn.execute(sql, params).fetchall()

    def statuses(self) -> dict[str, str]:
        """Status of every registered architecture, in registration order."""
        rows = self._read("SELECT arch_id, status FROM archs WHERE run_id = ? ORDER BY position", (self.run_id,))
        return dict(rows)

    def status(self, arch_id: str) -> Optional[str]:
        rows = self._read("SELECT status FROM archs WHERE run_id = ? AND arch_id = ?", (self.run_id, arch_id))
        return rows[0][0] if rows else None

    def epochs(self, arch_id: str) -> list[EpochRecord]:
        rows = self._read(
            "SELECT epoch, train_loss, train_acc, test_loss, test_acc FROM epochs "
            "WHERE run_id = ? AND arch_id = ? ORDER BY epoch",
            (self.run_id, arch_id),
        )
        return [
            EpochRecord(epoch=e, train_loss=_none_to_nan(tl), train_acc=ta, test_loss=_none_to_nan(vl), test_acc=va)
            for e, tl, ta, vl, va in rows
        ]

    def checkpoint(self, arch_id: str) -> Optional[tuple[int, bytes]]:
        """``(epoch, state)`` of the architecture's last checkpoint, or None."""
        rows = self._read(
            "SELECT epoch, state FROM checkpoints WHERE run_id = ? AND arch_id = ?", (self.run_id, arch_id)
        )
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def aspects(self, arch_id: str) -> Optional[Aspects]:
        """Measured aspects of a finished architecture, None while it is not finished."""
        rows = self._read(
            "SELECT status, expressivity, convergence, generalization, epochs_run FROM archs "
            "WHERE run_id = ? AND arch_id = ?",
            (self.run_id, arch_id),
        )
        if not rows or rows[0][0] not in FINISHED:
            return None
        status, expressivity, convergence, generalization, epochs_run = rows[0]
        return Aspects(
            expressivity=expressivity,
            convergence=convergence,
            generalization=generalization,
            diverged=status == "diverged",
            epochs=epochs_run,
        )

    def results(self) -> dict[str, Aspects]:
        """Aspects of every finished architecture, in registration order."""
        out = {}
        for arch_id, status in self.statuses().items():
            if status in FINISHED:
                aspects = self.aspects(arch_id)
                assert aspects is not None  # finished rows always carry aspects
                out[arch_id] = aspects
        return out

    def info(self, prefix: str = "") -> dict[str, Any]:
        """Annotations written by :meth:`put_info` whose key starts with ``prefix``."""
        head = "info:" + prefix
        rows = self._read("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key", (len(head), head))
        try:
            return {key[len("info:"):]: json.loads(value) for key, value in rows}
        except (ValueError, TypeError) as exc:
            raise StoreError(f"results database {self.path}: an 'info:' row of table meta is not JSON ({exc}); the "
                             "file was edited or is damaged", hint="pass the --db path that 'nflc verify' wrote") from None

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``'ok'`` for a sound file."""
        return "\n".join(row[0] for row in self._read("PRAGMA integrity_check"))


class ResultStore(_Reads):
    """Results of one verification run in one SQLite file. Use :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, run_id: int, spec_hash: str, config: str,
                 lease: Optional[WriterLease] = None):
        self._conn = conn
        self.path = path
        self.run_id = run_id
        self.spec_hash = spec_hash
        self.config_json = config
        self.lease = lease  # None: opened read-only
        # (epochs before, epochs now, finished networks that continue) when this open extended the run
        self.extended: Optional[tuple[int, int, int]] = None
        self._file = _file_identity(path) if lease is not None else None  # the file this writer opened
        self._lost: Optional[StoreLostError] = None
        self._saved: Optional[Path] = None
        self._heartbeat = _Heartbeat(path, lease, identity=self._file) if lease is not None else None

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        spec_hash: str,
        config: BaseModel | Mapping[str, Any],
        *,
        timeout: float = 30.0,
    ) -> "ResultStore":
        """Create the database, or reopen it when it holds this spec hash and config.

        Raises :class:`StoreMismatchError` when it holds a different run (resuming it with
        other settings would mix incomparable numbers), except that a fixed-epoch run asked
        for more epochs is extended (:func:`_extend`; ``extended`` says so), :class:`StoreBusyError` while
        another live process writes it, :class:`StoreLockedError` when another process
        keeps it locked longer than ``timeout`` seconds, :class:`StoreError` for a file
        that is not an nflc results database (left untouched).
        """
        path = Path(path)
        wanted = canonical_json(config)
        check_writable_database(path)
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"cannot open results database {path}: {exc}",
                hint="check that the directory exists and is writable, or pass another --db path",
            ) from exc
        try:
            store = _initialise(conn, path, spec_hash, wanted)
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def open_readonly(cls, path: str | Path) -> "ResultStore":
        """Open an existing database to read its run, whatever its spec and configuration
        (reports, viewers). Writes through the returned store fail."""
        path = Path(path)
        try:
            found = path.is_file()
        except OSError as exc:  # a name too long, a loop of links
            raise StoreError(f"--db {path}: {exc.strerror or exc}", hint="pass another --db path") from None
        if not found:
            raise StoreError(f"no results database at {path}", hint="pass the --db path that 'nflc verify' wrote")
        try:
            conn = _connect_readonly(path)
        except sqlite3.DatabaseError as exc:  # not SQLite at all
            raise StoreError(f"{path} is not an nflc results database ({exc})",
                             hint="pass the --db path that 'nflc verify' wrote") from None
        try:
            with _translated(path):
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"meta", "runs", "archs", "epochs", "checkpoints"} <= tables:
                    raise StoreError(f"{path} is not an nflc results database (tables: {sorted(tables) or 'none'})",
                                     hint="pass the --db path that 'nflc verify' wrote")
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                # the tables are unchanged since version 1, so older results can still be read
                if row is None or not OLDEST_READABLE <= _schema_version(row[0], path) <= SCHEMA_VERSION:
                    raise StoreMismatchError(f"results database {path} has schema version {row[0] if row else None}, "
                                             f"this nflc reads {OLDEST_READABLE} to {SCHEMA_VERSION}")
                runs = conn.execute("SELECT id, spec_hash, config FROM runs ORDER BY id").fetchall()
                if not runs:
                    raise StoreError(f"results database {path} holds no run yet")
                run_id, spec_hash, config = runs[0]
                _parsed_config(config, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, int(run_id), str(spec_hash), config)

    def close(self) -> None:
        """Release the writer lease (if held) and close the connection. A writer whose file
        was deleted or replaced since its last write saves what it held (see
        :meth:`_check_file`) and releases nothing in the file now at its path."""
        try:
            if self._heartbeat is not None:
                self._heartbeat.stop()
                self._heartbeat = None
            if self.lease is not None and self._lost is None and _file_identity(self.path) != self._file:
                self._lost = self._lost_error()
            if self._lost is not None:
                self.lease = None
            if self.lease is not None:
                lease, self.lease = self.lease, None
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    held = _read_lease(self._conn)
                    if held is not None and held.token == lease.token:
                        self._conn.execute("DELETE FROM meta WHERE key = 'writer'")
                    self._conn.execute("COMMIT")
                except sqlite3.Error:
                    # left behind, the lease names this (soon gone) process: the next writer takes it over
                    _rollback(self._conn)
        finally:
            self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close()
        if exc_type is None and self._lost is not None:
            raise self._lost  # lost after the last write: the run must not end as a success

    @property
    def config(self) -> dict[str, Any]:
        return _parsed_config(self.config_json, self.path)

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: BEGIN IMMEDIATE takes the write lock up front, so a busy
        database fails here (after the timeout) rather than half-way through."""
        with _translated(self.path):
            self._check_file()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_lease()
                yield self._conn
            except BaseException:
                _rollback(self._conn)
                raise
            self._conn.execute("COMMIT")
            self._check_file()  # the commit went to the file still at the path

    def _check_file(self) -> None:
        """Stop a writer whose database was deleted or replaced since it opened it: its
        connection would go on writing to a file nobody can open again."""
        if self.lease is None or self._lost is not None:
            if self._lost is not None:
                raise self._lost
            return
        if _file_identity(self.path) != self._file:
            self._lost = self._lost_error()
            raise self._lost

    def _lost_error(self) -> StoreLostError:
        now = _file_identity(self.path)
        what = "deleted" if now is None else "replaced by another file"
        saved = self._save_copy()
        kept = (f"; everything it held (the finished architectures, the epochs and checkpoints written so far) is "
                f"saved in {saved}" if saved is not None else "; its content could not be saved")
        hint = (f"to continue the run, move {saved} to {self.path} (or pass --db {saved}) and rerun the same command"
                if saved is not None else "rerun the command to start again")
        return StoreLostError(f"results database {self.path} was {what} while this process was writing it; it stops "
                              f"without writing to the file now at that path{kept}", hint=hint)

    def _save_copy(self) -> Optional[Path]:
        """A copy of what this process's connection still reads (the file it opened, even
        deleted), beside the path: ``PATH.recovered`` (``.recovered-2``, ... if taken)."""
        if self._saved is None:
            self._saved = _backup_beside(self._conn, self.path)
        return self._saved

    def _check_lease(self) -> None:
        if self.lease is None:
            raise StoreError(f"results database {self.path} is open read-only (or closed)")
        held = _read_lease(self._conn)
        if held is None or held.token != self.lease.token:
            who = held.describe() if held is not None else "nobody"
            raise StoreBusyError(
                f"this process lost the writer lease of results database {self.path} (now held by {who}); "
                "it stops without writing",
                hint="run one 'nflc verify' per database at a time; rerun this command once the other has finished",
            )

    # -- writes ----------------------------------------------------------------------

    def register(self, arch_ids: Iterable[str]) -> None:
        """Add architectures as ``pending`` (those already present keep their state)."""
        with self._transaction() as c:
            start = c.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM archs WHERE run_id = ?", (self.run_id,)).fetchone()[0]
            now = _now()
            for offset, arch_id in enumerate(arch_ids):
                c.execute(
                    "INSERT OR IGNORE INTO archs (run_id, arch_id, position, updated) VALUES (?, ?, ?, ?)",
                    (self.run_id, str(arch_id), start + offset, now),
                )

    def start(self, arch_id: str) -> None:
        """Mark an architecture ``running`` and drop any epochs its checkpoint does not
        cover (none exist under the consistency rule; this keeps a resume exact even if
        a database was edited by hand)."""
        with self._transaction() as c:
            self._require(c, arch_id)
            status = c.execute("SELECT status FROM archs WHERE run_id = ? AND arch_id = ?",
                               (self.run_id, arch_id)).fetchone()[0]
            if status in FINISHED:
                raise StoreError(f"architecture {arch_id!r} is already {status} in {self.path}; it is not trained again")
            row = c.execute(
                "SELECT epoch FROM checkpoints WHERE run_id = ? AND arch_id = ?", (self.run_id, arch_id)
            ).fetchone()
            covered = row[0] if row else 0
            c.execute(
                "DELETE FROM epochs WHERE run_id = ? AND arch_id = ? AND epoch > ?", (self.run_id, arch_id, covered)
            )
            c.execute(
                "UPDATE archs SET status = 'running', updated = ? WHERE run_id = ? AND arch_id = ?",
                (_now(), self.run_id, arch_id),
            )

    def save_progress(self, arch_id: str, records: Sequence[EpochRecord], epoch: int, state: bytes) -> None:
        """Append ``records`` and replace the checkpoint with ``state`` after ``epoch``,
        atomically."""
        with self._transaction() as c:
            self._require(c, arch_id)
            self._insert_epochs(c, arch_id, records)
            c.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, arch_id, epoch, state) VALUES (?, ?, ?, ?)",
                (self.run_id, arch_id, epoch, sqlite3.Binary(state)),
            )
            c.execute(
                "UPDATE archs SET updated = ? WHERE run_id = ? AND arch_id = ?", (_now(), self.run_id, arch_id)
            )

    def finish(self, arch_id: str, records: Sequence[EpochRecord], aspects: Aspects, keep_final: bool = False) -> None:
        """Append the last ``records``, store the aspects, set ``done``/``diverged`` and drop
        the checkpoint, atomically; ``keep_final`` keeps a checkpoint of a ``done`` network
        taken at its last epoch (its final state: a longer run continues from it)."""
        with self._transaction() as c:
            self._require(c, arch_id)
            self._insert_epochs(c, arch_id, records)
            stored = c.execute(
                "SELECT COUNT(*), COALESCE(MAX(epoch), 0) FROM epochs WHERE run_id = ? AND arch_id = ?",
                (self.run_id, arch_id),
            ).fetchone()
            if tuple(stored) != (aspects.epochs, aspects.epochs):
                # Refuse to mark done an architecture whose epochs are not all there.
                raise StoreError(
                    f"architecture {arch_id!r}: {stored[0]} epochs stored, the result claims {aspects.epochs}"
                )
            keep = aspects.epochs if keep_final and not aspects.diverged else -1
            c.execute("DELETE FROM checkpoints WHERE run_id = ? AND arch_id = ? AND epoch != ?", (self.run_id, arch_id, keep))
            c.execute(
                "UPDATE archs SET status = ?, expressivity = ?, convergence = ?, generalization = ?, "
                "epochs_run = ?, updated = ? WHERE run_id = ? AND arch_id = ?",
                (
                    "diverged" if aspects.diverged else "done",
                    aspects.expressivity,
                    aspects.convergence,
                    aspects.generalization,
                    aspects.epochs,
                    _now(),
                    self.run_id,
                    arch_id,
                ),
            )

    def _require(self, c: sqlite3.Connection, arch_id: str) -> None:
        if c.execute("SELECT 1 FROM archs WHERE run_id = ? AND arch_id = ?", (self.run_id, arch_id)).fetchone() is None:
            raise StoreError(f"architecture {arch_id!r} is not registered in {self.path}")

    def _insert_epochs(self, c: sqlite3.Connection, arch_id: str, records: Sequence[EpochRecord]) -> None:
        c.executemany(
            "INSERT INTO epochs (run_id, arch_id, epoch, train_loss, train_acc, test_loss, test_acc) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (self.run_id, arch_id, r.epoch, _nan_to_none(r.train_loss), r.train_acc, _nan_to_none(r.test_loss), r.test_acc)
                for r in records
            ],
        )

    def put_info(self, values: Mapping[str, Any]) -> None:
        """Store annotations of the run (JSON values, e.g. the topology of each architecture)
        under ``info:<key>`` in the ``meta`` table, in one transaction; a key written again
        is replaced."""
        rows = [(f"info:{key}", json.dumps(value, sort_keys=True, allow_nan=False)) for key, value in values.items()]
        with self._transaction() as c:
            c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows)


def _initialise(conn: sqlite3.Connection, path: Path, spec_hash: str, wanted: str) -> "ResultStore":
    extended: Optional[tuple[int, int, int]] = None
    with _translated(path):
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"results database {path} cannot use WAL journaling (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Statement by statement: executescript() would COMMIT our transaction.
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif _schema_version(row[0], path) != SCHEMA_VERSION:
                raise StoreMismatchError(
                    f"results database {path} has schema version {row[0]}, this nflc writes {SCHEMA_VERSION}",
                    hint="use a new --db path",
                )
            runs = conn.execute("SELECT id, spec_hash, config FROM runs ORDER BY id").fetchall()
            if not runs:
                cur = conn.execute(
                    "INSERT INTO runs (spec_hash, config, created) VALUES (?, ?, ?)", (spec_hash, wanted, _now())
                )
                run_id = int(cur.lastrowid or 0)  # an INSERT always sets it
            else:
                run_id, stored_hash, stored_config = runs[0]
                _parsed_config(stored_config, path)
                differences = []
                if stored_hash != spec_hash:
                    differences.append(f"spec hash {stored_hash} -> {spec_hash} (the .nfl space changed)")
                extension = epochs_extension(stored_config, wanted) if stored_config != wanted else None
                if stored_config != wanted and (extension is None or differences):
                    differences.append(f"configuration {_describe_config_diff(stored_config, wanted)}")
                if extension is not None and not differences:
                    extended = _extend(conn, path, int(run_id), wanted, *extension)
                if differences:
                    raise StoreMismatchError(
                        f"results database {path} belongs to another run: " + "; ".join(differences),
                        hint=f"pass a new --db path for this run, or rerun with the settings stored in {path}",
                    )
            held = _read_lease(conn)
            if held is not None and held.alive():
                raise StoreBusyError(
                    f"results database {path} is being written by another nflc process ({held.describe()})",
                    hint="wait for it to finish, then rerun this command to continue where it stopped; "
                         "or pass another --db path",
                )
            lease = WriterLease.mine()
            _write_lease(conn, lease)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
    store = ResultStore(conn, path, run_id, spec_hash, wanted, lease)
    store.extended = extended
    return store


def _extend(conn: sqlite3.Connection, path: Path, run_id: int, wanted: str, before: int,
            after: int) -> tuple[int, int, int]:
    """Make the fixed-epoch run of ``before`` epochs one of ``after`` (in the caller's
    transaction): its configuration says ``after``, and every network that finished
    ``before`` epochs with its final state kept becomes ``running`` from that state (its
    epochs 1..before and a checkpoint at ``before``: the consistency rule of a running
    one), so the next sweep trains it on from there exactly as an uninterrupted run of
    ``after`` epochs would have. Diverged networks stay finished. Refused (nothing
    changed) when the run would shrink, or a finished network has no final state (it
    was written by an nflc that did not keep it)."""
    if after < before:
        raise StoreMismatchError(
            f"results database {path} holds a run of {before} epochs; a run can be extended, not shortened",
            hint=f"rerun with --epochs {before} (or more, to extend it), or pass a new --db path")
    done = conn.execute("SELECT a.arch_id, a.epochs_run, c.epoch FROM archs a LEFT JOIN checkpoints c "
                        "USING (run_id, arch_id) WHERE a.run_id = ? AND a.status = 'done'", (run_id,)).fetchall()
    stateless = [a for a, ran, ckpt in done if ckpt != ran]
    if stateless:
        raise StoreMismatchError(
            f"results database {path}: {len(stateless)} finished network(s) kept no final state (e.g. "
            f"{stateless[0]!r}; written by an older nflc), so the run cannot be extended from {before} to {after} "
            "epochs", hint=f"rerun with --epochs {before}, or pass a new --db path for the longer run")
    now = _now()
    conn.execute("UPDATE runs SET config = ? WHERE id = ?", (wanted, run_id))
    conn.execute("UPDATE archs SET status = 'running', expressivity = NULL, convergence = NULL, generalization = NULL, "
                 "epochs_run = NULL, updated = ? WHERE run_id = ? AND status = 'done'", (now, run_id))
    history = conn.execute("SELECT value FROM meta WHERE key = 'extended'").fetchone()
    entries = (json.loads(history[0]) if history else []) + [{"from": before, "to": after, "at": now}]
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('extended', ?)", (json.dumps(entries),))
    return before, after, len(done)


def _backup_beside(conn: sqlite3.Connection, path: Path) -> Optional[Path]:
    """A copy of what ``conn`` reads at ``PATH.recovered`` (``.recovered-2``, ... if taken);
    None when it cannot be written."""
    target, n = Path(f"{path}.recovered"), 1
    while target.exists() or target.is_symlink():
        n += 1
        target = Path(f"{path}.recovered-{n}")
    try:
        dest = sqlite3.connect(target)
        try:
            conn.backup(dest)
        finally:
            dest.close()
    except (sqlite3.Error, OSError):
        return None
    return target


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


def _file_identity(path: Path) -> Optional[tuple[int, int]]:
    """(device, inode) of the file at ``path``; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _schema_version(value: Any, path: Path) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StoreError(f"results database {path}: meta.schema_version is {value!r}, not a version number; the file "
                         "was edited or is damaged", hint="pass the --db path that 'nflc verify' wrote") from None


def _parsed_config(text: Any, path: Path) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except (TypeError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise StoreError(f"results database {path}: the run's stored configuration (table runs) is not a JSON object; "
                         "the file was edited or is damaged", hint="pass the --db path that 'nflc verify' wrote")
    return config


def _has_changes_in_wal(path: Path) -> bool:
    try:
        return os.stat(f"{path}-wal").st_size > 0
    except OSError:
        return False


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection, on read-only media too: SQLite's ``mode=ro`` needs to create
    a WAL database's ``-shm`` beside it; where it cannot and no ``-wal`` holds changes the
    file lacks, the file is read as ``immutable`` (exact then: nothing else can change it)."""
    try:
        conn = sqlite3.connect(f"{_uri(path)}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot open results database {path}: {exc}") from None
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if _has_changes_in_wal(path):
            raise StoreError(f"results database {path} cannot be read where it is ({exc}): its -wal file holds "
                             "changes and SQLite cannot create the -shm file beside it (read-only media?)",
                             hint=f"copy {path} and {path}-wal to a writable directory and read the copy") from None
    except sqlite3.DatabaseError:
        conn.close()
        raise
    try:
        return sqlite3.connect(f"{_uri(path)}?immutable=1", uri=True, isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot open results database {path}: {exc}") from None


def _read_only_reason(path: Path) -> Optional[str]:
    """Why ``path`` (an existing file, or the directory of a new one) cannot be written, or None."""
    is_dir = path.is_dir()
    directory = path.resolve() if is_dir else path.resolve().parent
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "its file system is mounted read-only"
    except (OSError, AttributeError):
        pass
    if not is_dir and not os.access(path, os.W_OK):
        return "the file is not writable"
    if not os.access(directory, os.W_OK):
        return f"{'the' if is_dir else 'its'} directory {directory} is not writable" + (
            "" if is_dir else " (SQLite writes its -wal and -shm files beside it)")
    return None


def _nflc_object(kind: str, name: str) -> bool:
    """Whether a schema object is one nflc makes: its tables and their automatic indexes."""
    if kind == "table":
        return name in TABLES
    if kind == "index":
        return any(name.startswith(f"sqlite_autoindex_{t}_") for t in TABLES)
    return False


def _damage(conn: sqlite3.Connection, path: Path, at_rest: bool) -> Optional[str]:
    """What SQLite finds wrong with the file (None: nothing): a file shorter than its
    header says (checked only ``at_rest``: no -wal held changes when it was opened), then
    ``PRAGMA quick_check``."""
    if at_rest:
        try:
            with open(path, "rb") as fh:
                head = fh.read(100)
            size = os.stat(path).st_size
        except OSError as exc:
            return str(exc)
        if len(head) == 100:
            page = int.from_bytes(head[16:18], "big")
            page = 65536 if page == 1 else page
            pages = int.from_bytes(head[28:32], "big")
            if page and (size % page or size < pages * page):
                return f"the file has {size:,} bytes, its header says {pages} pages of {page:,}"
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows)


def _what_report_reads(conn: sqlite3.Connection, path: Path) -> str:
    """What ``nflc report`` can still read of a damaged file (it reads meta, runs, archs and epochs)."""
    broken = []
    for table in ("meta", "runs", "archs", "epochs"):
        try:
            conn.execute(f"SELECT * FROM {table}").fetchall()
        except sqlite3.DatabaseError as exc:
            broken.append(f"{table}: {exc}")
    if broken:
        return (f"'nflc report' cannot read it either ({'; '.join(broken)}); 'sqlite3 {path} .recover' may save "
                "the rows that are left")
    try:
        n, done = conn.execute("SELECT COUNT(*), SUM(status IN ('done', 'diverged')) FROM archs").fetchone()
    except sqlite3.DatabaseError:
        n, done = "?", "?"
    return f"'nflc report --db {path}' can still read its results ({n} architectures, {done or 0} finished)"


def check_writable_database(path: Path) -> None:
    """Refuse, without changing a byte, a ``--db`` nflc must not or cannot write: a
    directory, a dangling link, a name the system refuses, a directory that is missing or
    read-only; an existing file that is not SQLite, an SQLite file of another program (its
    application id, or any schema object nflc does not make: a table, a view, a trigger, an
    index), a damaged one (with what ``nflc report`` can still read of it), or a read-only
    one. An absent or empty file, or an SQLite file without any schema object, is new."""
    try:
        if path.is_symlink() and not path.exists():
            raise StoreError(f"--db {path} is a symbolic link to {os.readlink(path)}, which does not exist",
                             hint="pass the database's own path, or a new path (the link is not followed to create one)")
        if path.is_dir():
            raise StoreError(f"--db {path} is a directory", hint="pass a file path, e.g. --db results.sqlite")
        exists = path.is_file()
        size = path.stat().st_size if exists else 0
    except OSError as exc:  # a name too long, a loop of links
        raise StoreError(f"--db {path}: {exc.strerror or exc}", hint="pass another --db path") from None
    if not exists:
        directory = path.parent
        if not directory.is_dir():
            raise StoreError(f"cannot open results database {path}: directory {directory} does not exist",
                             hint=f"create it first (mkdir -p {directory}) or pass another --db path")
        reason = _read_only_reason(directory)
        if reason is not None:
            raise StoreError(f"cannot create results database {path}: {reason}",
                             hint="pass a --db path in a writable directory")
        return
    if size > 0:
        try:
            at_rest = not _has_changes_in_wal(path)
            conn = _connect_readonly(path)
            try:
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
                foreign = sorted(f"{kind} {name}" for kind, name in objects if not _nflc_object(kind, name))
                tables = {name for kind, name in objects if kind == "table"}
                versioned = (TABLES <= tables and
                             conn.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is not None)
                ours = app_id == APPLICATION_ID or (app_id == 0 and (not objects or versioned))
                damage = _damage(conn, path, at_rest) if ours and objects and not foreign else None
                readable = _what_report_reads(conn, path) if damage is not None else ""
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            with open(path, "rb") as fh:
                sqlite = fh.read(16) == b"SQLite format 3\x00"
            what = "an SQLite file SQLite cannot read: damaged" if sqlite else "not an nflc results database"
            raise StoreError(f"--db {path} is {what} ({exc}); it was left untouched",
                             hint="pass a new --db path") from None
        if not ours or foreign:
            listed = ", ".join(foreign or sorted(tables)) or "none"
            raise StoreError(f"--db {path} is an SQLite database of another program (objects not nflc's: {listed}"
                             f"{'' if app_id in (0, APPLICATION_ID) else f'; application id {app_id}'}); it was left "
                             "untouched", hint="pass a new --db path for nflc's results")
        if damage is not None:
            raise StoreDamagedError(f"results database {path} is damaged (SQLite: {damage}); nflc does not write to it, "
                                    f"and left it untouched; {readable}",
                                    hint="pass a new --db path to train again, or restore the file from a copy")
    reason = _read_only_reason(path)
    if reason is not None:
        raise StoreError(f"results database {path} is read-only ({reason}); 'nflc verify' writes to its database",
                         hint=f"'nflc report --db {path}' reads it as it is; to continue the run, copy it (with its -wal "
                              "file, if any) to a writable directory and pass the copy as --db")


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back (e.g. on SQLITE_FULL); a second ROLLBACK would
    # raise and hide the original error.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


# Result codes (sqlite3 exports them only from Python 3.11 on).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13


def _full_error(path: Path, exc: Exception) -> StoreFullError:
    return StoreFullError(
        f"results database {path} cannot grow: the disk or its size limit is full ({exc})",
        hint="free disk space and rerun (finished architectures are kept), or pass a --db path on another disk",
    )


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn SQLite's busy and full conditions into errors that say what to do."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if code is not None else None  # extended codes keep the primary in the low byte
        message = str(exc).lower()
        if primary == _SQLITE_FULL or "disk is full" in message:
            raise _full_error(path, exc) from exc
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in message:
            raise StoreLockedError(
                f"results database {path} is locked by another process ({exc})",
                hint="wait for the other nflc process to finish, or pass a new --db path",
            ) from exc
        if isinstance(exc, sqlite3.IntegrityError):
            raise StoreError(f"results database {path} rejected an inconsistent write: {exc}") from exc
        if isinstance(exc, sqlite3.OperationalError):
            raise StoreError(f"results database {path}: {exc}") from exc
        raise StoreError(f"results database {path} is unusable: {exc}", hint="pass a new --db path") from exc
