"""A verification run's configuration and its checks: what determines its numbers
(:class:`VerifyConfig`, stored in the results database), made from plain settings
(:func:`make_config`, :func:`stopping_rule`) and checked before anything is written.

A bad value raises :class:`nflc.errors.SettingError`, whose message names the setting in
backticks (`` `max_epochs` ``); the command line respells them as its flags
(``--max-epochs``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer

from nflc.data import DATASETS, dataset_size, default_dataset, load_dataset
from nflc.datafiles import fingerprint
from nflc.errors import SettingError
from nflc.limits import check_dataset_name, check_learning_rate, check_seed
from nflc.verify.plateau import Plateau, SlopeRule, StopRule
from nflc.verify.train import TrainConfig, without_unset

if TYPE_CHECKING:
    from nflc.space import Space

__all__ = [
    "DataConfig",
    "MAX_EPOCHS",
    "VerifyConfig",
    "check_device",
    "check_run_options",
    "make_config",
    "resolve_width",
    "solves_width",
    "stopping_rule",
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
    def _drop_unset_sha256(self, handler: Any) -> dict[str, Any]:
        # a shipped dataset serialises as before the field existed: older databases still resume
        return without_unset(handler(self), "sha256")


class VerifyConfig(BaseModel):
    """Everything that determines a verification run's numbers (stored in the database)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    space: str
    width: Optional[int]  # the width every architecture is built at (None: the space has no width constant)
    data: DataConfig
    train: TrainConfig


MAX_EPOCHS = 3000  # until_converged's default cap: the paper's training length


def stopping_rule(until_converged: bool, epochs: Optional[int], max_epochs: Optional[int],
                  window: Optional[int], tol: Optional[float], rule: Optional[str] = None,
                  min_epochs: Optional[int] = None) -> Optional[StopRule]:
    """The stopping rule of the command-line flags (None: a fixed number of epochs);
    contradictory or out-of-range flags raise :class:`NflcError`. ``rule``: ``slope`` (the
    default) or ``window`` (:mod:`nflc.verify.plateau`)."""
    if not until_converged:
        given = [name for name, v in (("`max_epochs`", max_epochs), ("`window`", window),
                                      ("`tol`", tol), ("`rule`", rule), ("`min_epochs`", min_epochs))
                 if v is not None]
        if given:
            raise SettingError(f"{', '.join(given)} only applies with `until_converged`",
                               hint="add `until_converged`, or use `epochs` E for a fixed length")
        return None
    if epochs is not None:
        raise SettingError("`until_converged` trains until the loss has converged; it cannot be combined with a fixed `epochs`",
                           hint="use `max_epochs` E to cap its length")
    rule = "slope" if rule is None else rule
    if rule not in ("slope", "window"):
        raise SettingError(f"`rule` must be slope or window, got {rule!r}",
                           hint="slope: a fitted log-loss slope (the default); window: two window means (nflc's earlier rule)")
    if min_epochs is not None and rule != "slope":
        raise SettingError("`min_epochs` applies to `rule` slope", hint="the window rule starts at twice its window")
    cap = MAX_EPOCHS if max_epochs is None else max_epochs
    if cap < 1:
        raise SettingError(f"`max_epochs` must be at least 1, got {cap}")
    least = 3 if rule == "slope" else 1
    if window is not None and window < least:
        raise SettingError(f"`window` must be at least {least} epochs, got {window}")
    if tol is not None and not (0 < tol < 1):
        raise SettingError(f"`tol` must be between 0 and 1 (a relative drop), got {tol:g}")
    if min_epochs is not None and min_epochs < 1:
        raise SettingError(f"`min_epochs` must be at least 1, got {min_epochs}")
    given_values = {k: v for k, v in (("window", window), ("tol", tol)) if v is not None}
    made: StopRule
    if rule == "slope":
        if min_epochs is not None and window is not None and min_epochs < window:
            raise SettingError(f"`min_epochs` {min_epochs} is shorter than `window` {window}",
                               hint="the slope is fitted over at least one window")
        default_window = SlopeRule.model_fields["window"].default
        if min_epochs is not None and window is None and min_epochs < default_window:
            raise SettingError(f"`min_epochs` {min_epochs} is shorter than the window ({default_window} epochs)",
                               hint="the slope is fitted over at least one window; lower `window` too")
        made = SlopeRule(**given_values, **({"min_epochs": min_epochs} if min_epochs is not None else {}))
    else:
        made = Plateau(**given_values)
    if made.first_epoch > cap:
        what = "`min_epochs`" if rule == "slope" and min_epochs is not None else "the rule"
        raise SettingError(f"{what} needs {made.first_epoch} epochs before it can stop a run, more than `max_epochs` {cap}",
                           hint=f"lower `window` (now {made.window}) or raise `max_epochs`")
    return made


