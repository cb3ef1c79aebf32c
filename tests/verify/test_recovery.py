"""Recovery paths beyond the happy one, through the public sweep API (``run_training``,
``ResultStore``, an executor) and ``nflc report --json``:

- a group lost (as a Ray worker that dies) after epochs no checkpoint covers: its retry
  trains them again from the last checkpoint and stores each epoch once, so the database is
  the uninterrupted run's, row for row;
- a database that holds a diverged network, resumed or extended: the network stays
  diverged with its epochs, nothing is rebuilt or retrained, and the report flags it
  diverged with no chance verdict (``left_chance`` null);
- a writer whose lease row was deleted (by hand, or a crashed tool): it stops at its next
  write, before writing, and the database keeps what was written before.

Expectations come from outside the code under test: an uninterrupted run under other
conditions (no failure), epoch numbers 1..E, the rows read back with sqlite3."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nflc.cli import app
from nflc.data import load_dataset, train_test_split
from nflc.verify import LocalExecutor, ResultStore, StoreBusyError, TrainConfig, run_training, train

SPEC = "recovery-tests"


@pytest.fixture(scope="module")
def split():
    return train_test_split(load_dataset("digits", seed=0, n=150), test_fraction=0.2, seed=0)


def build(arch_id: str, seed: int) -> nn.Module:
    """``steady*``: a small ReLU MLP; ``exploding``: a deep linear map whose loss overflows
    under the sweep's learning rate (NaN at epoch 8 of the runs below)."""
    g = torch.Generator().manual_seed(seed % 2**63)
    linear = arch_id == "exploding"
    m = nn.Sequential(nn.Linear(64, 8), nn.Identity() if linear else nn.ReLU(), nn.Linear(8, 10))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.9 if linear else 0.3))
    return m


def rows(db: Path) -> dict:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {"archs": conn.execute("SELECT arch_id, status, expressivity, convergence, generalization, epochs_run "
                                      "FROM archs ORDER BY arch_id").fetchall(),
                "epochs": conn.execute("SELECT arch_id, epoch, train_loss, train_acc, test_loss, test_acc FROM epochs "
                                       "ORDER BY arch_id, epoch").fetchall(),
                "checkpoints": conn.execute("SELECT arch_id, epoch FROM checkpoints ORDER BY arch_id").fetchall()}
    finally:
        conn.close()


def assert_epochs_once(db: Path, expected: dict[str, int]) -> None:
    epochs = rows(db)["epochs"]
    per = Counter(a for a, *_ in epochs)
    assert dict(per) == expected, f"epoch rows per network {dict(per)}, expected {expected}"
    for arch, n in expected.items():
        assert [e for a, e, *_ in epochs if a == arch] == list(range(1, n + 1)), f"{arch}: epochs not 1..{n} once each"


# ---------------------------------------------------------------------------------------
# a group lost after epochs no checkpoint covers


class Lost(RuntimeError):
    """What a dead worker looks like to the driver."""


class LosingExecutor:
    """Trains groups in this process like LocalExecutor, but the group training ``victim``
    is lost once, right after its epoch ``at`` was sent (an epoch no checkpoint covers when
    ``at`` is not a multiple of the checkpoint interval); the driver is told, as a remote
    executor tells it, and plans the group again."""

    name = "losing"

    def __init__(self, victim: str, at: int):
        self.victim, self.at, self.lost = victim, at, 0

    def prepare(self, config) -> None:
        return None

    def close(self) -> None:
        return None

    def _train(self, module, train_set, test_set, config, *, seed, resume, history, on_epoch):
        victim = self.lost == 0 and self.current == [self.victim]

        def epoch(record, snapshot):
            on_epoch(record, snapshot)
            if victim and record.epoch == self.at:
                self.lost += 1
                raise Lost(f"worker running {self.victim} died after epoch {self.at}")

        return train(module, train_set, test_set, config, seed=seed, resume=resume, history=history, on_epoch=epoch)

    def run(self, plan, dataset, config, checkpoint_every, handle, failed) -> None:
        taken = []
        executor = self

        class Taking:  # the plan as LocalExecutor sees it, remembering the group in flight
            def take(self):
                group = plan.take()
                taken.append(group)
                executor.current = group.ids if group is not None else []
                return group

        while True:
            try:
                LocalExecutor(self._train).run(Taking(), dataset, config, checkpoint_every, handle, failed)
                return
            except Lost as exc:
                failed(taken[-1], exc)


CONFIG = TrainConfig(epochs=7, lr=0.5, batch=32, seed=3, device="cpu")


