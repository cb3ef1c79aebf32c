"""When has training converged? The stopping rules of ``--until-converged``.

The paper measures expressivity as the *converged* training loss. Constant-rate SGD makes
the per-epoch loss jitter (a single epoch's full-pass loss differs from the mean of its
neighbours by 10-40% late in training), so a rule that compares two short window means
fires on that noise while the loss is still falling by several percent per window. nflc's
default rule asks a question noise cannot answer by luck:

**The slope rule** (:class:`SlopeRule`, the default). At epoch ``t >= min_epochs`` fit a
straight line ``log L(e) = a + b e`` by least squares to the last ``n = max(window, t // 2)``
epochs (half the run: the longer the run, the longer the fit, so a flat curve's slope is
known ever more precisely), with standard error ``se(b)`` from the residuals, widened by
their lag-1 autocorrelation (epoch-to-epoch SGD noise is correlated). The
predicted relative decrease over the next ``window`` epochs, taken at the pessimistic end
of the slope's interval, is

    D = 1 - exp((b - z se(b)) window),        z = 2.5

and training has converged when ``D < tol``: even the steepest descent the data allow
would lower the loss by less than ``tol`` over another window. Properties (tested in
``tests/verify/test_plateau.py``):

* a loss that still falls does not stop early: on a power law ``A t^-a`` or a decay to a
  floor ``c + A exp(-k t)`` the fitted slope over ``[t - n, t]`` is steeper than the slope
  at ``t`` (the descent slows down), so without noise ``D`` is at least the true decrease
  over the next window, and noise only widens ``z se(b)``;
* a flat noisy curve stops: ``se(b)`` shrinks like ``n^-1.5`` as the fit grows;
* a rising loss (overfitting noise, a rate at the edge of stability) has ``b > 0``: it
  stops as soon as the interval allows;
* the loss after interpolation, falling like ``1 / t`` forever, stops only at
  ``t ~ 1.4 window / tol``: such a run has not converged, and the report says how fast it
  still falls (:func:`log_slope`).

**The window rule** (:class:`Plateau`, nflc's earlier rule, kept so older databases resume
and report as they were written): converged after epoch ``t`` when
``mean(L[t-w+1 .. t]) >= (1 - tol) mean(L[t-2w+1 .. t-w])``.

Both rules are pure functions of the loss history, so a run resumed from a checkpoint, a
member of a batched population and a lone run stop at the same epoch, and ``nflc report``
judges any stored run (also one trained for a fixed number of epochs) by recomputing them.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional, Sequence, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

__all__ = [
    "DEFAULT_RULE",
    "LogSlope",
    "Plateau",
    "SLOPE_Z",
    "SlopeRule",
    "StopRule",
    "converged_at",
    "levelled_off",
    "log_slope",
    "measure_window",
    "predicted_decrease",
    "window_drop",
]

SLOPE_Z = 2.5  # standard errors added to the slope's steepness before judging it flat
# A fit over fewer epochs cannot tell correlated SGD noise from a trend (its autocorrelation
# estimate is biased low): the default first epoch fits at least 50 epochs.
MIN_FIT_EPOCHS = 100
LOSS_FLOOR = 1e-300  # log of a loss that underflowed to 0: it cannot fall any further


class Plateau(BaseModel):
    """The window rule: relative drop of the ``window``-epoch mean loss below ``tol``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(20, ge=1)  # epochs per window; the criterion needs 2 * window epochs
    tol: float = Field(0.01, gt=0.0, lt=1.0, allow_inf_nan=False)  # relative drop that counts as flat

    @property
    def first_epoch(self) -> int:
        """The first epoch at which the rule can be judged."""
        return 2 * self.window

    def stops(self, losses: Sequence[float]) -> bool:
        drop = window_drop(losses, self.window)
        return drop is not None and drop < self.tol

    def describe(self) -> str:
        return (f"the mean training loss of the last {self.window} epochs within {100 * self.tol:g}% of the "
                f"{self.window} before")