def make_config(space: Space, *, dataset: Optional[str] = None, samples: Optional[int] = None, test_fraction: float = 0.2,
                width: Optional[int] = None, epochs: int = 100, lr: float = 0.1, batch: int = 128, seed: int = 0,
                device: str = "auto", threshold: float = 0.5, plateau: Optional[StopRule] = None) -> VerifyConfig:
    """A :class:`VerifyConfig` from command-line style settings; bad values raise
    :class:`NflcError` naming the setting. ``dataset``: a shipped dataset's name or a data
    file's path (default: the shipped dataset whose inputs fit the space,
    :func:`nflc.data.default_dataset`)."""
    # None means the default; an empty name is a mistake, never the default
    dataset = default_dataset(space.ir.input_shape) if dataset is None else check_dataset_name(dataset)
    if epochs < 1:
        raise SettingError(f"`epochs` must be at least 1, got {epochs}")
    check_learning_rate(lr)
    check_seed(seed)
    sha256 = None
    if dataset not in DATASETS:
        ds = load_dataset(dataset)  # a file (read and checked), or UnknownDatasetError with the valid names
        dataset, sha256 = ds.name, fingerprint(ds.name)  # its absolute path, and its contents
    size = dataset_size(dataset)
    if samples is not None and not 2 <= samples <= size:
        raise SettingError(f"`samples` {samples}: dataset '{dataset}' has {size} samples", hint=f"use 2 .. {size}")
    try:
        train = TrainConfig(epochs=epochs, lr=lr, batch=batch, seed=seed, device=device, threshold=threshold,
                            plateau=plateau)
        data = DataConfig(dataset=dataset, samples=samples, test_fraction=test_fraction, seed=seed, sha256=sha256)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SettingError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    check_device(train.device)
    return VerifyConfig(space=space.name, width=resolve_width(space, width), data=data, train=train)


def check_device(name: str) -> None:
    """Refuse a device this machine cannot train on (before it becomes part of a run's
    stored configuration): unparsable names, device types other than cpu/cuda/mps, and
    a CUDA index or MPS that is not there."""
    if name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise SettingError(f"`device` {name}: not a device ({exc})", hint="use auto, cpu, cuda or cuda:N") from None
    hint = "use `device` auto or cpu"
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingError(f"`device` {name}: CUDA is not available on this machine", hint=hint)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SettingError(f"`device` {name}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                               hint=f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
        return
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise SettingError(f"`device` {name}: Apple MPS is not available on this machine", hint=hint)
        return
    raise SettingError(f"`device` {name}: nflc trains on cpu, cuda or mps, not {dev.type}", hint=hint)


def check_run_options(*, group_size: Optional[int], checkpoint_every: int, lock_timeout: float) -> None:
    """Refuse nonsense sweep options before anything is written."""
    if group_size is not None and group_size < 1:
        raise SettingError(f"`group_size` must be at least 1, got {group_size}")
    if checkpoint_every < 1:
        raise SettingError(f"`checkpoint_every` must be at least 1 epoch, got {checkpoint_every}")
    if not lock_timeout >= 0:  # also NaN
        raise SettingError(f"`lock_timeout` must be 0 or more seconds, got {lock_timeout:g}")


def solves_width(space: Space) -> bool:
    """Whether the space solves each architecture's width from a budget ('scale width')."""
    return space.scale_budget is not None and space.scale_budget.scale == "width"


def width_override(space: Space, width: Optional[int]) -> Optional[int]:
    """``width`` when it differs from the space's own ``width`` constant, else None: the
    architecture's own width (the spec's, or solved per architecture for a budget)."""
    return None if width is None or width == space.ir.constants.get("width") else width


def resolve_width(space: Space, width: Optional[int]) -> Optional[int]:
    """The width architectures are built at: ``width`` when given (checked), else the
    space's ``width`` constant (None when it has none)."""
    constants = space.ir.constants
    if width is None:
        return constants.get("width")
    if "width" not in constants:
        raise SettingError(f"space '{space.name}' has no 'width' constant to override",
                           hint="drop `width`, or declare 'width N' in the space")
    if solves_width(space):
        raise SettingError(f"space '{space.name}' solves its width from a budget ('scale width'); `width` would override it",
                           hint="drop `width`")
    if width < 1:
        raise SettingError(f"`width` must be at least 1, got {width}")
    space.lowered({"width": width})  # a width the network cannot be built at raises a SemanticError here
    return width
