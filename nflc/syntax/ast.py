"""The abstract syntax tree of a .nfl file: immutable nodes, each with its source span.

Built from lark's parse tree by :mod:`nflc.syntax.parser`; lowered to the IR by
:mod:`nflc.ir.lower`. No meaning is checked here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Union

from nflc.errors import Span

_COMMENT = re.compile(r"#[^\n]*")  # op expressions hold no strings, so '#' always starts a comment

# ------------------------------------------------------------------ expressions


@dataclass(frozen=True)
class Num:
    value: int | Fraction  # exact: `4.1M` is 4100000, `1.5` is Fraction(3, 2)
    text: str
    span: Span


@dataclass(frozen=True)
class Ref:
    name: str
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: Literal["+", "-", "*", "/", "//", "**"]
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span


Expr = Union[Num, Ref, BinOp, Neg]

# ------------------------------------------------------------------ op expressions


@dataclass(frozen=True)
class KwArg:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class OpCall:
    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[KwArg, ...]
    span: Span
    has_parens: bool = False


@dataclass(frozen=True)
class Repeat:
    body: "OpTerm"
    count: int
    mode: Literal["shared", "independent"] | None
    span: Span


@dataclass(frozen=True)
class OpSeq:
    items: tuple["OpTerm", ...]
    span: Span
    source: str = field(default="", repr=False, compare=False)  # the file's text (shared, not copied)
    start: int = 0  # offsets of this expression in ``source``
    end: int = 0

    @property
    def text(self) -> str:
        """The source text, comments left out, whitespace normalised (the default label of
        a choice). Computed on demand: `((((relu))))` nests thousands of these."""
        return re.sub(r"\s+", " ", _COMMENT.sub(" ", self.source[self.start : self.end])).strip()


OpTerm = Union[OpCall, Repeat, OpSeq]

# ------------------------------------------------------------------ statements


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class OpDef:
    name: str
    params: tuple[Param, ...]
    body: OpSeq
    span: Span
    name_span: Span


@dataclass(frozen=True)
class ConstDef:
    name: str
    value: Expr | None  # the first option of a numeric choice (None when the set is empty)
    span: Span
    options: tuple[Expr, ...] | None = None  # `c in {8, 16}`: a numeric choice


@dataclass(frozen=True)
class InputStmt:
    dims: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Option:
    name: Literal["bias", "prune", "init"]
    value: str
    span: Span


@dataclass(frozen=True)
class NodeRef:
    value: int | str
    span: Span


@dataclass(frozen=True)
class ChoiceItem:
    op: OpSeq
    label: str | None
    span: Span


@dataclass(frozen=True)
class EdgeStmt:
    src: NodeRef | None  # None, None for `edge *`
    dst: NodeRef | None
    choices: tuple[ChoiceItem, ...]
    span: Span


@dataclass(frozen=True)
class NodeStmt:
    node: NodeRef | None  # None for `node *` (every intermediate node)
    choices: tuple[ChoiceItem, ...]
    span: Span
    keyword: str = "node"  # as written (a name; the lowering checks it)
    keyword_span: Span | None = None


@dataclass(frozen=True)
class NodesStmt:
    count: Expr | None
    names: tuple[str, ...] | None
    span: Span


@dataclass(frozen=True)
class ChannelsStmt:
    value: Expr
    span: Span
    keyword: str = "channels"  # as written (a cell statement `NAME EXPR`; the lowering checks the name)
    keyword_span: Span | None = None


@dataclass(frozen=True)
class CellDef:
    name: str | None
    nodes: tuple[NodesStmt, ...]
    edges: tuple[EdgeStmt, ...]
    span: Span
    params: tuple[Param, ...] | None = None  # `cell c(w) { ... }`, placed as `c(16)`
    channels: tuple[ChannelsStmt, ...] = ()
    node_ops: tuple[NodeStmt, ...] = ()  # `node * : ...`: a node cell (NAS-Bench-101's semantics)


@dataclass(frozen=True)
class NetworkDef:
    body: OpSeq
    span: Span


Cmp = Literal["<=", ">=", "==", "!=", "<", ">"]  # the grammar's CMP


@dataclass(frozen=True)
class Budget:
    metric: str
    cmp: Cmp
    value: Expr
    tolerance: Expr | None
    percent: bool
    scale: str | None
    span: Span
    metric_span: Span
    scale_span: Span | None


@dataclass(frozen=True)
class Require:
    metric: str
    cmp: Cmp
    value: Expr
    span: Span
    metric_span: Span


@dataclass(frozen=True)
class Unique:
    span: Span


SpaceItem = Union[ConstDef, InputStmt, OpDef, CellDef, NetworkDef, Budget, Require, Unique, Option]


@dataclass(frozen=True)
class SpaceDef:
    name: str
    items: tuple[SpaceItem, ...]
    span: Span


@dataclass(frozen=True)
class Import:
    path: str
    span: Span


@dataclass(frozen=True)
class Module:
    """One parsed file."""

    file: str
    items: tuple[Union[Import, SpaceDef, OpDef, ConstDef], ...]
