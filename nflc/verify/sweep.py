"""Train many architectures one after another, recording into a :class:`ResultStore`.

``run_sweep`` skips architectures already finished, resumes an interrupted one from its
last checkpoint, and keeps going past diverged ones. Initial weights are seeded from
``(config.seed, arch_id)`` through sha256 (:func:`derive_seed`), minibatch order from
``config.seed`` alone (every architecture sees the same order, :func:`arch_seeds`), so an
architecture gets the same numbers whatever its position in the sweep and whichever
process trains it; a resumed sweep therefore repeats an uninterrupted one exactly (bit
for bit on the CPU).

The per-architecture trainer is a parameter (``train_fn``, default :func:`train`); the
bookkeeping a trainer needs (:class:`StoreRecorder`, :func:`arch_seeds`) is public so a
trainer that handles many architectures at once can record each one the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Optional, Protocol, Sequence, Union

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from nflc.data import Dataset
from nflc.verify.store import ResultStore, StoreMismatchError
from nflc.verify.train import (
    Aspects,
    Checkpoint,
    EpochCallback,
    EpochRecord,
    TrainConfig,
    TrainResult,
    derive_seed,
    train,
)

__all__ = [
    "ArchTrainer",
    "StoreRecorder",
    "SweepEvent",
    "SweepSummary",
    "arch_seeds",
    "run_sweep",
]


class ArchTrainer(Protocol):
    """The signature of :func:`nflc.verify.train.train`."""

    def __call__(
        self,
        module: nn.Module,
        train_set: Dataset,
        test_set: Dataset,
        config: TrainConfig,
        *,
        seed: int,
        resume: Optional[Checkpoint],
        history: Sequence[EpochRecord],
        on_epoch: Optional[EpochCallback],
    ) -> TrainResult: ...


@dataclass(frozen=True)
class SweepEvent:
    """What a sweep reports to a progress callback.

    ``start``: an architecture begins from scratch; ``resume``: it continues after
    ``epoch``; ``skip``: it was already finished; ``epoch``: one epoch done (``record``);
    ``finish``: it is finished (``aspects``).
    """

    kind: Literal["start", "resume", "skip", "epoch", "finish"]
    arch_id: str
    index: int  # 0-based position in the sweep
    total: int
    epoch: Optional[int] = None
    record: Optional[EpochRecord] = None
    aspects: Optional[Aspects] = None


class SweepSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    trained: list[str]  # finished in this call (including diverged ones)
    skipped: list[str]  # already finished before this call
    diverged: list[str]  # every diverged architecture of the sweep
    results: dict[str, Aspects]  # every architecture of the sweep, in sweep order


def arch_seeds(seed: int, arch_id: str) -> tuple[int, int]:
    """(initial-weights seed, training seed) of one architecture: independent streams.

    The initial weights are the architecture's own; the training seed (minibatch order,
    stochastic layers) is the sweep's, shared by every architecture: architectures are
    compared on the same data order (common random numbers), so what differs between two
    runs is the architecture and its initialisation, not the luck of the shuffle. It also
    lets a population draw one minibatch for all its members.
    """
    return derive_seed(seed, "init", arch_id), derive_seed(seed, "train")


class StoreRecorder:
    """An :class:`EpochCallback` that writes one architecture's progress to the store.

    Epochs accumulate in memory and are written together with a checkpoint every
    ``every`` epochs, in one transaction; :meth:`finish` writes the rest with the result.
    So the store never holds an epoch that its checkpoint does not cover.
    """

    def __init__(
        self,
        store: ResultStore,
        arch_id: str,
        every: int = 1,
        notify: Optional[Callable[[EpochRecord], None]] = None,
    ):
        if every < 1:
            raise ValueError(f"checkpoint interval must be >= 1 epoch, got {every}")
        self.store, self.arch_id, self.every, self.notify = store, arch_id, every, notify
        self._pending: list[EpochRecord] = []

    def __call__(self, record: EpochRecord, snapshot: Optional[Callable[[], Checkpoint]]) -> None:
        self._pending.append(record)
        if snapshot is not None and record.epoch % self.every == 0:
            self.store.save_progress(self.arch_id, self._pending, record.epoch, snapshot().to_bytes())
            self._pending = []
        if self.notify is not None:
            self.notify(record)

    def finish(self, aspects: Aspects) -> None:
        self.store.finish(self.arch_id, self._pending, aspects)
        self._pending = []


def _arch_id(item: Any) -> str:
    return str(item[0]) if isinstance(item, tuple) else str(item)


def _check_config_in_store(store: ResultStore, config: TrainConfig) -> None:
    """The store's configuration must contain this TrainConfig, at the top level or under
    ``"train"``: otherwise a resumed sweep could silently continue with other settings."""
    wanted = config.model_dump(mode="json")
    stored = store.config
    if stored != wanted and stored.get("train") != wanted:
        raise StoreMismatchError(
            f"results database {store.path} was opened with a configuration that does not contain "
            f"this training configuration {wanted}",
            hint="open the store with the TrainConfig as its configuration, or under the key 'train'",
        )


def _rich_reporter() -> tuple[Callable[[SweepEvent], None], Callable[[], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
        console=Console(stderr=True),  # stdout stays clean for results
    )
    task = None

    def report(event: SweepEvent) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("architectures", total=event.total, detail="")
        if event.kind in ("skip", "finish"):
            bar.advance(task)
        if event.kind == "epoch" and event.record is not None:
            r = event.record
            detail = f"{event.arch_id} epoch {r.epoch}: loss {r.train_loss:.4f} acc {r.train_acc:.3f}"
            bar.update(task, detail=detail)
        elif event.kind in ("start", "resume"):
            bar.update(task, detail=f"{event.arch_id} {'resumed after epoch ' + str(event.epoch) if event.epoch else 'starting'}")

    def close() -> None:
        if task is not None:
            bar.stop()

    return report, close


def begin_sweep(items, store, config, progress) -> tuple[list[str], Callable, Callable[[], None]]:
    """Shared start of every sweep: unique ids, the store's config checked, ids registered,
    and the progress reporter (rich bar for ``True``, a callable, or nothing)."""
    ids = [_arch_id(item) for item in items]
    duplicates = sorted({a for a in ids if ids.count(a) > 1})
    if duplicates:
        raise ValueError(f"architecture ids must be unique; repeated: {', '.join(duplicates)}")
    _check_config_in_store(store, config)
    store.register(ids)
    close: Callable[[], None] = lambda: None
    if progress is True:
        report, close = _rich_reporter()
    elif callable(progress):
        report = progress
    else:
        report = lambda event: None  # noqa: E731
    return ids, report, close


def run_sweep(
    items: Iterable[Union[str, tuple]],
    build_module: Callable[[str, int], nn.Module],
    dataset: tuple[Dataset, Dataset],
    config: TrainConfig,
    store: ResultStore,
    progress: Union[bool, Callable[[SweepEvent], None], None] = None,
    *,
    train_fn: ArchTrainer = train,
    checkpoint_every: int = 1,
) -> SweepSummary:
    """Train every architecture in ``items`` that ``store`` does not hold finished.

    ``items``: architecture ids, or tuples whose first element is the id.
    ``build_module(arch_id, seed)`` returns a fresh module whose initial weights depend
    only on ``seed`` (called inside a forked torch RNG, so builders may seed globally).
    ``dataset``: ``(train, test)``. ``progress``: ``True`` for a rich progress bar on
    stderr, or a callable receiving :class:`SweepEvent`s. A checkpoint is written every
    ``checkpoint_every`` epochs; an interrupted architecture resumes from the last one.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    train_set, test_set = dataset
    ids, report, close = begin_sweep(items, store, config, progress)

    trained: list[str] = []
    skipped: list[str] = []
    try:
        for index, arch_id in enumerate(ids):
            event = dict(arch_id=arch_id, index=index, total=len(ids))
            if store.status(arch_id) in ("done", "diverged"):
                skipped.append(arch_id)
                report(SweepEvent("skip", **event, aspects=store.aspects(arch_id)))
                continue
            init_seed, train_seed = arch_seeds(config.seed, arch_id)
            with torch.random.fork_rng(devices=[]):
                module = build_module(arch_id, init_seed)
            store.start(arch_id)
            saved = store.checkpoint(arch_id)
            resume = Checkpoint.from_bytes(saved[1]) if saved else None
            history = store.epochs(arch_id) if resume else []
            if resume is not None:
                report(SweepEvent("resume", **event, epoch=resume.epoch))
            else:
                report(SweepEvent("start", **event))
            recorder = StoreRecorder(
                store, arch_id, checkpoint_every, notify=lambda r, e=event: report(SweepEvent("epoch", **e, epoch=r.epoch, record=r))
            )
            result = train_fn(
                module, train_set, test_set, config, seed=train_seed, resume=resume, history=history, on_epoch=recorder
            )
            recorder.finish(result.aspects)
            trained.append(arch_id)
            report(SweepEvent("finish", **event, epoch=result.aspects.epochs, aspects=result.aspects))
    finally:
        close()

    results = store.results()
    in_sweep = {a: results[a] for a in ids if a in results}
    return SweepSummary(
        trained=trained,
        skipped=skipped,
        diverged=[a for a, asp in in_sweep.items() if asp.diverged],
        results=in_sweep,
    )
