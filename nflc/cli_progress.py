"""The command line's progress displays (the CLI layer: the library reports progress as
callbacks and events and prints nothing).

- :class:`AnalysisProgress`: ``nflc analyze`` and ``nflc rank``'s stages on stderr;
- :func:`sweep_progress`: ``nflc verify``'s sweep events
  (:class:`nflc.verify.driver.SweepEvent`) as a rich progress bar.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

if TYPE_CHECKING:
    from nflc.verify.driver import SweepEvent

__all__ = ["AnalysisProgress", "sweep_progress"]


class AnalysisProgress:
    """Progress of an analysis on stderr: a live bar with the time left on a terminal, else
    plain lines every few seconds (nflc.analysis.progress), so a log shows it too.

    The kernels are counted in computing graphs (the units of work); that display starts at
    their first update, when their number is known. The passes over the architectures
    before (grouping) and after (scoring) are counted in architectures, and shown from
    their start for a space of :data:`EARLY_ARCHS` or more, else only when one lasts longer
    than ``early`` seconds (a small analysis prints the kernels' lines alone)."""

    EARLY_ARCHS = 50_000
    LABELS = {"kernels": "analyzing", "grouping": "grouping", "scoring": "scoring"}

    def __init__(self, err: Console, archs: int, interval: float = 5.0, early: float = 1.0):
        self.err = err
        self.archs, self.interval, self.early, self.clock = archs, interval, early, time.monotonic
        self.stage: str | None = None  # the stage of the latest update
        self.shown: str | None = None  # the stage on display
        self.stage_start = 0.0
        self.bar: Any = None  # a rich Progress on a terminal
        self.plain: Any = None  # else plain progress lines

    def _close_display(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.plain is not None:
            self.plain.close()
        self.bar = self.plain = None

    def _start(self, stage: str, total: int) -> None:
        self._close_display()
        self.shown = stage
        label = self.LABELS.get(stage, stage)
        unit = "computing graphs" if stage == "kernels" else "architectures"
        note = f" ({self.archs:,} architectures)" if stage == "kernels" else ""
        if self.err.is_terminal:
            title = (f"analyzing {self.archs:,} architectures: computing graphs" if stage == "kernels"
                     else f"{label} {self.archs:,} architectures")
            self.bar = Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("left"), TimeRemainingColumn(), console=self.err, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("", total=total)
        else:
            from nflc.analysis.progress import PlainProgress  # numpy and scipy load with nflc.analysis: only once one runs

            self.plain = PlainProgress(total, sys.stderr, label=label, unit=unit, interval=self.interval, note=note,
                                       announce=False)
            self.plain.announce()

    def update(self, done: int, total: int, stage: str = "kernels") -> None:
        if stage != self.stage:
            self.stage, self.stage_start = stage, self.clock()
            if stage == "kernels" or self.archs >= self.EARLY_ARCHS:
                self._start(stage, total)
        elif self.bar is None and self.plain is None and self.clock() - self.stage_start > self.early and done < total:
            self._start(stage, total)
        if self.shown != stage:
            return  # another stage's display: it stays as it ended
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)
        elif self.plain is not None:
            self.plain.update(done, total)

    def warn(self, message: str) -> None:
        (self.bar.console if self.bar is not None else self.err).print(f"warning: {message}", markup=False)

    def close(self) -> None:
        self._close_display()


def sweep_progress(epochs: int, console: Optional[Console] = None) -> tuple[Callable[[SweepEvent], None], Callable[[], None]]:
    """``(callback, close)``: a rich progress display for sweep events (stderr)."""
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[detail]}"), console=console or Console(stderr=True))
    task: Optional[TaskID] = None
    running: set[str] = set()
    epoch = 0
    best: Optional[float] = None

    def callback(event: SweepEvent) -> None:
        nonlocal task, epoch, best
        if task is None:
            bar.start()
            task = bar.add_task("architectures", total=event.total, detail="")
        if event.kind in ("start", "resume"):
            running.add(event.arch_id)
            if event.kind == "resume":
                epoch = event.epoch or 0
        elif event.kind in ("skip", "finish"):
            running.discard(event.arch_id)
            bar.advance(task)
        elif event.kind == "epoch" and event.record is not None:
            epoch = event.record.epoch
            loss = event.record.train_loss
            best = loss if best is None or not loss >= best else best
        if running:
            shown = f", best train loss {best:.4f}" if best is not None else ""
            bar.update(task, detail=f"{len(running)} training, epoch {epoch}/{epochs}{shown}")
        else:
            best = None
            bar.update(task, detail="")

    def close() -> None:
        if task is not None:
            bar.stop()

    return callback, close
