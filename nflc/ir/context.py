"""The state the passes lowering one space share (:class:`LowerContext`), and the limits.

Constants are evaluated lazily, where first used, so their cache and the set of used names
travel with the passes instead of being computed by one of them; so do the diagnostic bag
and the scope. Everything else a pass produces is returned as typed data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, NoReturn, ParamSpec, TypeVar

from nflc.errors import DiagnosticBag, Span
from nflc.ir.model import SourceSpan
from nflc.ir.scopes import Scope, SpaceSource
from nflc.syntax import ast
from nflc.syntax.parser import MAX_DIGITS as MAX_DIGITS  # every value in an expression stays below 10**100 in magnitude

MAX_REPEAT = 10_000  # largest repeat count `xN`
MAX_PRIMS = 100_000  # primitive ops one op expression may expand to (repeats multiply)
MAX_STAGES = 100_000  # stages (primitives and cell placements) of a network
MAX_NESTING = 5_000  # levels of parentheses, repeats and op-in-op definitions

Value = int | Fraction | bool  # an evaluated expression (exact: never a float)

P = ParamSpec("P")
T = TypeVar("T")


class Abort(Exception):
    """Stops lowering one construct after its error was recorded."""


def to_source_span(span: Span | None) -> SourceSpan | None:
    return SourceSpan(file=span.file, line=span.line, column=span.column, end_line=span.end_line,
                      end_column=span.end_column) if span else None


def to_span(s: SourceSpan | None) -> Span | None:
    return Span(s.file, s.line, s.column, s.end_line, s.end_column) if s else None


@dataclass
class LowerContext:
    """What every pass lowering one space reads and records.

    ``const_values``/``failed_consts`` cache the constants evaluated so far, ``used`` the
    names looked up (unused definitions are warned about), ``depth`` the nesting of op
    expansion and network terms together (:data:`MAX_NESTING`). ``cell_defs`` fills as the
    cells pass meets each definition: op expansion names a cell met so far in its error."""

    src: SpaceSource
    bag: DiagnosticBag
    overrides: dict[str, int] = field(default_factory=dict)  # constants fixed from outside (`scale`, numeric choices)
    warn: bool = True  # report warnings (off when the space is lowered again)
    bias: bool = True  # the space's `bias` option: the default of every layer's `bias`
    const_values: dict[str, Value] = field(default_factory=dict)
    failed_consts: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)
    depth: int = 0
    cell_defs: dict[str, ast.CellDef] = field(default_factory=dict)
    sd: ast.SpaceDef = field(init=False)
    scope: Scope = field(init=False)
    errors_before: int = field(init=False)  # the bag's error count when the space began

    def __post_init__(self) -> None:
        self.sd, self.scope, self.errors_before = self.src.space, self.src.scope, self.bag.error_calls

    @property
    def failed(self) -> bool:
        """Has an error been recorded since this space began?"""
        return self.bag.error_calls > self.errors_before

    def fail(self, msg: str, span: Span | None, hint: str | None = None) -> NoReturn:
        self.bag.error(msg, span, hint)
        raise Abort

    @staticmethod
    def stop() -> NoReturn:
        """Stop lowering this construct: its errors are recorded already."""
        raise Abort

    @staticmethod
    def attempt(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``fn(*args)``, or None when it stopped at an error (already recorded)."""
        try:
            return fn(*args, **kwargs)
        except Abort:
            return None
