"""The training protocol's rules that every trainer shares (one network at a time, a
population, any executor): how seeds are derived, the optimiser, and when a run has
diverged. Keeping them in one place is what makes an architecture's numbers the same
whichever way it is trained.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["arch_seeds", "derive_seed", "diverged", "sgd", "sgd_state", "shuffle_generator", "stochastic_seed"]


def derive_seed(seed: int, *parts: object) -> int:
    """A stable 63-bit seed from ``seed`` and labels (e.g. an architecture id).

    sha256 of the joined text rather than ``hash()``, which is salted per process; 63 bits
    so the value fits torch's and numpy's seed ranges as a non-negative int64.
    """
    text = "\x1f".join([str(int(seed)), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def arch_seeds(seed: int, arch_id: str) -> tuple[int, int]:
    """(initial-weights seed, training seed) of one architecture: independent streams.

    The initial weights are the architecture's own; the training seed (minibatch order,
    stochastic layers) is the sweep's, shared by every architecture: architectures are
    compared on the same data order (common random numbers), so what differs between two
    runs is the architecture and its initialisation, not the luck of the shuffle. It also
    lets a population draw one minibatch for all its members.
    """
    return derive_seed(seed, "init", arch_id), derive_seed(seed, "train")


def shuffle_generator(seed: int) -> torch.Generator:
    """The CPU generator of a run's minibatch order (``seed``: its training seed)."""
    return torch.Generator(device="cpu").manual_seed(derive_seed(seed, "shuffle"))


def stochastic_seed(seed: int) -> int:
    """The seed of the global torch generator (dropout and other stochastic layers)."""
    return derive_seed(seed, "torch")


def sgd(params: Iterable[torch.Tensor], lr: float) -> torch.optim.SGD:
    """The paper's optimiser: plain SGD, constant rate, no momentum, no weight decay."""
    return torch.optim.SGD(params, lr=lr, momentum=0.0, weight_decay=0.0)


def sgd_state(module: nn.Module, lr: float) -> dict:
    """The optimiser state a checkpoint of ``module`` holds: plain SGD keeps no
    per-parameter state, so it never changes during training."""
    return sgd(module.parameters(), lr).state_dict()


def diverged(minibatches_finite: bool, train_loss: float, test_loss: float) -> bool:
    """A run has diverged after an epoch in which a minibatch loss or a full-pass loss was
    not finite; it stops there and has no expressivity or generalization."""
    return not (minibatches_finite and math.isfinite(train_loss) and math.isfinite(test_loss))
