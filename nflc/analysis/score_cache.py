"""A content-addressed cache of measured kernels (SQLite), so a rerun measures nothing twice.

The key is a hash of what the kernels depend on: the space's meaning (``spec_hash``, its
IR without source positions), the architecture's computing graph as far as the kernels see
it (per cell placement the non-zero edges and node ops from which the output is reachable,
in the space's own numbering: two architectures that differ only in edges whose outputs
never reach the cell's output share one entry), its own constants
(numeric choices, a solved width), the measurement settings that change the numbers
(inputs, seed, width, precision) and :data:`VERSION`, raised whenever the measurement
itself changes. Only successes are stored: a network that failed (for example over the
memory limit) is tried again by the next run.

Writes go through one process (the caller of :meth:`KernelCache.put`), each committed at
once, so an interrupted run keeps every kernel it finished. Several nflc processes may share
the file (SQLite's write-ahead log, a busy timeout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

import networkx as nx
import numpy as np

from nflc.analysis.rank_components import Kernels, KernelSettings

if TYPE_CHECKING:
    from nflc.space import Architecture

__all__ = ["VERSION", "KernelCache", "cache_key", "computing_graph", "default_cache_path"]

VERSION = 1  # of the measurement (rank_components.measure_kernels); part of every key

_SCHEMA = """CREATE TABLE IF NOT EXISTS kernels (
    key TEXT PRIMARY KEY, n INTEGER NOT NULL, ntk BLOB NOT NULL, nngp BLOB NOT NULL, source TEXT NOT NULL,
    seconds REAL NOT NULL, peak INTEGER NOT NULL, constants TEXT NOT NULL, created REAL NOT NULL)"""


def default_cache_path() -> Path:
    """``$NFLC_CACHE`` when set, else ``$XDG_CACHE_HOME/nflc/kernels.sqlite`` (``~/.cache`` by default)."""
    if os.environ.get("NFLC_CACHE"):
        return Path(os.environ["NFLC_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nflc" / "kernels.sqlite"


def computing_graph(arch: Architecture) -> list:
    """Per cell placement (in the space's order) the edges ``(s, t, op)`` and node ops ``(v, op)``
    the cell's output depends on, in the space's numbering.

    That is everything from which the output is reachable, not only what lies on an
    input-output path: an edge out of a node that no input reaches still adds its trainable
    shift (a batch norm's bias) to the output, so its parameters are in the NTK. Weights are
    seeded by their module path (:mod:`nflc.backends.torch`), so two architectures with the
    same such graph have the same kernels."""
    out: list[tuple[str, list, list]] = []
    for name, g in arch.cell_graphs.items():
        live = nx.DiGraph()
        live.add_nodes_from(g.nodes)
        live.add_edges_from((s, t) for s, t, a in g.edges(data=True) if a.get("kind") != "zero")
        if not g.nodes:
            out.append((name, [], []))
            continue
        dst = max(g.nodes, key=_order)
        on = nx.ancestors(live, dst) | {dst}
        edges = sorted((str(s), str(t), str(g.edges[s, t].get("op"))) for s, t in live.edges if s in on and t in on)
        ops = sorted((str(v), str(g.nodes[v]["op"])) for v in on if "op" in g.nodes[v])
        out.append((name, edges, ops))
    return out


def _order(v: Any) -> tuple:
    # integer nodes in order; a named source ('in') first and a named sink ('out') last
    if isinstance(v, int):
        return (1, v, "")
    return (0, 0, str(v)) if str(v) == "in" else (2, 0, str(v))


def cache_key(arch: Architecture, settings: KernelSettings) -> str:
    doc = {"version": VERSION, "space": arch.space.spec_hash, "graph": computing_graph(arch),
           "constants": sorted(arch.constants_override.items()), "settings": settings.key_fields()}
    return hashlib.blake2b(json.dumps(doc, sort_keys=True).encode(), digest_size=20).hexdigest()


class KernelCache:
    """``get(key)`` / ``put(key, kernels)`` over an SQLite file (created with its folders).

    Opening a file that is not an SQLite database raises ``sqlite3.DatabaseError``. Once open,
    a read or write that fails (the file locked past the timeout, a full disk) never stops a
    run: ``get`` returns None, ``put`` stores nothing, and ``error`` keeps the first reason."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.error: str | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.DatabaseError:
            self._conn.close()
            raise

    def _failed(self, exc: sqlite3.Error) -> None:
        if self.error is None:
            self.error = f"{type(exc).__name__}: {exc}"

    def get(self, key: str) -> Kernels | None:
        try:
            row = self._conn.execute("SELECT n, ntk, nngp, source, seconds, peak, constants FROM kernels WHERE key = ?",
                                     (key,)).fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return None
        if row is None:
            return None
        n, ntk, nngp, source, seconds, peak, constants = row
        shape = (int(n), int(n))
        return Kernels(ntk=np.frombuffer(ntk, dtype=np.float64).reshape(shape).copy(),
                       nngp=np.frombuffer(nngp, dtype=np.float64).reshape(shape).copy(),
                       source=source, seconds=float(seconds), peak_bytes=int(peak), constants=json.loads(constants))

    def put(self, key: str, k: Kernels) -> None:
        ntk = np.ascontiguousarray(k.ntk, dtype=np.float64)
        nngp = np.ascontiguousarray(k.nngp, dtype=np.float64)
        try:
            self._conn.execute("INSERT OR REPLACE INTO kernels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (key, len(ntk), ntk.tobytes(), nngp.tobytes(), k.source, float(k.seconds),
                                int(k.peak_bytes), json.dumps(k.constants, sort_keys=True), time.time()))
        except sqlite3.Error as exc:
            self._failed(exc)

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM kernels").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
