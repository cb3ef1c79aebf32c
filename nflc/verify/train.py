"""The paper's training protocol for one torch module, and the aspects it measures.

Protocol (docs/THEORY.md section 5, the paper's appendix A): plain SGD with a constant
learning rate, no momentum, no weight decay, no augmentation, batch 128, cross-entropy.
After every epoch the whole train and test splits are evaluated in eval mode (one full
pass, not a running average of minibatch losses), giving one :class:`EpochRecord`.

Every random choice takes a seed: minibatch order comes from a private
``torch.Generator``; stochastic layers (dropout) draw from the global torch generator,
which training forks and seeds so it neither depends on nor disturbs the caller's. A
:class:`Checkpoint` holds everything that changes during training (weights, optimizer,
both generator states, epoch), so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Protocol, Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer
from torch import nn

from nflc.data import Dataset
from nflc.verify.plateau import StopRule, levelled_off, measure_window
from nflc.verify.protocol import derive_seed, diverged as _diverged, sgd, shuffle_generator, stochastic_seed

__all__ = [
    "Aspects",
    "Checkpoint",
    "CheckpointError",
    "EpochCallback",
    "EpochRecord",
    "TrainConfig",
    "StopReason",
    "TrainResult",
    "finished",
    "without_unset",
    "derive_seed",
    "evaluate",
    "measure",
    "resolve_device",
    "train",
]

EVAL_CHUNK = 4096  # rows per forward pass when evaluating; fixed so sums are reproducible


def without_unset(data: dict[str, Any], key: str) -> dict[str, Any]:
    """A model's serialised ``data`` without ``key`` when it is None: a field added later
    serialises as before it existed, so configurations stored by an older nflc still match."""
    if data.get(key) is None:
        data.pop(key, None)
    return data


class TrainConfig(BaseModel):
    """Everything that determines the numbers of a training run.

    ``plateau``: train until the training loss has converged by that stopping rule
    (:mod:`nflc.verify.plateau`), at most ``epochs`` epochs; None: exactly ``epochs``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(100, ge=1)
    lr: float = Field(0.1, gt=0.0, allow_inf_nan=False)
    batch: int = Field(128, ge=1)
    seed: int = Field(0, ge=0)
    device: str = "auto"
    threshold: float = Field(0.5, gt=0.0, le=1.0)  # training accuracy that counts as converged
    plateau: Optional[StopRule] = None

    @model_serializer(mode="wrap")
    def _drop_unset_plateau(self, handler: Any) -> dict[str, Any]:
        # A fixed-length run serialises as before the field existed, so the configuration
        # stored in an older results database still matches and resumes.
        return without_unset(handler(self), "plateau")

    def stops_after(self, history: Sequence["EpochRecord"]) -> bool:
        """Whether a finite run with this ``history`` is finished: ``epochs`` reached, or
        (with a stopping rule) its training loss has converged."""
        if len(history) >= self.epochs:
            return True
        if self.plateau is None or len(history) < self.plateau.first_epoch:
            return False
        return levelled_off([r.train_loss for r in history], self.plateau)

    @property
    def window(self) -> int:
        """Epochs whose mean losses are the measured aspects (:func:`~nflc.verify.plateau.measure_window`)."""
        return measure_window(self.plateau, self.epochs)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto":
            try:
                torch.device(value)
            except RuntimeError as exc:  # pydantic reports ValueErrors, not RuntimeErrors
                raise ValueError(f"unknown device {value!r}: {exc}") from exc
        return value


class EpochRecord(BaseModel):
    """Full-pass metrics after epoch ``epoch`` (1-based). Losses may be NaN/inf when the
    run diverged."""

    model_config = ConfigDict(frozen=True)

    epoch: int = Field(ge=1)
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float


class Aspects(BaseModel):
    """The three measured aspects of docs/THEORY.md section 5 for one trained architecture.

    - ``expressivity``: mean full-pass training loss over the run's last ``window``
      epochs (lower = more expressive); a window mean, because one epoch's loss under
      constant-rate SGD is that mean plus 10-40% noise.
    - ``convergence``: first epoch (1-based) whose training accuracy reached the
      threshold; ``None`` = never reached.
    - ``generalization``: mean of test loss minus train loss over the same epochs
      (smaller = better).

    A diverged run (a non-finite loss) has ``diverged=True`` and no expressivity or
    generalization (its final losses are not numbers); its convergence epoch is kept if
    the threshold was reached while the losses were still finite.
    """

    model_config = ConfigDict(frozen=True)

    expressivity: Optional[float]
    convergence: Optional[int]
    generalization: Optional[float]
    diverged: bool
    epochs: int = Field(ge=1)  # epochs actually run


