"""When has training converged? The levelling-off criterion of ``--until-converged``.

The paper measures expressivity as the *converged* training loss. nflc calls a training
run converged after epoch ``t`` when its full-pass training loss has levelled off:

    mean(L[t-w+1 .. t])  >=  (1 - tol) * mean(L[t-2w+1 .. t-w])

i.e. the mean loss of the last ``w`` epochs is less than a fraction ``tol`` below the mean
of the ``w`` epochs before (``w`` = ``window``, needs ``t >= 2w``). Window means rather than
single epochs, because constant-rate SGD makes the per-epoch loss jitter: one lucky epoch
must not end a run that is still falling, nor one unlucky epoch keep a flat run going. A
loss that rises over the window (overfitting noise, a rate at the edge of stability) has
levelled off too.

The criterion is a pure function of the loss history, so a run resumed from a checkpoint
stops at the same epoch as an uninterrupted one, and ``nflc report`` can judge any stored
run (also one trained for a fixed number of epochs) by recomputing it.

What it does not catch: a loss falling like ``c / t`` (a network memorising its training
set with a vanishing margin) drops by about ``w / t`` per window, so it is declared
converged only after ``t ~ w / tol`` epochs. The criterion measures a *plateau*, which is
what a capacity-limited network (a small parameter budget on data it cannot memorise)
reaches; see docs/VERIFY.md for how the documented study is chosen.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_PLATEAU", "Plateau", "converged_at", "levelled_off", "window_drop"]


class Plateau(BaseModel):
    """The levelling-off criterion: relative drop of the window mean below ``tol``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(20, ge=1)  # epochs per window; the criterion needs 2 * window epochs
    tol: float = Field(0.01, gt=0.0, lt=1.0, allow_inf_nan=False)  # relative drop that counts as flat


#: The criterion ``nflc report`` judges fixed-length runs by, and ``--until-converged``'s default.
DEFAULT_PLATEAU = Plateau()


def window_drop(losses: Sequence[float], window: int) -> Optional[float]:
    """Relative drop ``(a - b) / a`` of the mean of the last ``window`` losses (``b``) below
    the mean of the ``window`` before (``a``); None with fewer than ``2 * window`` losses,
    a non-finite loss among them, or ``a <= 0``."""
    if window < 1 or len(losses) < 2 * window:
        return None
    recent = losses[len(losses) - 2 * window:]
    if not all(math.isfinite(v) for v in recent):
        return None
    # math.fsum: an exact sum, so the verdict does not depend on summation order
    before = math.fsum(recent[:window]) / window
    after = math.fsum(recent[window:]) / window
    if before <= 0:
        return None
    return (before - after) / before


def levelled_off(losses: Sequence[float], plateau: Plateau) -> bool:
    """Whether the loss history ``L[1..t]`` has levelled off at its last epoch ``t``."""
    drop = window_drop(losses, plateau.window)
    return drop is not None and drop < plateau.tol


def converged_at(losses: Sequence[float], plateau: Plateau) -> Optional[int]:
    """The first epoch (1-based) at which the history had levelled off, or None."""
    span = 2 * plateau.window
    for t in range(span, len(losses) + 1):
        if levelled_off(losses[t - span:t], plateau):  # only the last two windows count: no O(t) prefix copy
            return t
    return None
