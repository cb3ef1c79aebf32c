"""A verification run: train architectures of a space with the paper's protocol on a
seeded train/test split and record everything in a results database.

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
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer

from nflc.errors import NflcError
from nflc.verify.plateau import Plateau, SlopeRule, StopRule
from nflc.verify.train import TrainConfig
from nflc.data import DATASETS, dataset_size, default_dataset, load_dataset
from nflc.limits import check_dataset_name, check_learning_rate, check_seed
from nflc.datafiles import fingerprint
from nflc.data import fit_space, train_test_split
from nflc.space import check_allocatable
from nflc.verify.store import ResultStore
from nflc.verify.driver import run_training
from nflc.verify.train import resolve_device

__all__ = [
    "DataConfig",
    "MAX_EPOCHS",
    "VerifyConfig",
    "VerifySummary",
    "arch_info",
    "chance_loss",
    "check_device",
    "check_module_sizes",
    "check_run_options",
    "load_split",
    "make_config",
    "recorded_threads",
    "resolve_width",
    "solves_width",
    "stopping_rule",
    "verify",
    "width_override",
]


class DataConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = "mnist5k"  # a shipped dataset's name, or a data file's absolute path
    samples: Optional[int] = Field(None, ge=2)  # None: the whole dataset
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = Field(0, ge=0)  # subsample and split
    sha256: Optional[str] = None  # a data file's contents (nflc.datafiles.fingerprint); None: a shipped dataset

    @model_serializer(mode="wrap")
    def _drop_unset_sha256(self, handler):
        # a shipped dataset serialises as before the field existed: older databases still resume
        data = handler(self)
        if data.get("sha256") is None:
            data.pop("sha256", None)
        return data


class VerifyConfig(BaseModel):
    """Everything that determines a verification run's numbers (stored in the database)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    space: str
    width: Optional[int]  # the width every architecture is built at (None: the space has no width constant)
    data: DataConfig
    train: TrainConfig


class VerifySummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    db: str
    architectures: int
    trained: list[str]
    skipped: list[str]
    diverged: list[str]
    converged: int  # trained in this call and stopped because the loss levelled off (--until-converged)
    batched: int  # trained in this call in populations
    alone: int  # trained in this call one at a time
    train_size: int
    test_size: int
    seconds: float
    # (epochs before, epochs now, finished networks continued) when this call extended a fixed-epoch run
    extended: Optional[tuple[int, int, int]] = None


MAX_EPOCHS = 3000  # --until-converged's default cap: the paper's training length


def stopping_rule(until_converged: bool, epochs: Optional[int], max_epochs: Optional[int],
                  window: Optional[int], tol: Optional[float], rule: Optional[str] = None,
                  min_epochs: Optional[int] = None) -> Optional[StopRule]:
    """The stopping rule of the command-line flags (None: a fixed number of epochs);
    contradictory or out-of-range flags raise :class:`NflcError`. ``rule``: ``slope`` (the
    default) or ``window`` (:mod:`nflc.verify.plateau`)."""
    if not until_converged:
        given = [name for name, v in (("--max-epochs", max_epochs), ("--plateau-window", window),
                                      ("--plateau-tol", tol), ("--stop-rule", rule), ("--min-epochs", min_epochs))
                 if v is not None]
        if given:
            raise NflcError(f"{', '.join(given)} only applies with --until-converged",
                            hint="add --until-converged, or use --epochs E for a fixed length")
        return None
    if epochs is not None:
        raise NflcError("--until-converged trains until the loss has converged; it cannot be combined with a fixed --epochs",
                        hint="use --max-epochs E to cap its length")
    rule = "slope" if rule is None else rule
    if rule not in ("slope", "window"):
        raise NflcError(f"--stop-rule must be slope or window, got {rule!r}",
                        hint="slope: a fitted log-loss slope (the default); window: two window means (nflc's earlier rule)")
    if min_epochs is not None and rule != "slope":
        raise NflcError("--min-epochs applies to --stop-rule slope", hint="the window rule starts at twice its window")
    cap = MAX_EPOCHS if max_epochs is None else max_epochs
    if cap < 1:
        raise NflcError(f"--max-epochs must be at least 1, got {cap}")
    least = 3 if rule == "slope" else 1
    if window is not None and window < least:
        raise NflcError(f"--plateau-window must be at least {least} epochs, got {window}")
    if tol is not None and not (0 < tol < 1):
        raise NflcError(f"--plateau-tol must be between 0 and 1 (a relative drop), got {tol:g}")
    if min_epochs is not None and min_epochs < 1:
        raise NflcError(f"--min-epochs must be at least 1, got {min_epochs}")
    given_values = {k: v for k, v in (("window", window), ("tol", tol)) if v is not None}
    made: StopRule
    if rule == "slope":
        if min_epochs is not None and window is not None and min_epochs < window:
            raise NflcError(f"--min-epochs {min_epochs} is shorter than --plateau-window {window}",
                            hint="the slope is fitted over at least one window")
        default_window = SlopeRule.model_fields["window"].default
        if min_epochs is not None and window is None and min_epochs < default_window:
            raise NflcError(f"--min-epochs {min_epochs} is shorter than the window ({default_window} epochs)",
                            hint="the slope is fitted over at least one window; lower --plateau-window too")
        made = SlopeRule(**given_values, **({"min_epochs": min_epochs} if min_epochs is not None else {}))
    else:
        made = Plateau(**given_values)
    if made.first_epoch > cap:
        what = "--min-epochs" if rule == "slope" and min_epochs is not None else "the rule"
        raise NflcError(f"{what} needs {made.first_epoch} epochs before it can stop a run, more than --max-epochs {cap}",
                        hint=f"lower --plateau-window (now {made.window}) or raise --max-epochs")
    return made


