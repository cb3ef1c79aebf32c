"""Verification: train architectures with the paper's protocol and measure what the
analyzers predict (expressivity, convergence, generalization), recording into SQLite."""

from nflc.verify.store import (
    ResultStore,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreMismatchError,
    canonical_json,
)
from nflc.verify.sweep import ArchTrainer, StoreRecorder, SweepEvent, SweepSummary, arch_seeds, run_sweep
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
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreMismatchError",
    "StoreRecorder",
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
    "run_sweep",
    "train",
]