def _finite(value: float) -> bool:
    return math.isfinite(value)


def measure(history: Sequence[EpochRecord], threshold: float, *, window: int, diverged: bool = False) -> Aspects:
    """The aspects of a run from its per-epoch history; losses are means over its last
    ``window`` epochs (all of them when it has fewer; :attr:`TrainConfig.window`).

    ``diverged`` forces the flag (the training loop sets it when a minibatch loss was not
    finite); the history alone also flags divergence when any recorded loss is NaN/inf.
    """
    if not history:
        raise ValueError("measure() needs at least one epoch of history")
    epochs = [r.epoch for r in history]
    if epochs != list(range(1, len(history) + 1)):
        raise ValueError(f"history must hold epochs 1..{len(history)} in order, got {epochs}")
    diverged = diverged or any(not (_finite(r.train_loss) and _finite(r.test_loss)) for r in history)
    # Accuracy from NaN logits is meaningless, so only finite epochs can show convergence.
    convergence = next(
        (r.epoch for r in history if _finite(r.train_loss) and r.train_acc >= threshold), None
    )
    if window < 1:
        raise ValueError(f"the measuring window must be at least 1 epoch, got {window}")
    if diverged:
        return Aspects(expressivity=None, convergence=convergence, generalization=None, diverged=True, epochs=len(history))
    tail = history[-window:]
    # math.fsum: exact sums, so the value does not depend on summation order
    return Aspects(
        expressivity=math.fsum(r.train_loss for r in tail) / len(tail),
        convergence=convergence,
        generalization=math.fsum(r.test_loss - r.train_loss for r in tail) / len(tail),
        diverged=False,
        epochs=len(history),
    )


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else as torch parses it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``module`` on all of ``(x, y)``, in eval mode.

    The module's train/eval mode is restored afterwards. Losses are summed in float64
    over fixed-size chunks so the result does not depend on memory or batch size.
    """
    was_training = module.training
    module.eval()
    try:
        loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
        correct = torch.zeros((), dtype=torch.int64, device=x.device)
        for start in range(0, len(y), EVAL_CHUNK):
            logits = module(x[start : start + EVAL_CHUNK])
            target = y[start : start + EVAL_CHUNK]
            loss_sum += F.cross_entropy(logits.double(), target, reduction="sum")
            correct += (logits.argmax(dim=1) == target).sum()
        n = max(len(y), 1)
        return float(loss_sum) / n, int(correct) / n
    finally:
        module.train(was_training)


@dataclass(frozen=True)
class Checkpoint:
    """Training state after ``epoch`` completed epochs (all tensors on the CPU)."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    shuffle_rng: torch.Tensor  # torch.Generator.get_state() of the minibatch sampler
    torch_rng: torch.Tensor  # global CPU generator (dropout and other stochastic layers)
    cuda_rng: Optional[torch.Tensor] = None  # global CUDA generator when training on cuda

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save(
            {
                "epoch": self.epoch,
                "model": self.model,
                "optimizer": self.optimizer,
                "shuffle_rng": self.shuffle_rng,
                "torch_rng": self.torch_rng,
                "cuda_rng": self.cuda_rng,
            },
            buf,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "Checkpoint":
        """The checkpoint :meth:`to_bytes` wrote; :class:`CheckpointError` for bytes that are
        not one (damaged, edited, or not torch's)."""
        try:
            # weights_only: a checkpoint is data; never unpickle arbitrary objects from a file.
            with warnings.catch_warnings():  # (torch warns about protocols before failing on foreign bytes)
                warnings.simplefilter("ignore")
                d = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            return cls(
                epoch=int(d["epoch"]),
                model=d["model"],
                optimizer=d["optimizer"],
                shuffle_rng=d["shuffle_rng"],
                torch_rng=d["torch_rng"],
                cuda_rng=d["cuda_rng"],
            )
        except Exception as exc:  # noqa: BLE001 - unpickling fails in many ways (pickle, zip, torch, key errors)
            raise CheckpointError(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None


class CheckpointError(ValueError):
    """Bytes that are not a checkpoint :meth:`Checkpoint.to_bytes` wrote."""


class EpochCallback(Protocol):
    def __call__(self, record: EpochRecord, snapshot: Optional[Callable[[], Checkpoint]]) -> None:
        """Called after each epoch. ``snapshot`` captures the state to resume from (after the
        last epoch too: the final state, from which a longer run continues); it is ``None``
        after an epoch whose losses diverged: nothing to resume."""


StopReason = Literal["epochs", "converged", "diverged"]


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    history: list[EpochRecord]
    aspects: Aspects
    # why training stopped: the loss stopped being finite ("diverged"), the stopping rule
    # found it levelled off ("converged", before the cap or exactly at it), or it ran its
    # ``epochs`` ("epochs")
    stopped: StopReason


def finished(history: list[EpochRecord], config: TrainConfig, diverged: bool) -> TrainResult:
    """The result of a finished run with this ``history`` (every epoch, resumed ones too)."""
    if diverged:
        stopped: StopReason = "diverged"
    elif len(history) < config.epochs or (
            config.plateau is not None and levelled_off([r.train_loss for r in history], config.plateau)):
        stopped = "converged"
    else:
        stopped = "epochs"
    return TrainResult(history=history, aspects=measure(history, config.threshold, window=config.window, diverged=diverged),
                       stopped=stopped)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def _train_epoch(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    generator: torch.Generator,
) -> bool:
    """One pass of SGD over a seeded permutation; False when any minibatch loss was not
    finite. The check is accumulated on the device and read once, so a GPU is not
    synchronized after every step."""
    module.train()
    order = torch.randperm(len(y), generator=generator).to(x.device)
    all_finite = torch.ones((), dtype=torch.bool, device=x.device)
    for start in range(0, len(y), batch):
        idx = order[start : start + batch]
        loss = F.cross_entropy(module(x[idx]), y[idx])
        all_finite &= torch.isfinite(loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return bool(all_finite)


def train(
    module: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    config: TrainConfig,
    *,
    seed: int,
    resume: Optional[Checkpoint] = None,
    history: Sequence[EpochRecord] = (),
    on_epoch: Optional[EpochCallback] = None,
) -> TrainResult:
    """Train ``module`` in place with the paper's protocol for ``config.epochs`` epochs
    (with ``config.plateau``: until the training loss levels off, at most that many).

    ``seed`` seeds minibatch order and stochastic layers (the module's initial weights are
    the caller's: build it from a seed). To resume, pass the ``Checkpoint`` and the
    ``history`` of its first ``resume.epoch`` epochs. Training stops early, flagged
    diverged, after the first epoch with a non-finite loss.
    """
    history = list(history)
    if resume is not None and len(history) != resume.epoch:
        raise ValueError(f"resuming after epoch {resume.epoch} needs {resume.epoch} epochs of history, got {len(history)}")
    if resume is None and history:
        raise ValueError("history without a checkpoint to resume from")
    device = resolve_device(config.device)
    module.to(device)
    x_train, y_train = train_set.x.to(device), train_set.y.to(device)
    x_test, y_test = test_set.x.to(device), test_set.y.to(device)
    optimizer = sgd(module.parameters(), config.lr)
    cuda_devices = [device] if device.type == "cuda" else []

    # fork_rng: seeding the global generator for dropout must not leak to the caller.
    with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
        shuffle = shuffle_generator(seed)
        if resume is None:
            torch.manual_seed(stochastic_seed(seed))
            start = 1
        else:
            module.load_state_dict(resume.model)
            optimizer.load_state_dict(resume.optimizer)
            shuffle.set_state(resume.shuffle_rng)
            torch.set_rng_state(resume.torch_rng)
            if cuda_devices and resume.cuda_rng is not None:
                torch.cuda.set_rng_state(resume.cuda_rng, device)
            start = resume.epoch + 1

        diverged = False
        for epoch in range(start, config.epochs + 1):
            finite = _train_epoch(module, optimizer, x_train, y_train, config.batch, shuffle)
            train_loss, train_acc = evaluate(module, x_train, y_train)
            test_loss, test_acc = evaluate(module, x_test, y_test)
            record = EpochRecord(
                epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc
            )
            history.append(record)
            diverged = _diverged(finite, train_loss, test_loss)
            last = diverged or config.stops_after(history)

            def snapshot(epoch: int = epoch) -> Checkpoint:
                return Checkpoint(
                    epoch=epoch,
                    model=_to_cpu(module.state_dict()),
                    optimizer=_to_cpu(optimizer.state_dict()),
                    shuffle_rng=shuffle.get_state(),
                    torch_rng=torch.get_rng_state(),
                    cuda_rng=torch.cuda.get_rng_state(device) if cuda_devices else None,
                )

            if on_epoch is not None:
                on_epoch(record, None if diverged else snapshot)  # the last epoch too: a final state to keep
            if last:
                break
    return finished(history, config, diverged)
