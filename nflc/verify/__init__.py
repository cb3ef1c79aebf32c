"""Verification: train architectures with the paper's protocol and measure what the
analyzers predict (expressivity, convergence, generalization), recording into SQLite."""

from nflc.verify.store import (
    ResultStore,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreBusyError,
    StoreMismatchError,
    canonical_json,
)
from nflc.verify.driver import ArchTrainer, LocalExecutor, SweepEvent, SweepSummary, run_training
from nflc.verify.protocol import arch_seeds
from nflc.verify.train import (
    Aspects,
    Checkpoint,
    EpochRecord,
    TrainConfig,
    TrainResult,
    derive_seed,
    evaluate,
    measure,
    resolve_device,
    train,
)

__all__ = [
    "ArchTrainer",
    "Aspects",
    "Checkpoint",
    "EpochRecord",
    "ResultStore",
    "StoreBusyError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreMismatchError",
    "LocalExecutor",
    "SweepEvent",
    "SweepSummary",
    "TrainConfig",
    "TrainResult",
    "arch_seeds",
    "canonical_json",
    "derive_seed",
    "evaluate",
    "measure",
    "resolve_device",
    "run_training",
    "train",
]