def make_config(space, *, dataset: Optional[str] = None, samples: Optional[int] = None, test_fraction: float = 0.2,
                width: Optional[int] = None, epochs: int = 100, lr: float = 0.1, batch: int = 128, seed: int = 0,
                device: str = "auto", threshold: float = 0.5, plateau: Optional[StopRule] = None) -> VerifyConfig:
    """A :class:`VerifyConfig` from command-line style settings; bad values raise
    :class:`NflcError` naming the setting. ``dataset``: a shipped dataset's name or a data
    file's path (default: the shipped dataset whose inputs fit the space,
    :func:`nflc.data.default_dataset`)."""
    # None means the default; an empty name is a mistake, never the default
    dataset = default_dataset(space.ir.input_shape) if dataset is None else check_dataset_name(dataset)
    if epochs < 1:
        raise NflcError(f"--epochs must be at least 1, got {epochs}")
    check_learning_rate(lr)
    check_seed(seed)
    sha256 = None
    if dataset not in DATASETS:
        ds = load_dataset(dataset)  # a file (read and checked), or UnknownDatasetError with the valid names
        dataset, sha256 = ds.name, fingerprint(ds.name)  # its absolute path, and its contents
    size = dataset_size(dataset)
    if samples is not None and not 2 <= samples <= size:
        raise NflcError(f"--samples {samples}: dataset '{dataset}' has {size} samples", hint=f"use 2 .. {size}")
    try:
        train = TrainConfig(epochs=epochs, lr=lr, batch=batch, seed=seed, device=device, threshold=threshold,
                            plateau=plateau)
        data = DataConfig(dataset=dataset, samples=samples, test_fraction=test_fraction, seed=seed, sha256=sha256)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise NflcError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    check_device(train.device)
    return VerifyConfig(space=space.name, width=resolve_width(space, width), data=data, train=train)


def check_device(name: str) -> None:
    """Refuse a device this machine cannot train on (before it becomes part of a run's
    stored configuration): unparsable names, device types other than cpu/cuda/mps, and
    a CUDA index or MPS that is not there."""
    if name == "auto":
        return
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise NflcError(f"--device {name}: not a device ({exc})", hint="use auto, cpu, cuda or cuda:N") from None
    hint = "use --device auto or cpu"
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NflcError(f"--device {name}: CUDA is not available on this machine", hint=hint)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NflcError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                            hint=f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
        return
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise NflcError(f"--device {name}: Apple MPS is not available on this machine", hint=hint)
        return
    raise NflcError(f"--device {name}: nflc trains on cpu, cuda or mps, not {dev.type}", hint=hint)


def check_run_options(*, group_size: Optional[int], checkpoint_every: int, lock_timeout: float) -> None:
    """Refuse nonsense sweep options before anything is written."""
    if group_size is not None and group_size < 1:
        raise NflcError(f"--group-size must be at least 1, got {group_size}")
    if checkpoint_every < 1:
        raise NflcError(f"--checkpoint-every must be at least 1 epoch, got {checkpoint_every}")
    if not lock_timeout >= 0:  # also NaN
        raise NflcError(f"--lock-timeout must be 0 or more seconds, got {lock_timeout:g}")


def chance_loss(labels, classes: int) -> float:
    """Cross-entropy of the best constant prediction on ``labels``: the entropy (nats) of
    their class frequencies (ln C for balanced classes). A network whose training loss
    never falls clearly below it has not learned anything."""
    import math

    import torch

    counts = torch.bincount(torch.as_tensor(labels), minlength=classes).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum()) if len(p) else math.nan


def solves_width(space) -> bool:
    """Whether the space solves each architecture's width from a budget ('scale width')."""
    return space.scale_budget is not None and space.scale_budget.scale == "width"


def width_override(space, width: Optional[int]) -> Optional[int]:
    """``width`` when it differs from the space's own ``width`` constant, else None: the
    architecture's own width (the spec's, or solved per architecture for a budget)."""
    return None if width is None or width == space.ir.constants.get("width") else width


