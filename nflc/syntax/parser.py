"""Text -> AST: one cached lark LALR parser with positions on, one Transformer."""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Literal, cast

import lark
from lark import Token, v_args
from lark.visitors import Transformer_NonRecursive

from nflc.errors import Diagnostic, Span, SyntaxError_, source_lines
from nflc.syntax import ast

_SUFFIX = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}
MAX_DIGITS = 100  # every value in a spec stays below 10**MAX_DIGITS; a literal has at most this many digits per part

# Words of the grammar: none may name a space, op, constant, cell, parameter or node (lark's
# contextual lexer would read `space space {` as a space named `space`). `cell` is the
# default cell's name, so a cell or an op may still be called `cell` (the op then hides the
# cell, with a warning).
KEYWORDS = frozenset({"space", "input", "op", "cell", "nodes", "edge", "network", "budget", "require", "unique",
                      "import", "bias", "prune", "init", "scale", "as", "shared", "independent", "in"})
_CELL = frozenset({"cell"})

# Friendly names for the grammar's terminals in "expected ..." messages.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": 'a quoted path ("...")',
    "REPEAT": "a repeat count (x5)",
    "CMP": "a comparison (<=, >=, ==, <, >)",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COLON": "':'",
    "COMMA": "','",
    "EQUAL": "'='",
    "BOOL": "true or false",
    "PERCENT": "'%'",
    "$END": "end of file",
}


def grammar_text() -> str:
    """The grammar shipped in the wheel, or the repository's copy in a source checkout."""
    try:
        return resources.files("nflc").joinpath("grammar/nflc.lark").read_text()
    except (FileNotFoundError, OSError):
        repo = Path(__file__).resolve().parents[2] / "grammar" / "nflc.lark"
        return repo.read_text()


@functools.lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    return lark.Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


class NumberTooLong(ValueError):
    """A number literal with more digits than a spec's values may have (:data:`MAX_DIGITS`)."""


def exact_number(text: str) -> int | Fraction:
    """The exact value of a NUMBER token: an int when whole (``4.1M`` is 4100000, with no
    float rounding on the way), else a Fraction (``1.5`` is 3/2). A literal whose whole or
    fractional part has more than :data:`MAX_DIGITS` digits raises :class:`NumberTooLong`
    (read before Python's int() would refuse thousands of digits)."""
    t = text.replace("_", "")
    whole, _, frac = t.rstrip("kKMG").partition(".")
    if len(whole.lstrip("0")) > MAX_DIGITS or len(frac) > MAX_DIGITS:
        raise NumberTooLong(f"a number of {len(whole) + len(frac):,} digits; numbers in a spec stay below "
                            f"10**{MAX_DIGITS} with at most {MAX_DIGITS} digits after the point")
    if t.isdigit():  # the common case, without a Fraction
        return int(t)
    mult = 1
    if t[-1] in _SUFFIX:
        mult, t = _SUFFIX[t[-1]], t[:-1]
    value = Fraction(t) * mult
    return value.numerator if value.denominator == 1 else value


def parse_number(text: str) -> int | float:
    """A NUMBER token's value as int (whole) or float (fractional); see :func:`exact_number`."""
    value = exact_number(text)
    return value if isinstance(value, int) else float(value)


def _span(file: str, obj) -> Span:
    return Span(file, obj.line, obj.column, getattr(obj, "end_line", None), getattr(obj, "end_column", None))


def _bin(op: Literal["+", "-", "*", "/", "//", "**"]) -> Callable[..., ast.BinOp]:
    """The transformer method of a binary operator's rule."""
    @v_args(meta=True)
    def f(self: _ToAst, meta: Any, items: list[Any]) -> ast.BinOp:
        return ast.BinOp(op, items[0], items[1], self._s(meta))

    return f


