"""Train architectures one after another into a :class:`ResultStore`: the one-at-a-time
way of :func:`nflc.verify.driver.run_training` (which owns skipping finished
architectures, resuming interrupted ones and recording).

Initial weights are seeded from ``(config.seed, arch_id)`` through sha256, minibatch order
from ``config.seed`` alone (every architecture sees the same order,
:func:`nflc.verify.protocol.arch_seeds`), so an architecture gets the same numbers
whatever its position in the sweep and whichever process trains it; a resumed sweep
therefore repeats an uninterrupted one exactly (bit for bit on the CPU).
"""

from __future__ import annotations

from typing import Callable, Iterable, Union

from torch import nn

from nflc.data import Dataset
from nflc.verify.driver import ArchTrainer, LocalExecutor, SweepEvent, SweepSummary, run_training
from nflc.verify.protocol import arch_seeds
from nflc.verify.store import ResultStore
from nflc.verify.train import TrainConfig, train

__all__ = ["ArchTrainer", "SweepEvent", "SweepSummary", "arch_seeds", "run_sweep"]


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
    """Train every architecture in ``items`` that ``store`` does not hold finished, one at
    a time in this process, with ``train_fn`` (default :func:`nflc.verify.train.train`).

    ``items``: architecture ids, or tuples whose first element is the id.
    ``build_module(arch_id, seed)`` returns a fresh module whose initial weights depend
    only on ``seed`` (called inside a forked torch RNG, so builders may seed globally).
    ``dataset``: ``(train, test)``. ``progress``: ``True`` for a rich progress bar on
    stderr, or a callable receiving :class:`SweepEvent`s. A checkpoint is written every
    ``checkpoint_every`` epochs; an interrupted architecture resumes from the last one.
    """
    return run_training(items, build_module, dataset, config, store, progress, executor=LocalExecutor(train_fn),
                        population=False, checkpoint_every=checkpoint_every)