def resolve_width(space, width: Optional[int]) -> Optional[int]:
    """The width architectures are built at: ``width`` when given (checked), else the
    space's ``width`` constant (None when it has none)."""
    constants = space.ir.constants
    if width is None:
        return constants.get("width")
    if "width" not in constants:
        raise NflcError(f"space '{space.name}' has no 'width' constant to override",
                        hint="drop --width, or declare 'width N' in the space")
    if solves_width(space):
        raise NflcError(f"space '{space.name}' solves its width from a budget ('scale width'); --width would override it",
                        hint="drop --width")
    if width < 1:
        raise NflcError(f"--width must be at least 1, got {width}")
    space.lowered({"width": width})  # a width the network cannot be built at raises a SemanticError here
    return width


def _build_module(arch, seed: int, width: Optional[int]):
    """``arch``'s module at ``width`` (None: its own), initialised from ``seed``."""
    return arch.to_module(seed=seed, width=width)


def load_split(data: DataConfig, input_shape: Sequence[int], output_shape: Sequence[int] = (), space: str = "the space"):
    """(train, test) of ``data``, inputs reshaped to ``input_shape`` (labels checked
    against ``output_shape``)."""
    ds = load_dataset(data.dataset, seed=data.seed, n=data.samples)
    if data.sha256 is not None:
        if fingerprint(data.dataset) != data.sha256:
            raise NflcError(f"dataset {data.dataset} has changed since this run's configuration was made",
                            hint="a results database keeps the data file's SHA-256; use the same file or a new --db")
    ds = fit_space(ds, input_shape, output_shape, space)  # InputShapeError: the data do not fit the space
    try:
        train, test = train_test_split(ds, test_fraction=data.test_fraction, seed=data.seed)
    except ValueError as exc:
        raise NflcError(f"cannot split {len(ds)} samples of '{data.dataset}': {exc}") from None
    # every class must be learnable, and the test loss must be measured on something
    classes = set(ds.y.tolist())
    missing = classes - set(train.y.tolist())
    if missing or len(test) == 0:
        what = (f"leaves {len(train)} training example(s) for the {len(classes)} classes of the sample "
                f"({len(missing)} without any)" if missing else "leaves no test example")
        raise NflcError(f"{len(ds)} samples of '{data.dataset}' at --test-fraction {data.test_fraction:g} {what}",
                        hint="use more --samples or a smaller --test-fraction (every class needs a training "
                             "example, and the test set at least one example)")
    return train, test


def check_module_sizes(archs: Sequence, width: Optional[int]) -> None:
    """Refuse, before anything is allocated or written, architectures whose modules at
    ``width`` cannot fit in memory (the check ``arch.to_module`` makes, made for all of
    them up front: ``--width 10**30`` must fail before the database is created)."""
    biggest, arch = max(((_params(a, width), a) for a in archs), key=lambda t: t[0])
    check_allocatable(biggest, f"#{arch.index} of space '{arch.space.name}'" + (f" at width {width}" if width else ""))


def _params(arch, width: Optional[int]) -> int:
    resized = width_override(arch.space, width)
    return arch.cost(overrides={**arch.constants_override, **({"width": resized} if resized is not None else {})}).params


def arch_info(arch, width: Optional[int]) -> dict:
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
    if not Path(db).is_file():
        return None
    try:
        with ResultStore.open_readonly(db) as store:
            n = store.info("run").get("run", {}).get("threads")
    except NflcError:  # not a results database: 'verify' itself says so
        return None
    return n if isinstance(n, int) and n >= 1 else None


def _train_into(db, space, archs, config: VerifyConfig, build, train_set, test_set, progress, executor, population,
                group_size: int, checkpoint_every: int, lock_timeout: float, spec_file: Optional[str],
                threads: Optional[int] = None):
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


def verify(space, archs: Optional[Sequence], config: VerifyConfig, db: str | Path, *,
           progress: Optional[Callable] = None, population: Optional[bool] = None, group_size: Optional[int] = None,
           checkpoint_every: int = 1, lock_timeout: float = 30.0, spec_file: Optional[str] = None,
           executor=None, threads: Optional[int] = None) -> VerifySummary:
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
        raise NflcError(f"space '{space.name}' has no architecture to verify", hint="check --archs")
    if config.space != space.name:
        raise NflcError(f"configuration is for space '{config.space}', not '{space.name}'")
    check_module_sizes(archs, config.width)  # before the database exists: a width no module fits is not stored
    train_set, test_set = load_split(config.data, space.ir.input_shape, space.ir.output_shape, f"space '{space.name}'")
    build = functools.partial(_build_module, width=config.width)
    by_id = {a.id: a for a in archs}
    if len(by_id) != len(archs):
        raise NflcError("--archs names an architecture more than once")
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