class SlopeRule(BaseModel):
    """The slope rule: the predicted relative decrease of the loss over the next ``window``
    epochs, from a least-squares fit of log(loss) over the last ``max(window, t // 2)``
    epochs at ``z = 2.5`` standard errors, below ``tol``; judged from ``min_epochs`` on
    (default: twice the window, at least 100 epochs, so the first fit has 50)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: Literal["slope"] = "slope"
    window: int = Field(50, ge=3)  # the horizon of the predicted decrease and the shortest fit
    tol: float = Field(0.01, gt=0.0, lt=1.0, allow_inf_nan=False)
    min_epochs: int = Field(0, ge=0)  # 0: twice the window, at least MIN_FIT_EPOCHS

    @model_validator(mode="after")
    def _min_epochs(self) -> "SlopeRule":
        if self.min_epochs == 0:
            object.__setattr__(self, "min_epochs", max(2 * self.window, MIN_FIT_EPOCHS))
        if self.min_epochs < self.window:
            raise ValueError(f"min_epochs ({self.min_epochs}) must be at least the window ({self.window})")
        return self

    @property
    def first_epoch(self) -> int:
        return self.min_epochs

    def stops(self, losses: Sequence[float]) -> bool:
        if len(losses) < self.min_epochs:
            return False
        decrease = predicted_decrease(losses, self.window)
        return decrease is not None and decrease < self.tol

    def describe(self) -> str:
        return (f"the loss predicted to fall less than {100 * self.tol:g}% over the next {self.window} epochs "
                f"(log-loss slope over the last half of the run, {SLOPE_Z:g} standard errors steeper), from epoch "
                f"{self.min_epochs} on")


def _rule_tag(value: Any) -> str:
    # A stored criterion without a "rule" key was written by the window rule (before the
    # slope rule existed): that is how older databases keep resuming with their own rule.
    rule = value.get("rule") if isinstance(value, dict) else getattr(value, "rule", None)
    return "slope" if rule == "slope" else "window"


StopRule = Annotated[Union[Annotated[SlopeRule, Tag("slope")], Annotated[Plateau, Tag("window")]],
                     Discriminator(_rule_tag)]

#: The rule ``nflc report`` judges fixed-length runs by, and ``--until-converged``'s default.
DEFAULT_RULE = SlopeRule()


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


class LogSlope(BaseModel):
    """A least-squares line through log(training loss) over the last ``epochs`` epochs."""

    model_config = ConfigDict(frozen=True)

    slope: float  # d log(loss) / d epoch; -0.01 = falling about 1% per epoch
    stderr: float  # its standard error from the residuals
    epochs: int  # how many epochs the fit used


def log_slope(losses: Sequence[float], n: int) -> Optional[LogSlope]:
    """The least-squares slope of ``log L`` over the last ``n`` losses (``n >= 3``); None
    with fewer losses or a non-finite one among them. A loss of 0 counts as 1e-300."""
    if n < 3 or len(losses) < n:
        return None
    y = np.asarray(losses[len(losses) - n:], dtype=np.float64)
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        return None
    y = np.log(np.maximum(y, LOSS_FLOOR))
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0  # centred: the slope is sum(x y) / sum(x^2)
    sxx = n * (n * n - 1) / 12.0
    ybar = float(np.mean(y))
    slope = float(np.dot(x, y - ybar)) / sxx
    resid = y - ybar - slope * x
    rss = float(np.dot(resid, resid))
    # SGD's epoch-to-epoch noise is correlated (the weights drift between epochs): widen
    # the error by the AR(1) factor (1 + r) / (1 - r) of the residuals' lag-1
    # autocorrelation r, as for an effective sample size, so correlated noise cannot pass
    # for a precisely measured slope
    r = float(np.dot(resid[1:], resid[:-1])) / rss if rss > 0 else 0.0
    r = min(max(r, 0.0), 0.9)
    stderr = math.sqrt(rss / (n - 2) / sxx * (1 + r) / (1 - r))
    return LogSlope(slope=slope, stderr=stderr, epochs=n)


def fit_length(epochs: int, window: int) -> int:
    """How many of the last epochs the slope rule fits at epoch ``epochs``: half the run,
    at least ``window``."""
    return max(window, epochs // 2)


def predicted_decrease(losses: Sequence[float], window: int) -> Optional[float]:
    """``1 - exp((b - z se(b)) window)``: the most the loss may fall over the next
    ``window`` epochs by the slope ``b`` of log(loss) over the last ``max(window, t // 2)``
    epochs (``z = 2.5``); negative when even that slope rises. None when the fit is not
    possible (too few epochs, a non-finite loss)."""
    fit = log_slope(losses, fit_length(len(losses), window))
    if fit is None:
        return None
    return -math.expm1((fit.slope - SLOPE_Z * fit.stderr) * window)


def levelled_off(losses: Sequence[float], rule: StopRule) -> bool:
    """Whether the loss history ``L[1..t]`` has converged by ``rule`` at its last epoch ``t``."""
    return rule.stops(losses)


def converged_at(losses: Sequence[float], rule: StopRule) -> Optional[int]:
    """The first epoch (1-based) at which the history had converged by ``rule``, or None."""
    for t in range(max(1, rule.first_epoch), len(losses) + 1):
        if rule.stops(losses[:t]):
            return t
    return None


def measure_window(rule: Optional[StopRule], epochs: int) -> int:
    """Epochs whose mean loss is a run's measured loss: the rule's window, or for a
    fixed-length run the last tenth of its epochs, at most 50 (at least 1)."""
    if rule is not None:
        return rule.window
    return max(1, min(50, epochs // 10))