class _ToAst(Transformer_NonRecursive):
    """Parse tree -> AST without recursion: `1 + 1 + ... + 1` and `((((relu))))` nest the
    tree as deep as they are long, far beyond Python's recursion limit."""

    def __init__(self, file: str, text: str):
        super().__init__(visit_tokens=False)
        self.file = file
        self.text = text

    def _s(self, meta) -> Span:
        return _span(self.file, meta)

    # -- expressions
    def _error(self, message: str, tok: Token, hint: str | None = None) -> SyntaxError_:
        span = _span(self.file, tok)
        return SyntaxError_(message, diagnostics=[Diagnostic("error", message, span, hint)], sources={self.file: self.text})

    def _name(self, tok: Token, what: str, allow: frozenset[str] = frozenset()) -> str:
        """A name that defines something (``what``): never a keyword."""
        name = str(tok)
        if name in KEYWORDS and name not in allow:
            raise self._error(f"'{name}' is a keyword and cannot name {what}", tok,
                              f"choose another name, e.g. '{name}_1'")
        return name

    @v_args(meta=True)
    def number(self, meta, items):
        tok = items[0]
        try:
            value = exact_number(str(tok))
        except NumberTooLong as exc:
            raise self._error(str(exc), tok, "write a smaller number") from None
        return ast.Num(value, str(tok), _span(self.file, tok))

    @v_args(meta=True)
    def ref(self, meta, items):
        return ast.Ref(str(items[0]), _span(self.file, items[0]))

    add, sub, mul = _bin("+"), _bin("-"), _bin("*")
    div, floordiv, pow = _bin("/"), _bin("//"), _bin("**")

    @v_args(meta=True)
    def neg(self, meta, items):
        return ast.Neg(items[0], self._s(meta))

    # -- op expressions
    @v_args(meta=True)
    def op_expr(self, meta, items):
        return ast.OpSeq(tuple(items), self._s(meta), self.text, meta.start_pos, meta.end_pos)

    def group(self, items):
        return items[0]

    @v_args(meta=True)
    def op_call(self, meta, items):
        name, call = items
        args, kwargs = (), ()
        if call is not None:
            args = tuple(a for a in call if not isinstance(a, ast.KwArg))
            kwargs = tuple(a for a in call if isinstance(a, ast.KwArg))
        return ast.OpCall(str(name), args, kwargs, self._s(meta), has_parens=call is not None)

    def call_args(self, items):
        return [i for i in items if i is not None]

    def pos_arg(self, items):
        return items[0]

    @v_args(meta=True)
    def kw_arg(self, meta, items):
        return ast.KwArg(str(items[0]), items[1], self._s(meta))

    @v_args(meta=True)
    def repeat(self, meta, items):
        body, count, mode = items
        return ast.Repeat(body, int(str(count)[1:]), mode, self._s(meta))

    def shared(self, _):
        return "shared"

    def independent(self, _):
        return "independent"

    # -- definitions
    @v_args(meta=True)
    def op_def(self, meta, items):
        name, params, body = items
        return ast.OpDef(self._name(name, "an op", _CELL), tuple(params or ()), body, self._s(meta), _span(self.file, name))

    def op_params(self, items):
        return [i for i in items if i is not None]

    @v_args(meta=True)
    def op_param(self, meta, items):
        return ast.Param(self._name(items[0], "a parameter"), items[1], self._s(meta))

    @v_args(meta=True)
    def const_def(self, meta, items):
        return ast.ConstDef(self._name(items[0], "a constant"), items[1], self._s(meta))

    @v_args(meta=True)
    def choice_const(self, meta, items):
        name, *values = items
        values = tuple(v for v in values if v is not None)
        return ast.ConstDef(self._name(name, "a numeric choice"), values[0] if values else None, self._s(meta), options=values)

    @v_args(meta=True)
    def input_stmt(self, meta, items):
        return ast.InputStmt(tuple(items), self._s(meta))

    @v_args(meta=True)
    def bias_option(self, meta, items):
        return ast.Option("bias", str(items[0]), self._s(meta))

    @v_args(meta=True)
    def prune_option(self, meta, items):
        return ast.Option("prune", "dead", self._s(meta))

    @v_args(meta=True)
    def init_option(self, meta, items):
        return ast.Option("init", str(items[0]), self._s(meta))

    # -- cells
    @v_args(meta=True)
    def cell_def(self, meta, items):
        name, params, *body = items
        nodes = tuple(i for i in body if isinstance(i, ast.NodesStmt))
        edges = tuple(i for i in body if isinstance(i, ast.EdgeStmt))
        channels = tuple(i for i in body if isinstance(i, ast.ChannelsStmt))
        node_ops = tuple(i for i in body if isinstance(i, ast.NodeStmt))
        return ast.CellDef(self._name(name, "a cell", _CELL) if name is not None else None, nodes, edges, self._s(meta),
                           tuple(params) if params is not None else None, channels, node_ops)

    @v_args(meta=True)
    def channels_stmt(self, meta, items):
        return ast.ChannelsStmt(items[1], self._s(meta), str(items[0]), _span(self.file, items[0]))

    @v_args(meta=True)
    def nodes_count(self, meta, items):
        return ast.NodesStmt(items[0], None, self._s(meta))

    @v_args(meta=True)
    def nodes_named(self, meta, items):
        return ast.NodesStmt(None, tuple(self._name(i, "a node") for i in items if i is not None), self._s(meta))

    @v_args(meta=True)
    def edge_stmt(self, meta, items):
        sel, choices = items
        src, dst = sel
        return ast.EdgeStmt(src, dst, tuple(choices), self._s(meta))

    @v_args(meta=True)
    def node_stmt(self, meta, items):
        word, sel, choices = items
        return ast.NodeStmt(sel, tuple(choices), self._s(meta), str(word), _span(self.file, word))

    def all_nodes(self, _):
        return None

    def one_node(self, items):
        return items[0]

    def all_pairs(self, _):
        return (None, None)

    def pair(self, items):
        return (items[0], items[1])

    def node_ref(self, items: list[Token]) -> ast.NodeRef:
        tok = items[0]
        value: int | str = str(tok)
        if tok.type == "NUMBER" and re.fullmatch(r"[0-9_]+", str(tok)):
            value = int(str(tok).replace("_", ""))  # `1.5` or `2k` stay text: reported by the lowering
        return ast.NodeRef(value, _span(self.file, tok))

    def choice(self, items):
        return items

    @v_args(meta=True)
    def choice_item(self, meta, items):
        op, label = items
        return ast.ChoiceItem(op, str(label) if label is not None else None, self._s(meta))

    # -- network, budgets, constraints
    @v_args(meta=True)
    def network_def(self, meta, items):
        return ast.NetworkDef(items[0], self._s(meta))

    @v_args(meta=True)
    def budget_stmt(self, meta, items):
        metric, cmp, value, tol, scale = items
        tol_expr, percent = (tol if tol is not None else (None, False))
        scale_name, scale_span = scale if scale is not None else (None, None)
        return ast.Budget(str(metric), str(cmp), value, tol_expr, percent, scale_name,
                          self._s(meta), _span(self.file, metric), scale_span)

    def tolerance(self, items):
        return (items[0], items[1] is not None)

    def scale(self, items):
        return (str(items[0]), _span(self.file, items[0]))

    @v_args(meta=True)
    def require_stmt(self, meta, items):
        metric, cmp, value = items
        return ast.Require(str(metric), str(cmp), value, self._s(meta), _span(self.file, metric))

    @v_args(meta=True)
    def unique_stmt(self, meta, items):
        return ast.Unique(self._s(meta))

    @v_args(meta=True)
    def space(self, meta, items):
        name, *body = items
        return ast.SpaceDef(self._name(name, "a space"), tuple(body), self._s(meta))

    @v_args(meta=True)
    def import_stmt(self, meta, items):
        return ast.Import(str(items[0])[1:-1], self._s(meta))

    def start(self, items):
        return tuple(items)