@pytest.mark.parametrize("at", [3, 5, 6])
def test_a_group_lost_after_uncovered_epochs_stores_each_epoch_once(tmp_path, split, at):
    ids = ["steady-a", "steady-b", "steady-c"]
    with ResultStore.open(tmp_path / "ref.sqlite", SPEC, CONFIG) as store:
        run_training(ids, build, split, CONFIG, store, checkpoint_every=2)
    executor = LosingExecutor("steady-b", at)
    with ResultStore.open(tmp_path / "lost.sqlite", SPEC, CONFIG) as store:
        summary = run_training(ids, build, split, CONFIG, store, checkpoint_every=2, executor=executor)
    assert executor.lost == 1 and summary.retried == 1
    assert sorted(summary.trained) == ids
    assert_epochs_once(tmp_path / "lost.sqlite", {a: 7 for a in ids})
    assert rows(tmp_path / "lost.sqlite") == rows(tmp_path / "ref.sqlite")


# ---------------------------------------------------------------------------------------
# a database holding a diverged network

DIVERGING = TrainConfig(epochs=9, lr=2.0, batch=32, seed=0, device="cpu")  # odd: the final state is not a periodic checkpoint


@pytest.fixture()
def diverged_db(tmp_path, split):
    db = tmp_path / "div.sqlite"
    train_y = split[0].y
    freq = torch.bincount(train_y, minlength=10).double() / len(train_y)
    chance = float(-(freq[freq > 0] * freq[freq > 0].log()).sum())  # cross-entropy of the class frequencies
    with ResultStore.open(db, SPEC, DIVERGING) as store:
        summary = run_training(["steady", "exploding"], build, split, DIVERGING, store, checkpoint_every=2)
        store.put_info({"run": {"chance_loss": chance}})
    assert summary.diverged == ["exploding"] and sorted(summary.trained) == ["exploding", "steady"]
    return db


def refuse_to_build(arch_id: str, seed: int) -> nn.Module:
    raise AssertionError(f"{arch_id} was built again: a finished network must be skipped")


def test_a_resumed_database_keeps_its_diverged_network_and_trains_nothing(diverged_db, split):
    before = rows(diverged_db)
    status = dict((a, s) for a, s, *_ in before["archs"])
    epochs_run = dict((a, n) for a, *_, n in before["archs"])
    assert status == {"exploding": "diverged", "steady": "done"}
    assert 1 < epochs_run["exploding"] < DIVERGING.epochs  # it diverged mid-run, after a checkpoint
    assert ("exploding",) not in [(a,) for a, _ in before["checkpoints"]]  # nothing to resume from
    events = []
    with ResultStore.open(diverged_db, SPEC, DIVERGING) as store:
        summary = run_training(["steady", "exploding"], refuse_to_build, split, DIVERGING, store, events.append,
                               checkpoint_every=2)
    assert summary.trained == [] and summary.skipped == ["steady", "exploding"]
    assert summary.diverged == ["exploding"] and summary.results["exploding"].diverged
    assert [e.kind for e in events] == ["skip", "skip"]
    assert rows(diverged_db) == before
    assert_epochs_once(diverged_db, {"steady": 9, "exploding": epochs_run["exploding"]})


def test_an_extended_run_continues_the_finished_network_and_leaves_the_diverged_one(diverged_db, split):
    longer = DIVERGING.model_copy(update={"epochs": 12})
    before = rows(diverged_db)
    built = []

    def build_steady_only(arch_id: str, seed: int) -> nn.Module:
        built.append(arch_id)
        return build(arch_id, seed)

    with ResultStore.open(diverged_db, SPEC, longer) as store:
        summary = run_training(["steady", "exploding"], build_steady_only, split, longer, store, checkpoint_every=2)
    assert built == ["steady"], f"networks built for the longer run: {built} (the diverged one must stay finished)"
    assert summary.trained == ["steady"] and summary.skipped == ["exploding"]
    after = rows(diverged_db)
    n = dict((a, n) for a, *_, n in before["archs"])["exploding"]
    assert_epochs_once(diverged_db, {"steady": 12, "exploding": n})
    assert [r for r in after["epochs"] if r[0] == "exploding"] == [r for r in before["epochs"] if r[0] == "exploding"]
    assert [r for r in after["archs"] if r[0] == "exploding"] == [r for r in before["archs"] if r[0] == "exploding"]


