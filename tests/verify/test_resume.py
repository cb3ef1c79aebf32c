"""Sweeps: skipping finished work, divergence, seeds per architecture, and resuming after
an interruption (in-process and by SIGKILL of a real process) to the same numbers."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from nflc.cli_progress import sweep_progress
from nflc.data import load_dataset, train_test_split
from nflc.verify.store import ResultStore, StoreMismatchError
from nflc.verify.driver import LocalExecutor, SweepEvent, run_training
from nflc.verify.train import TrainConfig, train

from .helpers import run_and_sigkill

REPO = Path(__file__).resolve().parents[2]
ITEMS = ["w8", "w16", "w24", "w32"]
CONFIG = TrainConfig(epochs=8, lr=0.3, batch=64, seed=7, device="cpu")
SPEC = "spec-for-tests"


def split():
    return train_test_split(load_dataset("digits", seed=0, n=256), test_fraction=0.25, seed=0)


def build(arch_id: str, seed: int) -> nn.Module:
    """A tiny MLP whose width is in its id; ``boom`` starts with weights that overflow."""
    torch.manual_seed(seed)  # global on purpose: run_training must isolate builders that do this
    if arch_id == "boom":
        model = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
        with torch.no_grad():
            model[0].weight.fill_(1e38)
        return model
    width = int(arch_id[1:])
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Dropout(0.1), nn.Linear(width, 10))


def snapshot(db: Path) -> dict[str, tuple]:
    """Everything a sweep computed, per architecture: (status, aspects, epochs)."""
    with ResultStore.open(db, SPEC, CONFIG) as store:
        return {a: (s, store.aspects(a), store.epochs(a)) for a, s in store.statuses().items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple]:
    """The uninterrupted sweep."""
    db = tmp_path_factory.mktemp("reference") / "ref.sqlite"
    with ResultStore.open(db, SPEC, CONFIG) as store:
        run_training(ITEMS, build, split(), CONFIG, store)
    return snapshot(db)


def test_sweep_finishes_everything_then_skips_it(tmp_path, reference):
    calls = []

    def counting_train(module, *args, **kwargs):
        calls.append(1)
        return train(module, *args, **kwargs)

    with ResultStore.open(tmp_path / "r.sqlite", SPEC, CONFIG) as store:
        summary = run_training(ITEMS, build, split(), CONFIG, store, executor=LocalExecutor(counting_train))
        assert summary.trained == ITEMS and summary.skipped == [] and list(summary.results) == ITEMS
        again = run_training([(a, "extra data") for a in ITEMS], build, split(), CONFIG, store, executor=LocalExecutor(counting_train))
    assert len(calls) == len(ITEMS)  # the second sweep trained nothing
    assert again.skipped == ITEMS and again.results == summary.results
    assert snapshot(tmp_path / "r.sqlite") == reference
    assert all(status == "done" and len(epochs) == CONFIG.epochs for status, _, epochs in reference.values())


def test_seeds_depend_on_the_architecture_not_its_position(tmp_path, reference):
    with ResultStore.open(tmp_path / "r.sqlite", SPEC, CONFIG) as store:
        run_training(list(reversed(ITEMS[:2])), build, split(), CONFIG, store)
    got = snapshot(tmp_path / "r.sqlite")
    assert got == {a: reference[a] for a in ITEMS[:2]}


def test_divergence_is_recorded_and_the_sweep_goes_on(tmp_path, reference):
    with ResultStore.open(tmp_path / "r.sqlite", SPEC, CONFIG) as store:
        summary = run_training(["w8", "boom", "w16"], build, split(), CONFIG, store)
        assert summary.diverged == ["boom"] and summary.trained == ["w8", "boom", "w16"]
        assert store.status("boom") == "diverged" and store.aspects("boom").expressivity is None
        assert store.checkpoint("boom") is None
        assert len(store.epochs("boom")) == store.aspects("boom").epochs < CONFIG.epochs
    got = snapshot(tmp_path / "r.sqlite")
    assert got["w8"] == reference["w8"] and got["w16"] == reference["w16"]


def test_store_must_hold_this_training_configuration(tmp_path):
    with ResultStore.open(tmp_path / "r.sqlite", SPEC, {"train": CONFIG.model_dump(mode="json"), "data": "digits"}) as store:
        run_training(["w8"], build, split(), CONFIG, store)  # accepted under "train"
        with pytest.raises(StoreMismatchError, match="does not contain"):
            run_training(["w8"], build, split(), CONFIG.model_copy(update={"lr": 0.5}), store)


def test_duplicate_ids_are_refused(tmp_path):
    with ResultStore.open(tmp_path / "r.sqlite", SPEC, CONFIG) as store:
        with pytest.raises(ValueError, match="repeated: w8"):
            run_training(["w8", "w16", "w8"], build, split(), CONFIG, store)


class Interrupt(Exception):
    pass


def test_in_process_interruption_resumes_from_the_last_checkpoint(tmp_path, reference):
    db = tmp_path / "r.sqlite"

    def stop_in_w16(event: SweepEvent) -> None:
        if event.kind == "epoch" and event.arch_id == "w16" and event.epoch == 5:
            raise Interrupt

    with ResultStore.open(db, SPEC, CONFIG) as store:
        with pytest.raises(Interrupt):
            run_training(ITEMS, build, split(), CONFIG, store, progress=stop_in_w16, checkpoint_every=2)
        # every 2 epochs: epoch 5 is not covered, the checkpoint after epoch 4 is
        assert store.status("w16") == "running" and store.checkpoint("w16")[0] == 4
        assert [r.epoch for r in store.epochs("w16")] == [1, 2, 3, 4]
        events: list[SweepEvent] = []
        run_training(ITEMS, build, split(), CONFIG, store, progress=events.append, checkpoint_every=2)
    kinds = [(e.kind, e.arch_id, e.epoch) for e in events if e.kind != "epoch"]
    assert kinds[:2] == [("skip", "w8", None), ("resume", "w16", 4)]
    assert snapshot(db) == reference


def test_rich_progress_bar_runs(tmp_path, capsys):
    config = CONFIG.model_copy(update={"epochs": 2})
    with ResultStore.open(tmp_path / "p.sqlite", SPEC, config) as store:
        report, close = sweep_progress(config.epochs)
        summary = run_training(["w8"], build, split(), config, store, progress=report)
        close()
    assert summary.trained == ["w8"]
    assert "architectures" in capsys.readouterr().err


# -- a real crash ------------------------------------------------------------------------


def child_main(db: str, threads: int) -> None:
    """The sweep the SIGKILL test runs in a separate process. Each epoch event sleeps a
    little so the parent can catch one architecture finished and another in progress;
    sleeping changes timing, not numbers."""
    torch.set_num_threads(threads)  # same BLAS partitioning as the parent: same float sums
    with ResultStore.open(db, SPEC, CONFIG) as store:
        run_training(ITEMS, build, split(), CONFIG, store, progress=lambda e: time.sleep(0.1) if e.kind == "epoch" else None)


def _poll(db: Path) -> tuple[int, int]:
    """(finished architectures, largest checkpoint epoch of a running one)."""
    if not db.exists():
        return 0, 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            done = conn.execute("SELECT COUNT(*) FROM archs WHERE status = 'done'").fetchone()[0]
            ckpt = conn.execute(
                "SELECT COALESCE(MAX(c.epoch), 0) FROM checkpoints c JOIN archs a USING (run_id, arch_id) "
                "WHERE a.status = 'running'"
            ).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # tables not created yet
        return 0, 0
    return done, ckpt


def test_sigkill_mid_sweep_loses_nothing_and_resumes_to_identical_numbers(tmp_path, reference):
    db = tmp_path / "killed.sqlite"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); "
        f"from tests.verify.test_resume import child_main; child_main({str(db)!r}, {torch.get_num_threads()})"
    )

    def mid_architecture() -> bool:
        done, ckpt = _poll(db)
        # Mid-architecture with epochs to spare (8 per architecture, 0.1 s each), so
        # the kill lands well inside it rather than at a boundary.
        return done >= 1 and 2 <= ckpt <= 5

    returncode = run_and_sigkill(code, mid_architecture, cwd=REPO)
    assert returncode == -signal.SIGKILL

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    killed = snapshot(db)
    statuses = [status for status, _, _ in killed.values()]
    assert "done" in statuses and "running" in statuses
    for arch_id, (status, aspects, epochs) in killed.items():
        if status == "done":  # nothing finished is lost, every number as uninterrupted
            assert (status, aspects, epochs) == reference[arch_id]
        elif status == "running":  # a prefix of the uninterrupted epochs, covered by its checkpoint
            assert epochs == reference[arch_id][2][: len(epochs)]

    events: list[SweepEvent] = []
    with ResultStore.open(db, SPEC, CONFIG) as store:
        run_training(ITEMS, build, split(), CONFIG, store, progress=events.append)
    resumed = [e for e in events if e.kind == "resume"]
    assert len(resumed) == 1 and resumed[0].epoch >= 2  # continued mid-architecture, not restarted
    assert snapshot(db) == reference
