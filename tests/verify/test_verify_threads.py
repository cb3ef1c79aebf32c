"""`nflc verify` chooses its threads as `nflc analyze` does (--threads, NFLC_THREADS, else
the cores other jobs leave free), records them in the database, and a resumed run keeps
them (a conv network's sums depend on the thread count in the last bits)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nflc.analysis.threads as threads_mod
from nflc.cli import app
from nflc.verify.run import recorded_threads
from nflc.verify.store import ResultStore

REPO = Path(__file__).resolve().parents[2]
H3 = REPO / "specs" / "nfl_h3.nfl"
TINY = ["--archs", "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|", "--samples", "60", "--width", "8", "--quiet"]


@pytest.fixture
def two_cores(monkeypatch):
    """A 2-core machine with no environment override; ``set_load`` sets its load."""
    for var in ("NFLC_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads_mod, "cpu_count", lambda: 2)
    load = {"now": 0.0}
    monkeypatch.setattr(threads_mod, "load_average", lambda: load["now"])
    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    return load, seen


def verify(db, *extra):
    res = CliRunner().invoke(app, ["verify", str(H3), *TINY, "--db", str(db), *map(str, extra)])
    assert res.exit_code == 0, res.output
    return res.output


def test_the_default_follows_the_machines_load(two_cores, tmp_path):
    load, seen = two_cores
    load["now"] = 0.0  # idle: both cores
    assert ", 2 threads" in verify(tmp_path / "a.sqlite", "--epochs", "1") and 2 in seen
    load["now"] = 1.2  # another job holds a core (or more): one thread
    assert ", 1 thread" in verify(tmp_path / "b.sqlite", "--epochs", "1")
    assert recorded_threads(tmp_path / "a.sqlite") == 2 and recorded_threads(tmp_path / "b.sqlite") == 1


def test_a_resumed_run_keeps_its_recorded_threads_unless_told(two_cores, tmp_path, monkeypatch):
    load, _ = two_cores
    db = tmp_path / "r.sqlite"
    verify(db, "--epochs", "1", "--threads", "1")
    with ResultStore.open_readonly(db) as store:
        assert store.info("run")["run"]["threads"] == 1
    load["now"] = 0.0  # the default would now be 2
    archs = TINY[1] + ",|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|"  # one more: work to do
    args = ["--archs", archs, "--samples", "60", "--width", "8", "--quiet", "--epochs", "1"]
    res = CliRunner().invoke(app, ["verify", str(H3), *args, "--db", str(db)])
    assert res.exit_code == 0 and ", 1 thread" in res.output, res.output
    told = CliRunner().invoke(app, ["verify", str(H3), *args, "--db", str(db), "--threads", "2"])
    assert told.exit_code == 0 and ", 2 threads" in told.output
    monkeypatch.setenv("NFLC_THREADS", "2")
    env = CliRunner().invoke(app, ["verify", str(H3), *args, "--db", str(db)])
    assert env.exit_code == 0 and ", 2 threads" in env.output
    assert recorded_threads(tmp_path / "none.sqlite") is None
    (tmp_path / "foreign.sqlite").write_text("not a database")
    assert recorded_threads(tmp_path / "foreign.sqlite") is None