def _terminal_name(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    for t in _parser().terminals:  # keywords and punctuation: show the text itself
        if t.name == name and t.pattern.type == "str":
            return f"'{t.pattern.value}'"
    return name.lower()


def _describe_expected(expected: set[str]) -> str:
    names = sorted({_terminal_name(e) for e in expected})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


_STATEMENT_KEYWORDS = {"space", "input", "op", "cell", "nodes", "edge", "network", "budget", "require", "unique",
                       "import", "bias", "prune", "init"}


def _syntax_hint(text_line: str, token: str, after: str = "") -> str | None:
    """A guess at the fix; ``after`` is the source text right after the token."""
    if token == "→" or (token == "=" and after.startswith(">") and "edge" in text_line):
        return "edges are written 'edge 0 -> 1 : op'"
    if token == "=" and after.startswith(">"):
        return "write '>=' (and '<=') for comparisons"
    if "edge" in text_line and ":" not in text_line and token != "edge":
        return "an edge needs ':' before its op choices, e.g. 'edge * : zero | skip'"
    if token == "," and "edge" in text_line and ":" in text_line:
        return "separate an edge's choices with '|', e.g. 'edge * : zero | skip'"
    if token == ">" and after.startswith(">"):
        return "'>>' cannot continue here: is a '>>' missing between the ops before it?"
    if token == "$END" or token == "":
        return "is a '}' missing?"
    return None


def _open_bracket(text: str, end: int) -> tuple[str, int, int] | None:
    """The innermost bracket still open at offset ``end``: (bracket, line, column)."""
    open_at: list[tuple[str, int, int]] = []
    pairs = {"}": "{", ")": "(", "]": "["}
    for n, line in enumerate(source_lines(text[:end]), start=1):
        code = re.sub(r'"[^"\n]*"', lambda m: " " * len(m.group()), line).split("#", 1)[0]
        for col, ch in enumerate(code, start=1):
            if ch in "{([":
                open_at.append((ch, n, col))
            elif ch in pairs and open_at and open_at[-1][0] == pairs[ch]:
                open_at.pop()
    return open_at[-1] if open_at else None


def _unclosed_hint(text: str, end: int | None = None, kinds: str = "{([") -> str | None:
    """"is a '}' missing?" naming where the innermost bracket open at ``end`` was opened."""
    found = _open_bracket(text, len(text) if end is None else end)
    if found is None or found[0] not in kinds:
        return None
    ch, n, col = found
    close = {"{": "}", "(": ")", "[": "]"}[ch]
    return f"is a '{close}' missing? the '{ch}' at line {n}, column {col} is never closed"


def _keyword_in_cell(text: str, pos: int, src_line: str) -> tuple[str, int] | None:
    """(word, column) when the line of offset ``pos`` begins with a statement keyword that is
    no cell statement, inside a cell's braces: a cell's `NAME EXPR` statement (`channels 16`)
    read it as a name, and the real mistake is the cell's missing '}'."""
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", src_line)
    if m is None or m.group(1) not in _STATEMENT_KEYWORDS - {"nodes", "edge"}:
        return None
    line_start = text.rfind("\n", 0, pos) + 1
    wpos = line_start + m.start(1)
    if wpos >= pos:
        return None
    found = _open_bracket(text, wpos)
    if found is None or found[0] != "{":
        return None
    opener = source_lines(text)[found[1] - 1]
    if not re.match(r"\s*cell\b", opener):
        return None
    return m.group(1), m.start(1) + 1


def parse(text: str, file: str = "<string>") -> ast.Module:
    """Parse .nfl source text into an AST, or raise :class:`SyntaxError_` with a caret.

    A leading byte-order mark is ignored (callers that show the text drop it too)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None
    try:
        items = _ToAst(file, text).transform(tree)
    except lark.exceptions.VisitError as exc:  # a bug in a Transformer method, not the user's
        raise exc.orig_exc from None
    return ast.Module(file, items)


def _syntax_error(exc: lark.exceptions.UnexpectedInput, text: str, file: str) -> SyntaxError_:
    line = getattr(exc, "line", 1) or 1
    column = getattr(exc, "column", 1) or 1
    lines = source_lines(text)
    src_line = lines[line - 1] if 0 < line <= len(lines) else ""
    hint: str | None
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        at = cast(int, exc.pos_in_stream)  # lark declares it None on the base class; here the offset
        ch = text[at] if at < len(text) else ""
        msg = f"unexpected character {ch!r}"
        hint = _syntax_hint(src_line, ch, text[at + 1:]) or \
            "names are letters, digits and '_'; comments start with '#'"
    elif isinstance(exc, lark.exceptions.UnexpectedEOF):
        line, column = max(len(lines), 1), len(lines[-1]) + 1 if lines else 1
        msg = "unexpected end of file"
        hint = _unclosed_hint(text)
    else:
        assert isinstance(exc, lark.exceptions.UnexpectedToken)  # lark's third kind
        tok: Token = exc.token
        if tok.type == "$END":
            msg = f"unexpected end of file; expected {_describe_expected(set(exc.expected))}"
            line, column = max(len(lines), 1), (len(lines[-1]) + 1 if lines else 1)
            hint = _unclosed_hint(text) or _syntax_hint(src_line, "$END")
        else:
            msg = f"unexpected {str(tok)!r}; expected {_describe_expected(set(exc.expected))}"
            pos = tok.start_pos or 0
            stray = _keyword_in_cell(text, pos, src_line)
            if stray is not None:  # `network = ...` read as a cell's `channels`-like statement
                word, wcol = stray
                wpos = pos - (column - wcol)
                msg = f"unexpected {word!r}; expected 'channels', 'edge', 'nodes', '}}'"
                return SyntaxError_(msg, diagnostics=[Diagnostic("error", msg, Span(file, line, wcol, line,
                                    wcol + len(word)), _unclosed_hint(text, wpos, "{"))], sources={file: text})
            # an unclosed ( or [ before the token, or a `}` forgotten before a new statement
            hint = _unclosed_hint(text, pos, "([")
            if hint is None and "RBRACE" in exc.expected and str(tok) in _STATEMENT_KEYWORDS \
                    and not src_line[: column - 1].strip():
                hint = _unclosed_hint(text, pos, "{")
            hint = hint or _syntax_hint(src_line, str(tok), text[tok.end_pos or pos:])
            return SyntaxError_(msg, diagnostics=[Diagnostic("error", msg, Span(file, line, column, line,
                                column + len(str(tok))), hint)], sources={file: text})
    span = Span(file, line, column)
    return SyntaxError_(msg, diagnostics=[Diagnostic("error", msg, span, hint)], sources={file: text})
