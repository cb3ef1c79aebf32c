"""Diagnostics: one root error type, every error with a source span.

The CLI prints each diagnostic as ``file:line:col: error: message``, the source line and
a caret; all diagnostics of a file are collected and reported together.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal


def source_lines(text: str) -> list[str]:
    """The lines of a source as the parser numbers them: split at '\\n' only (like
    ``str.splitlines``, no empty last line after a final newline).

    ``str.splitlines`` also splits at form feeds, U+2028 and other separators, which the
    grammar treats as ordinary characters, so carets would land lines off after them.
    """
    return list(_lines(text))


@functools.lru_cache(maxsize=8)
def _lines(text: str) -> tuple[str, ...]:  # str caches its hash: a hit costs O(1), not O(len)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(ln[:-1] if ln.endswith("\r") else ln for ln in lines)


def source_line(text: str, line: int) -> str | None:
    """Line ``line`` (1-based) of ``text`` as printed under a diagnostic: tabs, form feeds
    and other control or separator characters shown as one space each (so the caret's
    column stays right), or None when the file has no such line."""
    lines = _lines(text)
    if not 1 <= line <= len(lines):
        return None
    return "".join(" " if (ch < " " or ch in "\x7f\x85\u2028\u2029") else ch for ch in lines[line - 1])


SHOWN_LINE = 120  # a longer source line is shown around the caret only


def _window(src: str, col: int, width: int) -> tuple[str, int, int]:
    """A long line cut to :data:`SHOWN_LINE` characters around column ``col`` (``...`` where
    it is cut), with the caret's column and width in the cut line."""
    if len(src) <= SHOWN_LINE:
        return src, col, width
    start = max(0, min(col - 1 - SHOWN_LINE // 3, len(src) - SHOWN_LINE))
    end = start + SHOWN_LINE
    head, tail = ("..." if start else ""), ("..." if end < len(src) else "")
    col = col - start + len(head)
    return head + src[start:end] + tail, col, max(1, min(width, end - (col - len(head) - 1 + start) + 1))


def decode_source(data: bytes, file: str) -> str:
    """UTF-8 source text (a leading byte-order mark is dropped), or a diagnostic that names
    the first byte that is not UTF-8 by its offset, line and column."""
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        pos = bom + exc.start  # offset in the file (the BOM included)
        before = data[bom:pos].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        msg = f"{file} is not UTF-8 text: byte 0x{data[pos]:02x} at offset {pos} (line {line}, column {column})"
        shown = data[bom:].decode("utf-8", errors="replace")
        raise NflcError(msg, Span(file, line, column), f"{exc.reason}; save the file as UTF-8",
                        sources={file: shown}) from None


@dataclass(frozen=True)
class Span:
    """A region of a source file (1-based line and column, end exclusive)."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    severity: Literal["error", "warning"]
    message: str
    span: Span | None = None
    hint: str | None = None

    def render(self, sources: dict[str, str] | None = None) -> str:
        """``file:line:col: error: msg`` + the source line + a caret + the hint."""
        head = f"{self.span}: " if self.span else ""
        out = [f"{head}{self.severity}: {self.message}"]
        text = (sources or {}).get(self.span.file) if self.span else None
        if text is not None and self.span is not None:
            src = source_line(text, self.span.line)
            if src is not None:
                col = max(self.span.column, 1)
                width = 1
                if self.span.end_line == self.span.line and self.span.end_column:
                    width = max(1, self.span.end_column - col)
                width = min(width, max(1, len(src) - col + 1))
                src, col, width = _window(src, col, width)
                out.append(f"    {src}")
                out.append("    " + " " * (col - 1) + "^" + "~" * (width - 1))
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)


class NflcError(Exception):
    """Root of every error nflc raises for a user's mistake."""

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        hint: str | None = None,
        diagnostics: Iterable[Diagnostic] | None = None,
        sources: dict[str, str] | None = None,
    ):
        self.diagnostics: list[Diagnostic] = list(diagnostics or [Diagnostic("error", message, span, hint)])
        self.sources: dict[str, str] = dict(sources or {})
        super().__init__(message)

    @property
    def span(self) -> Span | None:
        return self.diagnostics[0].span if self.diagnostics else None

    def render(self) -> str:
        return "\n".join(d.render(self.sources) for d in self.diagnostics)

    def __str__(self) -> str:  # the first diagnostic, rendered with its position
        d = self.diagnostics[0]
        return f"{d.span}: {d.message}" if d.span else d.message


class SettingError(NflcError):
    """A bad value of a setting. Its message and hint name each setting in backticks
    (`` `max_epochs` ``), so the library speaks no front end's words; a front end respells
    them (:meth:`respelled`: the command line as its flags, ``--max-epochs``)."""

    def respelled(self, spell: Callable[[str], str]) -> NflcError:
        """The same error with every `` `name` `` replaced by ``spell(name)``."""
        d = self.diagnostics[0]

        def respell(text: str) -> str:
            return re.sub(r"`(\w+)`", lambda m: spell(m.group(1)), text)

        return NflcError(respell(d.message), d.span, respell(d.hint) if d.hint else None)


class SyntaxError_(NflcError):
    """The text is not in the .nfl grammar."""


class SemanticError(NflcError):
    """The text parses but means nothing (unknown names, bad shapes, ...)."""


class SpaceError(NflcError):
    """A request against a space that cannot be met (bad id, empty space, ...)."""


@dataclass
class DiagnosticBag:
    """Collects diagnostics of one compilation so all of them are reported at once."""

    sources: dict[str, str] = field(default_factory=dict)
    items: dict[Diagnostic, None] = field(default_factory=dict)  # insertion-ordered, O(1) membership
    error_calls: int = 0  # errors reported, duplicates included (has this step failed?)

    def error(self, message: str, span: Span | None = None, hint: str | None = None) -> None:
        self.error_calls += 1
        self.add(Diagnostic("error", message, span, hint))

    def warning(self, message: str, span: Span | None = None, hint: str | None = None) -> None:
        self.add(Diagnostic("warning", message, span, hint))

    def add(self, d: Diagnostic) -> None:
        """Record a diagnostic once (a construct checked twice reports once)."""
        self.items.setdefault(d, None)

    @property
    def errors(self) -> list[Diagnostic]:
        return self._in_order([d for d in self.items if d.severity == "error"])

    @property
    def warnings(self) -> list[Diagnostic]:
        return self._in_order([d for d in self.items if d.severity == "warning"])

    def _in_order(self, ds: list[Diagnostic]) -> list[Diagnostic]:
        """Source order: files as first met, then line and column (no span: last)."""
        files = {f: i for i, f in enumerate(dict.fromkeys(d.span.file for d in ds if d.span))}
        return sorted(ds, key=lambda d: (files[d.span.file], d.span.line, d.span.column) if d.span
                      else (len(files), 0, 0))

    def raise_if_errors(self, cls: type[NflcError] = SemanticError) -> None:
        errs = self.errors
        if errs:
            raise cls(errs[0].message, diagnostics=errs, sources=self.sources)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint from the closest candidate names, or None."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
