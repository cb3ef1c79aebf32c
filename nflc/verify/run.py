"""A verification session: train architectures of a space with the paper's protocol on a
seeded train/test split and record everything in a results database (its configuration
and the checks of its settings: :mod:`nflc.verify.config`).

:func:`verify` is what ``nflc verify`` calls. It

1. resolves the width (``width`` overrides the space's ``width`` constant: every module
   is compiled from ``space.lowered({"width": W})``, i.e. the spec re-lowered at that
   width, with the same seeded initialisation as ``arch.to_module``);
2. loads the dataset (optionally a class-stratified subsample of ``samples`` rows), splits
   it (stratified, seeded) and reshapes inputs to the space's input shape (a clear
   :class:`nflc.data.InputShapeError` when they do not fit);
3. opens the store under the spec hash and the whole :class:`VerifyConfig` (space name,
   width, data and training settings): a database of another spec or configuration is
   refused, the same one resumes; which architectures are trained is not part of the
   configuration, so a later run may add architectures to a database;
4. records, per architecture, its index, topology (P, mean depth, sum of depths) and
   parameter count in the database (``ResultStore.put_info``), so ``nflc report`` needs
   only the database;
5. trains through the sweep driver (:func:`nflc.verify.driver.run_training`): the
   MLP-cell family in populations where batching is faster on the device, everything else
   one at a time, in this process or on a Ray cluster (the ``executor``); an architecture
   gets the same seeds, and hence the same numbers, whichever way it is trained.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from pydantic import BaseModel, ConfigDict

from nflc.data import fit_space, load_dataset, train_test_split
from nflc.datafiles import fingerprint
from nflc.errors import NflcError, SettingError
from nflc.space import check_allocatable
from nflc.verify.config import DataConfig, VerifyConfig, check_device, check_run_options, solves_width, width_override
from nflc.verify.driver import SweepEvent, SweepSummary, run_training
from nflc.verify.store import ResultStore
from nflc.verify.train import resolve_device

if TYPE_CHECKING:
    import torch

    from nflc.data import Dataset
    from nflc.space import Architecture, Space

__all__ = [
    "VerifySummary",
    "arch_info",
    "chance_loss",
    "check_module_sizes",
    "load_split",
    "recorded_threads",
    "verify",
]


class VerifySummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    db: str
    architectures: int
    trained: list[str]
    skipped: list[str]
    diverged: list[str]
    converged: int  # trained in this call and stopped because the loss levelled off (until_converged)
    batched: int  # trained in this call in populations
    alone: int  # trained in this call one at a time
    train_size: int
    test_size: int
    seconds: float
    # (epochs before, epochs now, finished networks continued) when this call extended a fixed-epoch run
    extended: Optional[tuple[int, int, int]] = None


def chance_loss(labels: Any, classes: int) -> float:
    """Cross-entropy of the best constant prediction on ``labels``: the entropy (nats) of
    their class frequencies (ln C for balanced classes). A network whose training loss
    never falls clearly below it has not learned anything."""
    import torch  # torch: loaded only when a network is built or trained

    counts = torch.bincount(torch.as_tensor(labels), minlength=classes).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum()) if len(p) else math.nan


def _build_module(arch: Architecture, seed: int, width: Optional[int]) -> torch.nn.Module:
    """``arch``'s module at ``width`` (None: its own), initialised from ``seed``."""
    return arch.to_module(seed=seed, width=width)


def load_split(data: DataConfig, input_shape: Sequence[int], output_shape: Sequence[int] = (),
               space: str = "the space") -> tuple[Dataset, Dataset]:
    """(train, test) of ``data``, inputs reshaped to ``input_shape`` (labels checked
    against ``output_shape``)."""
    ds = load_dataset(data.dataset, seed=data.seed, n=data.samples)
    if data.sha256 is not None:
        if fingerprint(data.dataset) != data.sha256:
            raise SettingError(f"dataset {data.dataset} has changed since this run's configuration was made",
                               hint="a results database keeps the data file's SHA-256; use the same file or a new `db`")
    ds = fit_space(ds, input_shape, output_shape, space)  # InputShapeError: the data do not fit the space
    try:
        train, test = train_test_split(ds, test_fraction=data.test_fraction, seed=data.seed)
    except ValueError as exc:
        raise SettingError(f"cannot split {len(ds)} samples of '{data.dataset}': {exc}") from None
    # every class must be learnable, and the test loss must be measured on something
    classes = set(ds.y.tolist())
    missing = classes - set(train.y.tolist())
    if missing or len(test) == 0:
        what = (f"leaves {len(train)} training example(s) for the {len(classes)} classes of the sample "
                f"({len(missing)} without any)" if missing else "leaves no test example")
        raise SettingError(f"{len(ds)} samples of '{data.dataset}' at `test_fraction` {data.test_fraction:g} {what}",
                           hint="use more `samples` or a smaller `test_fraction` (every class needs a training "
                             "example, and the test set at least one example)")
    return train, test


def check_module_sizes(archs: Sequence, width: Optional[int]) -> None:
    """Refuse, before anything is allocated or written, architectures whose modules at
    ``width`` cannot fit in memory (the check ``arch.to_module`` makes, made for all of
    them up front: ``width=10**30`` must fail before the database is created)."""
    biggest, arch = max(((_params(a, width), a) for a in archs), key=lambda t: t[0])
    check_allocatable(biggest, f"#{arch.index} of space '{arch.space.name}'" + (f" at width {width}" if width else ""))


def _params(arch: Architecture, width: Optional[int]) -> int:
    resized = width_override(arch.space, width)
    return arch.cost(overrides={**arch.constants_override, **({"width": resized} if resized is not None else {})}).params


