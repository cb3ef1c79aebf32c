"""The one sweep driver: which architectures train in which groups, and the only writer
of the results store; executors only train groups.

A sweep is a :class:`Plan` (architectures not yet finished, in groups: one network, or a
population of networks of one layout that resume after the same epoch), an
:class:`Executor` that trains groups (here, one after another, :class:`LocalExecutor`;
on a Ray cluster, :class:`nflc.verify.ray_executor.RayExecutor`) and streams back
:class:`EpochDone`/:class:`ArchDone` events, and :func:`run_training`, which records
every event in the :class:`ResultStore` as it arrives:

- an epoch is kept in memory until a checkpoint covers it, then written with that
  checkpoint in one transaction (the store never holds an epoch its checkpoint does not
  cover), and the last epochs with the result;
- a group whose executor failed (a Ray worker that died) is planned again from what the
  store holds: its members resume from their last checkpoints, and the epochs after those
  are trained again (to the same numbers, the training being seeded), so none is missing
  or stored twice.

Every architecture gets its seeds from ``(config.seed, arch_id)``
(:func:`nflc.verify.protocol.arch_seeds`), so its numbers do not depend on its group, its
executor or its position in the sweep.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Optional, Protocol, Sequence, Union

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from nflc.data import Dataset
from nflc.errors import NflcError
from nflc.verify.population import batching_pays, member_layout, train_population
from nflc.verify.protocol import arch_seeds
from nflc.verify.store import ResultStore, StoreError, StoreMismatchError
from nflc.verify.train import (Aspects, Checkpoint, CheckpointError, EpochRecord, StopReason, TrainConfig, TrainResult, resolve_device,
                               train)

__all__ = [
    "ArchDone",
    "ArchTrainer",
    "EpochDone",
    "Executor",
    "Group",
    "LocalExecutor",
    "Member",
    "Plan",
    "SweepEvent",
    "SweepSummary",
    "run_training",
    "train_group",
]


class ArchTrainer(Protocol):
    """The signature of :func:`nflc.verify.train.train`."""

    def __call__(self, module: nn.Module, train_set: Dataset, test_set: Dataset, config: TrainConfig, *,
                 seed: int, resume: Optional[Checkpoint], history: Sequence[EpochRecord],
                 on_epoch: Optional[Callable]) -> TrainResult: ...


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
    batched: list[str] = []  # trained in this call in populations
    alone: list[str] = []  # trained in this call one at a time
    retried: int = 0  # groups planned again after their executor failed
    stopped: dict[str, StopReason] = {}  # trained in this call: why each stopped (TrainResult.stopped)


# ---------------------------------------------------------------------------------------
# groups and what executors send back


@dataclass
class Member:
    arch_id: str
    module: nn.Module  # initial weights from the architecture's seed; a checkpoint overrides them
    seed: int  # training seed
    resume: Optional[Checkpoint] = None
    history: list[EpochRecord] = field(default_factory=list)  # the epochs ``resume`` covers


@dataclass
class Group:
    """What one executor call trains: one network alone, or a population (``batched``)."""

    members: list[Member]
    batched: bool
    eval_members: int = 1  # populations size evaluation chunks for this many (their group size)

    @property
    def ids(self) -> list[str]:
        return [m.arch_id for m in self.members]


@dataclass(frozen=True)
class EpochDone:
    arch_id: str
    record: EpochRecord
    checkpoint: Optional[bytes]  # the state after this epoch when a checkpoint is due


@dataclass(frozen=True)
class ArchDone:
    arch_id: str
    aspects: Aspects
    stopped: StopReason  # :attr:`nflc.verify.train.TrainResult.stopped`


Event = Union[EpochDone, ArchDone]


def _due(record: EpochRecord, snapshot: Optional[Callable[[], Checkpoint]], every: int,
         config: TrainConfig) -> Optional[bytes]:
    """The state after this epoch when a checkpoint is due: every ``every`` epochs, and at the
    last epoch of a fixed-epoch run (the final state the store keeps, so the run can be
    extended)."""
    final = config.plateau is None and record.epoch == config.epochs
    return snapshot().to_bytes() if snapshot is not None and (record.epoch % every == 0 or final) else None


def train_group(group: Group, dataset: tuple[Dataset, Dataset], config: TrainConfig, checkpoint_every: int,
                emit: Callable[[Event], None], train_fn: ArchTrainer = train) -> None:
    """Train ``group`` in this process, sending every epoch (with its checkpoint when one
    is due every ``checkpoint_every`` epochs) and every result to ``emit``: what each
    executor runs, wherever it runs it."""
    train_set, test_set = dataset
    if group.batched:
        ids = group.ids
        results = train_population(
            [m.module for m in group.members], train_set, test_set, config, seeds=[m.seed for m in group.members],
            resume=[m.resume for m in group.members], histories=[m.history for m in group.members],
            on_epoch=lambda i, r, snap: emit(EpochDone(ids[i], r, _due(r, snap, checkpoint_every, config))),
            eval_members=group.eval_members)
        for m, result in zip(group.members, results, strict=True):
            emit(ArchDone(m.arch_id, result.aspects, result.stopped))
        return
    (m,) = group.members
    result = train_fn(m.module, train_set, test_set, config, seed=m.seed, resume=m.resume, history=m.history,
                      on_epoch=lambda r, snap: emit(EpochDone(m.arch_id, r, _due(r, snap, checkpoint_every, config))))
    emit(ArchDone(m.arch_id, result.aspects, result.stopped))


# ---------------------------------------------------------------------------------------
# the plan


class Plan:
    """Groups to train, handed out one at a time (:meth:`take`) so that only the groups an
    executor is about to train hold built modules. Population groups fill as the
    architectures are scanned (members share a layout and the epoch they resume after);
    networks outside the population family (or too large to gain from batching) follow,
    one at a time. Groups that failed come back first (:meth:`retry`)."""

    def __init__(self, ids: Sequence[str], build: Callable[[str, int], nn.Module], store: ResultStore,
                 config: TrainConfig, report: Callable[[SweepEvent], None], *, population: bool,
                 group_size: int, only_when_faster: bool):
        self.ids, self._build, self.store, self.config, self._report = list(ids), build, store, config, report
        self.population, self.group_size, self.only_when_faster = population, group_size, only_when_faster
        self.position = {a: i for i, a in enumerate(self.ids)}
        self.device = resolve_device(config.device)
        self.skipped: list[str] = []
        self._cursor = 0
        self._buckets: dict[tuple, list[Member]] = {}
        self._ready: collections.deque[Group] = collections.deque()
        self._alone: list[str] = []  # built again when their turn comes

    def _event(self, kind: Any, arch_id: str, **kw: Any) -> None:
        self._report(SweepEvent(kind, arch_id=arch_id, index=self.position[arch_id], total=len(self.ids), **kw))

    def member(self, arch_id: str, module: Optional[nn.Module] = None) -> Member:
        """An architecture as the store has it: fresh, or resuming after its checkpoint."""
        init_seed, train_seed = arch_seeds(self.config.seed, arch_id)
        if module is None:
            with torch.random.fork_rng(devices=[]):  # builders may seed the global generator
                module = self._build(arch_id, init_seed)
        saved = self.store.checkpoint(arch_id)
        if saved is None:
            return Member(arch_id, module, train_seed, None)
        try:
            resume = Checkpoint.from_bytes(saved[1])
        except CheckpointError as exc:
            raise StoreError(
                f"the checkpoint of architecture {arch_id} in {self.store.path} (after epoch {saved[0]}) cannot be read "
                f"({exc}); it cannot resume from it",
                hint=(f"to train it again from its start, delete its checkpoint: sqlite3 {self.store.path} \"DELETE FROM "
                      f"checkpoints WHERE arch_id = '{arch_id}'\" (then rerun; the other architectures keep their "
                      "results), or pass a new --db path")) from None
        return Member(arch_id, module, train_seed, resume)

    def _scan(self) -> None:
        """Advance through the architectures until a group is ready (or none are left)."""
        while not self._ready and self._cursor < len(self.ids):
            arch_id = self.ids[self._cursor]
            self._cursor += 1
            if self.store.status(arch_id) in ("done", "diverged"):
                self.skipped.append(arch_id)
                self._event("skip", arch_id, aspects=self.store.aspects(arch_id))
                continue
            if not self.population:
                self._ready.append(Group([self.member(arch_id)], batched=False))
                continue
            m = self.member(arch_id)
            layout = member_layout(m.module)
            if isinstance(layout, str) or (self.only_when_faster and not batching_pays(layout, self.device)):
                self._alone.append(arch_id)
                continue
            key = (layout.signature, m.resume.epoch if m.resume else 0)
            bucket = self._buckets.setdefault(key, [])
            bucket.append(m)
            if len(bucket) == self.group_size:
                self._ready.append(self._population(self._buckets.pop(key)))
        if not self._ready and self._cursor >= len(self.ids):
            if self._buckets:
                self._ready.append(self._population(self._buckets.pop(next(iter(self._buckets)))))
            elif self._alone:
                self._ready.append(Group([self.member(self._alone.pop(0))], batched=False))

    def _population(self, members: list[Member]) -> Group:
        return Group(members, batched=True, eval_members=self.group_size)

    def take(self) -> Optional[Group]:
        """The next group to train, its members marked running in the store (and reported
        as starting or resuming); None when every architecture is finished or handed out."""
        self._scan()
        if not self._ready:
            return None
        group = self._ready.popleft()
        for m in group.members:
            self.store.start(m.arch_id)  # drops any epoch the checkpoint does not cover
            m.history = self.store.epochs(m.arch_id) if m.resume is not None else []
            if m.resume is not None:
                self._event("resume", m.arch_id, epoch=m.resume.epoch)
            else:
                self._event("start", m.arch_id)
        return group

    def retry(self, arch_ids: Sequence[str], batched: bool) -> None:
        """Plan unfinished ``arch_ids`` again from the store, first in line."""
        members = [self.member(a) for a in arch_ids]
        if not batched:
            self._ready.extendleft(Group([m], batched=False) for m in reversed(members))
            return
        by_epoch: dict[int, list[Member]] = {}
        for m in members:
            by_epoch.setdefault(m.resume.epoch if m.resume else 0, []).append(m)
        self._ready.extendleft(self._population(ms) for ms in reversed(list(by_epoch.values())))


# ---------------------------------------------------------------------------------------
# executors


class Executor(Protocol):
    """Trains the groups a :class:`Plan` hands out and passes back their events.

    ``prepare`` runs before the results store is opened (connect, check resources: a bad
    setting must not leave a database behind); ``run`` calls ``plan.take()`` whenever it
    can train another group, ``handle(group, event)`` for every event (in order per
    architecture), and ``failed(group, error)`` when a group could not finish (the driver
    decides whether to retry); ``close`` releases what ``prepare`` took."""

    name: str

    def prepare(self, config: TrainConfig) -> None: ...

    def run(self, plan: Plan, dataset: tuple[Dataset, Dataset], config: TrainConfig, checkpoint_every: int,
            handle: Callable[[Group, Event], None], failed: Callable[[Group, BaseException], None]) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """One group after another, in this process. A failure is a bug or a user's
    interruption, not a lost worker: it propagates."""

    name = "local"

    def __init__(self, train_fn: ArchTrainer = train):
        self.train_fn = train_fn

    def prepare(self, config: TrainConfig) -> None:
        return None

    def run(self, plan: Plan, dataset: tuple[Dataset, Dataset], config: TrainConfig, checkpoint_every: int,
            handle: Callable[[Group, Event], None], failed: Callable[[Group, BaseException], None]) -> None:
        while (group := plan.take()) is not None:
            emit: Callable[[Event], None] = functools.partial(handle, group)
            train_group(group, dataset, config, checkpoint_every, emit, self.train_fn)

    def close(self) -> None:
        return None


# ---------------------------------------------------------------------------------------
# the driver


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


def _describe(error: BaseException) -> str:
    """One line for an executor's error: the remote exception itself, not the executor's
    wrapping of it (Ray's carries the remote traceback)."""
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


def _sweep_ids(items: Iterable[Union[str, tuple]], checkpoint_every: int, group_size: int) -> list[str]:
    """The architecture ids of a sweep's ``items``, its settings checked."""
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    ids = [_arch_id(item) for item in items]
    duplicates = sorted(a for a, n in collections.Counter(ids).items() if n > 1)
    if duplicates:
        raise ValueError(f"architecture ids must be unique; repeated: {', '.join(duplicates)}")
    return ids


def run_training(
    items: Iterable[Union[str, tuple]],
    build_module: Callable[[str, int], nn.Module],
    dataset: tuple[Dataset, Dataset],
    config: TrainConfig,
    store: ResultStore,
    progress: Optional[Callable[[SweepEvent], None]] = None,
    *,
    executor: Optional[Executor] = None,
    population: bool = False,
    group_size: int = 64,
    only_when_faster: bool = False,
    checkpoint_every: int = 1,
    max_retries: int = 2,
) -> SweepSummary:
    """Train every architecture in ``items`` that ``store`` does not hold finished, with
    ``executor`` (default: :class:`LocalExecutor`), recording into ``store``.

    ``items``: architecture ids, or tuples whose first element is the id.
    ``build_module(arch_id, seed)``: a fresh module whose initial weights depend only on
    ``seed``. ``population``: train the population family in groups of ``group_size``
    (``only_when_faster``: only networks for which batching pays on this device).
    ``progress``: a callable receiving :class:`SweepEvent`s (``nflc verify`` shows them
    with :func:`nflc.cli_progress.sweep_progress`). A group whose executor fails is planned again from its
    members' last checkpoints, at most ``max_retries`` times per architecture.
    """
    ids = _sweep_ids(items, checkpoint_every, group_size)
    _check_config_in_store(store, config)
    store.register(ids)
    report: Callable[[SweepEvent], None] = progress if progress is not None else (lambda event: None)
    executor = executor or LocalExecutor()
    plan = Plan(ids, build_module, store, config, report, population=population, group_size=group_size,
                only_when_faster=only_when_faster)
    pending: dict[str, list[EpochRecord]] = {}
    trained: list[str] = []
    stopped: dict[str, StopReason] = {}
    batched: set[str] = set()
    failures: collections.Counter[str] = collections.Counter()
    retried = 0

    def event(kind: Any, arch_id: str, **kw: Any) -> None:
        report(SweepEvent(kind, arch_id=arch_id, index=plan.position[arch_id], total=len(ids), **kw))

    def handle(group: Group, ev: Event) -> None:
        if isinstance(ev, EpochDone):
            records = pending.setdefault(ev.arch_id, [])
            records.append(ev.record)
            if ev.checkpoint is not None:
                store.save_progress(ev.arch_id, records, ev.record.epoch, ev.checkpoint)
                records.clear()
            event("epoch", ev.arch_id, epoch=ev.record.epoch, record=ev.record)
        else:
            store.finish(ev.arch_id, pending.pop(ev.arch_id, []), ev.aspects, keep_final=config.plateau is None)
            trained.append(ev.arch_id)
            stopped[ev.arch_id] = ev.stopped
            if group.batched:
                batched.add(ev.arch_id)
            event("finish", ev.arch_id, epoch=ev.aspects.epochs, aspects=ev.aspects)

    def failed(group: Group, error: BaseException) -> None:
        nonlocal retried
        unfinished = [a for a in group.ids if store.status(a) not in ("done", "diverged")]
        for a in unfinished:
            pending.pop(a, None)  # not covered by a checkpoint: trained again after it
            failures[a] += 1
            if failures[a] > max_retries:
                raise NflcError(f"training architecture {a!r} failed {failures[a]} times; last error: {_describe(error)}",
                                hint="rerun the same command to resume from its last checkpoint") from error
        retried += 1
        plan.retry(unfinished, group.batched)

    executor.run(plan, dataset, config, checkpoint_every, handle, failed)

    results = store.results()
    in_sweep = {a: results[a] for a in ids if a in results}
    return SweepSummary(trained=trained, skipped=plan.skipped,
                        diverged=[a for a, asp in in_sweep.items() if asp.diverged], results=in_sweep,
                        batched=[a for a in trained if a in batched], alone=[a for a in trained if a not in batched],
                        retried=retried, stopped=stopped)

