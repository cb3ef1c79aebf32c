"""Bounded reading of the JSON users give nflc: benchmark files (``nflc rank``), analysis
files (``nflc report --analysis``), encodings (``nflc convert``).

What a file may hold, stated once and checked before any of it is used:

- at most :data:`MAX_BYTES` bytes, UTF-8 (a byte-order mark is allowed);
- arrays and objects nested at most :data:`MAX_DEPTH` deep;
- numbers of at most :data:`MAX_NUMBER_CHARS` characters; integers of at most
  :data:`MAX_INT_DIGITS` digits and no number beyond the largest float (``1e400``), so
  every number converts to a finite float (``NaN`` and ``Infinity``, written as such, are
  read as they are: some benchmark files use them for a missing value).

Anything else is a :class:`JsonInputError` naming the file, the line and the column.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from itertools import accumulate
from pathlib import Path
from typing import Any

from nflc.errors import NflcError, Span, decode_source

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_INT_DIGITS", "MAX_NUMBER_CHARS", "JsonBoundsError", "JsonInputError",
           "parse_json", "read_json", "read_text", "where"]

MAX_BYTES = 1 << 30  # 1 GiB: the largest NAS-Bench files are tens of MB
MAX_DEPTH = 100  # nflc's own formats nest at most 6 deep
MAX_NUMBER_CHARS = 400
MAX_INT_DIGITS = 308  # 10^308 < the largest float (1.8e308)

# a string, or an unterminated one to the end: every match succeeds, so one linear pass
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonInputError(NflcError):
    """A JSON input nflc does not read (malformed, or beyond the stated bounds)."""


class JsonBoundsError(JsonInputError):
    """A JSON input beyond the stated bounds (nesting, digits, magnitude)."""


class _NumberOutOfBounds(ValueError):
    def __init__(self, literal: str, why: str):
        super().__init__(why)
        self.literal, self.why = literal, why


def where(text: str, pos: int) -> tuple[int, int]:
    """(line, column), both from 1, of character offset ``pos`` in ``text``."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _located(source: str, text: str, pos: int, message: str, hint: str | None = None,
             cls: type[JsonInputError] = JsonInputError) -> JsonInputError:
    line, col = where(text, pos)
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    if end - start <= 200:  # a short line is shown with a caret; a long one (one-line files) only near the spot
        return cls(message, Span(source, line, col), hint, sources={source: text})
    near = text[max(start, pos - 30):pos + 30]
    return cls(f"{message} (near {near!r})", Span(source, line, col), hint)


def _int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if len(literal) > MAX_NUMBER_CHARS or digits > MAX_INT_DIGITS:
        raise _NumberOutOfBounds(literal, f"an integer of {digits:,} digits; nflc reads integers of at most "
                                          f"{MAX_INT_DIGITS} digits")
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _NumberOutOfBounds(literal, f"a number of {len(literal):,} characters; nflc reads numbers of at most "
                                          f"{MAX_NUMBER_CHARS}")
    value = float(literal)
    if math.isinf(value):
        raise _NumberOutOfBounds(literal, f"{literal[:40]} is beyond the largest number nflc reads (about 1.8e308)")
    return value


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects (brackets inside strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _too_deep_at(text: str) -> int:
    """Offset of the first bracket that opens level ``MAX_DEPTH + 1`` (the slow path of an error)."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return i
        elif ch in "]}":
            depth -= 1
    return 0


def parse_json(text: str, source: str, hint: str | None = None, what: str | None = None) -> Any:
    """``text`` as JSON within the module's bounds, or a located :class:`JsonInputError`
    (its message starts "cannot read WHAT: " when ``what`` names the input)."""
    lead = f"cannot read {what}: " if what else ""
    if _depth(text) > MAX_DEPTH:
        raise _located(source, text, _too_deep_at(text), f"{lead}arrays and objects nested more than {MAX_DEPTH} deep",
                       hint, JsonBoundsError)
    try:
        return json.loads(text, parse_int=_int, parse_float=_float)
    except _NumberOutOfBounds as exc:
        raise _located(source, text, max(0, text.find(exc.literal)), lead + exc.why, hint, JsonBoundsError) from None
    except json.JSONDecodeError as exc:
        raise _located(source, text, exc.pos, f"{lead}not valid JSON: {exc.msg}", hint) from None
    except RecursionError:  # a safety net: the depth is checked above
        raise JsonInputError(f"{source}: nested too deeply to read", hint=hint) from None


def read_text(path: str | Path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of the file ``path`` (``what`` names it in messages, e.g.
    ``benchmark file``), at most ``max_bytes`` bytes."""
    path = Path(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise JsonInputError(f"{what} {path} is a directory", hint="pass the file's path")
        if stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
            raise JsonInputError(f"{what} {path} has {st.st_size:,} bytes; nflc reads files of at most {max_bytes:,}")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise JsonInputError(f"no {what} at {path}", hint="check the path") from None
    except OSError as exc:
        raise JsonInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise JsonInputError(f"{what} {path} has more than {max_bytes:,} bytes; nflc reads files of at most {max_bytes:,}")
    try:
        return decode_source(data, str(path))
    except NflcError as exc:  # not UTF-8: its position; the line itself only when it is short
        d, shown = exc.diagnostics[0], exc.sources.get(str(path), "")
        short = d.span is not None and len(shown.split("\n")[d.span.line - 1] if shown else "") <= 200
        raise JsonInputError(d.message, d.span, d.hint, sources=exc.sources if short else None) from None


def read_json(path: str | Path, what: str, hint: str | None = None, max_bytes: int = MAX_BYTES) -> Any:
    """The JSON document in the file ``path``, read within the module's bounds."""
    return parse_json(read_text(path, what, max_bytes), str(path), hint, what)