def arch_info(arch: Architecture, width: Optional[int]) -> dict:
    """What the report needs about an architecture, recorded at registration; ``width``
    as for :meth:`nflc.space.Architecture.to_module` (None or the space's own: the architecture's own width,
    which a budget-scaled space solves per architecture)."""
    from nflc.analysis.analyze import topology_summary  # lazy: loads scipy

    topo = topology_summary(arch)
    return {"index": arch.index, "paths": topo["paths"], "mean_depth": topo["mean_depth"],
            "sum_depth": topo["sum_depth"], "params": _params(arch, width)}


def recorded_threads(db: str | Path) -> Optional[int]:
    """The torch threads the run in ``db`` was created with (None: no such database, or one
    that did not record them). A resumed run trains with them unless told otherwise: on a
    CPU a conv network's sums depend on the thread count in the last bits, so a run that
    keeps its count resumes bit for bit."""
    try:
        if not Path(db).is_file():
            return None
    except OSError:  # a name too long, a loop of links: 'verify' itself names the problem
        return None
    try:
        with ResultStore.open_readonly(db) as store:
            n = store.info("run").get("run", {}).get("threads")
    except NflcError:  # not a results database: 'verify' itself says so
        return None
    return n if isinstance(n, int) and n >= 1 else None


def _train_into(db: str | Path, space: Space, archs: Sequence[Architecture], config: VerifyConfig,
                build: Callable[[Architecture, int], Any], train_set: Dataset, test_set: Dataset,
                progress: Optional[Callable[[SweepEvent], None]], executor: Any, population: Optional[bool],
                group_size: int, checkpoint_every: int, lock_timeout: float, spec_file: Optional[str],
                threads: Optional[int] = None) -> tuple[Any, SweepSummary]:
    """Open the results database, record what the report needs, and run the sweep driver."""
    by_id = {a.id: a for a in archs}
    with ResultStore.open(db, space.spec_hash, config, timeout=lock_timeout) as store:
        known = store.info("arch:")
        fresh = {f"arch:{a.id}": arch_info(a, config.width) for a in archs if f"arch:{a.id}" not in known}
        if "run" not in store.info("run"):
            fresh["run"] = {"space": space.name, "spec_file": spec_file, "spec_width": space.ir.constants.get("width"),
                            "width_solved": solves_width(space),
                            "chance_loss": chance_loss(train_set.y, train_set.classes),
                            **({"threads": threads} if threads is not None and executor is None else {})}
        if fresh:
            store.put_info(fresh)
        extended = store.extended
        return extended, run_training([a.id for a in archs], lambda arch_id, seed: build(by_id[arch_id], seed),
                            (train_set, test_set), config.train, store, progress, executor=executor,
                            population=population is not False, group_size=group_size,
                            only_when_faster=population is None, checkpoint_every=checkpoint_every)


def verify(space: Space, archs: Optional[Sequence], config: VerifyConfig, db: str | Path, *,
           progress: Optional[Callable] = None, population: Optional[bool] = None, group_size: Optional[int] = None,
           checkpoint_every: int = 1, lock_timeout: float = 30.0, spec_file: Optional[str] = None,
           executor: Any = None, threads: Optional[int] = None) -> VerifySummary:
    """Train ``archs`` (default: every architecture of ``space``) under ``config`` into the
    results database ``db``; finished architectures are skipped, interrupted ones resume.

    ``progress``: a callable receiving :class:`nflc.verify.driver.SweepEvent`s.
    ``population``: train the MLP-cell family batched (True), one at a time (False), or
    batched where that is faster (None: always on a GPU; on a CPU only small networks,
    :func:`nflc.verify.population.batching_pays`); the numbers are the same either way.
    ``group_size``: architectures per population (default: 1024 on CUDA, 64 on the CPU).
    ``executor``: what trains the groups (:class:`nflc.verify.driver.Executor`; default
    one after another in this process); it is prepared before the database is opened
    and closed at the end. ``threads``: the torch threads this process trains with,
    recorded when the database is created (:func:`recorded_threads`), because a conv
    network's numbers depend on them in the last bits.
    """
    t0 = time.perf_counter()
    check_run_options(group_size=group_size, checkpoint_every=checkpoint_every, lock_timeout=lock_timeout)
    check_device(config.train.device)
    archs = list(space if archs is None else archs)
    if not archs:
        raise SettingError(f"space '{space.name}' has no architecture to verify", hint="check `archs`")
    if config.space != space.name:
        raise SettingError(f"configuration is for space '{config.space}', not '{space.name}'")
    check_module_sizes(archs, config.width)  # before the database exists: a width no module fits is not stored
    train_set, test_set = load_split(config.data, space.ir.input_shape, space.ir.output_shape, f"space '{space.name}'")
    build = functools.partial(_build_module, width=config.width)
    by_id = {a.id: a for a in archs}
    if len(by_id) != len(archs):
        raise SettingError("`archs` names an architecture more than once")
    if group_size is None:
        group_size = 1024 if resolve_device(config.train.device).type == "cuda" else 64
    if executor is not None:
        executor.prepare(config.train)  # connect and check resources before anything is written
    try:
        extended, summary = _train_into(db, space, archs, config, build, train_set, test_set, progress, executor,
                                        population, group_size, checkpoint_every, lock_timeout, spec_file, threads)
    finally:
        if executor is not None:
            executor.close()

    batched = summary.batched
    converged = sum(summary.stopped[a] == "converged" for a in summary.trained) if config.train.plateau is not None else 0
    return VerifySummary(db=str(db), architectures=len(archs), trained=summary.trained, skipped=summary.skipped,
                         diverged=summary.diverged, converged=converged, batched=len(batched), alone=len(summary.trained) - len(batched),
                         train_size=len(train_set), test_size=len(test_set), seconds=time.perf_counter() - t0,
                         extended=extended)
