"""Plain-text progress for long analyses whose output is not a terminal (a log, a pipe, CI).

A live bar needs a terminal; in a log it prints nothing until the end, so a run that
takes minutes looks hung. :class:`PlainProgress` writes one line at the start, one every
``interval`` seconds with the count, the rate and an estimate of the time left, and one
at the end.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO


def format_seconds(s: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class PlainProgress:
    """``update(done)`` as items finish; lines go to ``stream`` at most every ``interval`` s."""

    def __init__(self, total: int, stream: TextIO, *, label: str = "analyzing", unit: str = "architectures",
                 interval: float = 5.0, clock: Callable[[], float] = time.monotonic, note: str = "",
                 announce: bool = True):
        self.total, self.stream, self.label, self.unit, self.note = total, stream, label, unit, note
        self.interval, self.clock = interval, clock
        self.start = clock()
        self.last_line = self.start
        self.done = 0
        if announce:
            self.announce()

    def announce(self) -> None:
        """The first line. ``announce=False`` and then this: a caller that keeps the object
        first has it before the line appears, so a Ctrl-C right after the line still finds
        it to close."""
        self._write(f"{self.label}: {self.total:,} {self.unit}{self.note}")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def estimate(self) -> float | None:
        """Seconds left at the rate so far (None before anything is done)."""
        if self.done <= 0:
            return None
        elapsed = self.clock() - self.start
        return elapsed / self.done * (self.total - self.done)

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = self.clock()
        if now - self.last_line < self.interval or done >= self.total:
            return
        self.last_line = now
        left = self.estimate()
        pct = 100.0 * done / self.total if self.total else 100.0
        eta = "" if left is None else f", about {format_seconds(left)} left"
        self._write(f"{self.label}: {done:,}/{self.total:,} {self.unit} ({pct:.0f}%), "
                    f"{format_seconds(now - self.start)} elapsed{eta}")

    def close(self) -> None:
        state = "done" if self.done >= self.total else "stopped"
        self._write(f"{self.label}: {self.done:,}/{self.total:,} {self.unit} {state} after "
                    f"{format_seconds(self.clock() - self.start)}")
