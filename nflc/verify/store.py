"""SQLite store for verification results: one run per database file.

Tables (``SCHEMA``): ``runs`` (spec hash, canonical JSON configuration, creation time),
``archs`` (status and measured aspects per architecture), ``epochs`` (per-epoch metrics)
and ``checkpoints`` (serialized training state to resume an architecture mid-run).

Consistency rule, kept by writing each step in one ``BEGIN IMMEDIATE`` transaction:

- ``done``/``diverged``: all its epochs are stored, its aspects are set, no checkpoint;
- ``running``: its epochs are exactly ``1 .. checkpoint.epoch`` (none without a
  checkpoint), because epochs are written together with the checkpoint that covers them;
- ``pending``: no epochs and no checkpoint.

A killed process therefore leaves every architecture either finished with all its epochs
or resumable from its last checkpoint. WAL journaling lets readers (a progress viewer,
the tests) read while a sweep writes; ``synchronous=NORMAL`` keeps this atomicity on a
process crash (a power cut may lose the last commits, never consistency).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from pydantic import BaseModel

from nflc.errors import NflcError
from nflc.verify.train import Aspects, EpochRecord

__all__ = [
    "ResultStore",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreMismatchError",
    "canonical_json",
]

# 2: a sweep trains every architecture on one data order (nflc.verify.sweep.arch_seeds);
# version-1 databases hold per-architecture orders, so mixing them would break the
# comparison and a resumed sweep's repeatability: they are refused, not continued.
SCHEMA_VERSION = 2
OLDEST_READABLE = 1  # the tables have not changed since: reports read every version from it
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


def _nan_to_none(value: float) -> Optional[float]:
    # SQLite stores NaN as NULL anyway; make it explicit (inf is stored as is).
    return None if math.isnan(value) else value


def _none_to_nan(value: Optional[float]) -> float:
    return math.nan if value is None else float(value)


class ResultStore:
    """Results of one verification run in one SQLite file. Use :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, run_id: int, spec_hash: str, config: str):
        self._conn = conn
        self.path = path
        self.run_id = run_id
        self.spec_hash = spec_hash
        self.config_json = config

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
        other settings would mix incomparable numbers), :class:`StoreLockedError` when
        another process keeps it locked longer than ``timeout`` seconds.
        """
        path = Path(path)
        wanted = canonical_json(config)
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"cannot open results database {path}: {exc}",
                hint="check that the directory exists and is writable, or pass another --db path",
            ) from exc
        try:
            store = cls._initialise(conn, path, spec_hash, wanted)
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def _initialise(cls, conn: sqlite3.Connection, path: Path, spec_hash: str, wanted: str) -> "ResultStore":
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
                elif int(row[0]) != SCHEMA_VERSION:
                    raise StoreMismatchError(
                        f"results database {path} has schema version {row[0]}, this nflc writes {SCHEMA_VERSION}",
                        hint="use a new --db path",
                    )
                runs = conn.execute("SELECT id, spec_hash, config FROM runs ORDER BY id").fetchall()
                if not runs:
                    cur = conn.execute(
                        "INSERT INTO runs (spec_hash, config, created) VALUES (?, ?, ?)", (spec_hash, wanted, _now())
                    )
                    run_id = int(cur.lastrowid)
                else:
                    run_id, stored_hash, stored_config = runs[0]
                    differences = []
                    if stored_hash != spec_hash:
                        differences.append(f"spec hash {stored_hash} -> {spec_hash} (the .nfl space changed)")
                    if stored_config != wanted:
                        differences.append(f"configuration {_describe_config_diff(stored_config, wanted)}")
                    if differences:
                        raise StoreMismatchError(
                            f"results database {path} belongs to another run: " + "; ".join(differences),
                            hint=f"pass a new --db path for this run, or rerun with the settings stored in {path}",
                        )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        return cls(conn, path, run_id, spec_hash, wanted)

    @classmethod
    def open_readonly(cls, path: str | Path) -> "ResultStore":
        """Open an existing database to read its run, whatever its spec and configuration
        (reports, viewers). Writes through the returned store fail."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no results database at {path}", hint="pass the --db path that 'nflc verify' wrote")
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open results database {path}: {exc}") from exc
        try:
            with _translated(path):
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"meta", "runs", "archs", "epochs", "checkpoints"} <= tables:
                    raise StoreError(f"{path} is not an nflc results database (tables: {sorted(tables) or 'none'})",
                                     hint="pass the --db path that 'nflc verify' wrote")
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                # the tables are unchanged since version 1, so older results can still be read
                if row is None or not OLDEST_READABLE <= int(row[0]) <= SCHEMA_VERSION:
                    raise StoreMismatchError(f"results database {path} has schema version {row[0] if row else None}, "
                                             f"this nflc reads {OLDEST_READABLE} to {SCHEMA_VERSION}")
                runs = conn.execute("SELECT id, spec_hash, config FROM runs ORDER BY id").fetchall()
                if not runs:
                    raise StoreError(f"results database {path} holds no run yet")
        except BaseException:
            conn.close()
            raise
        run_id, spec_hash, config = runs[0]
        return cls(conn, path, int(run_id), spec_hash, config)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: BEGIN IMMEDIATE takes the write lock up front, so a busy
        database fails here (after the timeout) rather than half-way through."""
        with _translated(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                _rollback(self._conn)
                raise
            self._conn.execute("COMMIT")

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

    def finish(self, arch_id: str, records: Sequence[EpochRecord], aspects: Aspects) -> None:
        """Append the last ``records``, store the aspects, set ``done``/``diverged`` and drop
        the checkpoint, atomically."""
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
            c.execute("DELETE FROM checkpoints WHERE run_id = ? AND arch_id = ?", (self.run_id, arch_id))
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

    # -- reads -----------------------------------------------------------------------

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
        return {key[len("info:"):]: json.loads(value) for key, value in rows}

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``'ok'`` for a sound file."""
        return "\n".join(row[0] for row in self._read("PRAGMA integrity_check"))


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