def test_the_report_flags_the_diverged_network_and_judges_chance_only_for_finite_runs(diverged_db, tmp_path):
    out = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["report", "--db", str(diverged_db), "--json", str(out), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    by_id = {a["id"]: a for a in report["architectures"]}
    exploding, steady = by_id["exploding"], by_id["steady"]
    assert exploding["status"] == "diverged" and exploding["diverged"] is True
    assert exploding["expressivity"] is None and exploding["generalization"] is None
    # it has finite epochs before the overflow, yet a diverged run gets no chance verdict
    finite = [r[2] for r in rows(diverged_db)["epochs"] if r[0] == "exploding" and r[2] is not None and math.isfinite(r[2])]
    assert len(finite) >= 5
    assert exploding["left_chance"] is None, "left_chance of a diverged run"
    assert not any("never left chance" in n for n in report["notes"])
    steady_losses = [r[2] for r in rows(diverged_db)["epochs"] if r[0] == "steady"]
    assert steady["left_chance"] is (min(steady_losses) < 0.99 * report["chance_loss"])
    assert report["counts"]["diverged"] == 1


# ---------------------------------------------------------------------------------------
# a writer whose lease row was deleted


def delete_lease(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert conn.execute("DELETE FROM meta WHERE key = 'writer'").rowcount == 1
    finally:
        conn.close()


def test_a_writer_whose_lease_row_was_deleted_stops_before_its_next_write(tmp_path, split):
    db = tmp_path / "lease.sqlite"
    config = TrainConfig(epochs=4, lr=0.5, batch=32, seed=0, device="cpu")

    def progress(event):
        if event.kind == "epoch" and event.epoch == 2:
            delete_lease(db)

    with ResultStore.open(db, SPEC, config) as store:
        with pytest.raises(StoreBusyError, match="lost the writer lease"):
            run_training(["steady"], build, split, config, store, progress, checkpoint_every=1)
    got = rows(db)
    assert [e for _, e, *_ in got["epochs"]] == [1, 2] and got["checkpoints"] == [("steady", 2)]
    assert got["archs"][0][1] == "running"


def test_a_writer_without_a_lease_row_writes_nothing_at_all(tmp_path, split):
    db = tmp_path / "lease.sqlite"
    config = TrainConfig(epochs=2, lr=0.5, batch=32, seed=0, device="cpu")
    with ResultStore.open(db, SPEC, config) as store:
        delete_lease(db)
        with pytest.raises(StoreBusyError, match="lost the writer lease"):
            run_training(["steady"], build, split, config, store)
    assert rows(db) == {"archs": [], "epochs": [], "checkpoints": []}
    # the database is not held: the next writer takes it and completes the run
    with ResultStore.open(db, SPEC, config) as store:
        summary = run_training(["steady"], build, split, config, store)
    assert summary.trained == ["steady"]
    assert_epochs_once(db, {"steady": 2})


# ---------------------------------------------------------------------------------------
# what an interruption leaves


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("every, stop_after, stored", [(3, 5, 3), (2, 5, 4), (4, 4, 4), (5, 4, 0)])
def test_an_interrupted_run_keeps_exactly_the_epochs_its_last_checkpoint_covers(tmp_path, split, every, stop_after, stored):
    """Checkpoints fall every ``every`` epochs; an epoch is written with the checkpoint that
    covers it, so a run stopped after epoch ``stop_after`` holds epochs 1..(the last multiple
    of ``every`` up to it), and resuming completes it to the uninterrupted run's rows."""
    config = TrainConfig(epochs=7, lr=0.5, batch=32, seed=1, device="cpu")

    def progress(event):
        if event.kind == "epoch" and event.epoch == stop_after:
            raise Interrupt

    db = tmp_path / "cut.sqlite"
    with ResultStore.open(db, SPEC, config) as store:
        with pytest.raises(Interrupt):
            run_training(["steady"], build, split, config, store, progress, checkpoint_every=every)
    got = rows(db)
    assert [e for _, e, *_ in got["epochs"]] == list(range(1, stored + 1)), "epochs stored before the interruption"
    assert got["checkpoints"] == ([("steady", stored)] if stored else []), "the last checkpoint"
    with ResultStore.open(db, SPEC, config) as store:
        run_training(["steady"], build, split, config, store, checkpoint_every=every)
    with ResultStore.open(tmp_path / "ref.sqlite", SPEC, config) as store:
        run_training(["steady"], build, split, config, store, checkpoint_every=every)
    assert rows(db)["epochs"] == rows(tmp_path / "ref.sqlite")["epochs"]


def test_the_heartbeat_never_recreates_a_deleted_lease(tmp_path, split, monkeypatch):
    """The writer's heartbeat thread refreshes its own lease row only: once the row is gone
    it stays gone (the writer then stops at its next write instead of reclaiming the file)."""
    import time

    import nflc.verify.store as store_module

    monkeypatch.setattr(store_module, "LEASE_HEARTBEAT", 0.02)
    db = tmp_path / "beat.sqlite"

    def lease() -> str | None:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'writer'").fetchone()
            return row[0] if row else None
        finally:
            conn.close()

    with ResultStore.open(db, SPEC, CONFIG) as store:
        first = lease()
        deadline = time.monotonic() + 60  # a hang guard, not a speed goal: the heartbeat beats every 0.02 s
        while lease() == first:  # wait for one beat (timestamps have whole seconds)
            if time.monotonic() > deadline:
                pytest.fail("the heartbeat never beat")
            time.sleep(0.02)
        delete_lease(db)
        time.sleep(0.5)  # some 25 beats
        assert lease() is None, "the heartbeat recreated the deleted lease"
        with pytest.raises(StoreBusyError, match="lost the writer lease"):
            store.register(["steady"])
