"""AST -> IR: the driver of the compiler's passes (docs/CONTRACTS.md, "Compiler passes").

For a file: parse (:mod:`nflc.syntax`), then the scopes pass (:mod:`nflc.ir.scopes`). For
each space: evaluation of its header (:mod:`nflc.ir.evaluate`), cells (:mod:`nflc.ir.cells`),
network (:mod:`nflc.ir.network`), checks (:mod:`nflc.ir.checks`), then the
:class:`SpaceIR`, linted like the cells and the network before it (a violation is an
internal error). All diagnostics of a file are collected in one :class:`DiagnosticBag` and
raised together. A space can be lowered again with constants overridden (``scale width``
solves a width by lowering at candidate values), so the AST and its scope are kept in
:class:`SpaceSource`.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from nflc.errors import Diagnostic, DiagnosticBag, NflcError, SemanticError, Span, decode_source
from nflc.ir.cells import lower_cells
from nflc.ir.checks import BUDGET_METRICS, REQUIRE_METRICS, IRLintError, check_lint, check_space
from nflc.ir.context import MAX_DIGITS, MAX_NESTING, MAX_PRIMS, MAX_REPEAT, MAX_STAGES, LowerContext
from nflc.ir.evaluate import INIT_SCHEMES, space_header
from nflc.ir.model import SpaceIR, lint_shape_chain, lint_stages
from nflc.ir.network import lower_network
from nflc.ir.scopes import Scope, SpaceSource, check_calls, file_scope, space_scope, warn_unused_top_level
from nflc.syntax import ast
from nflc.syntax.parser import parse

__all__ = [
    "BUDGET_METRICS", "INIT_SCHEMES", "MAX_DIGITS", "MAX_NESTING", "MAX_PRIMS", "MAX_REPEAT", "MAX_STAGES",
    "REQUIRE_METRICS", "IRLintError", "LoweredSpace", "Program", "Scope", "SpaceSource", "check_calls",
    "compile_path", "compile_text", "lower_space", "relower",
]


@dataclass
class Program:
    """Every space of a file (and the warnings its compilation produced)."""

    file: str
    spaces: dict[str, SpaceIR]
    sources_by_space: dict[str, SpaceSource]
    warnings: list[Diagnostic]
    sources: dict[str, str]


def compile_path(path: str | Path, allow_outside: bool = False) -> Program:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NflcError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path") from None
    text = decode_source(data, str(path))
    return compile_text(text, str(path), base_dir=path.resolve().parent, allow_outside=allow_outside)


@contextlib.contextmanager
def _deep_enough() -> Iterator[None]:
    """Room on the call stack for MAX_NESTING levels of ops (three frames each) and the
    network's nesting: Python 3.11+ runs nested Python calls without the C stack, so a
    higher recursion limit is safe; deeper specs get a diagnostic (MAX_NESTING)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 4 * MAX_NESTING + 10_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def compile_text(text: str, file: str = "<string>", base_dir: Path | None = None,
                 allow_outside: bool = False) -> Program:
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark is no part of the text
        text = text[1:]
    with _deep_enough():
        try:
            return _compile_text(text, file, base_dir, allow_outside)
        except RecursionError:  # a safety net: every nesting nflc knows of has its own limit
            raise NflcError(f"{file} nests too deeply to compile", Span(file, 1, 1),
                            f"keep parentheses, repeats and definitions under {MAX_NESTING:,} levels",
                            sources={file: text}) from None


def _compile_text(text: str, file: str, base_dir: Path | None, allow_outside: bool) -> Program:
    bag = DiagnosticBag(sources={file: text})
    try:
        module = parse(text, file)
    except NflcError as exc:
        exc.sources.setdefault(file, text)
        raise
    top = file_scope(module, file, base_dir, allow_outside, bag)
    spaces: dict[str, SpaceIR] = {}
    srcs: dict[str, SpaceSource] = {}
    used: set[str] = set()  # names some space looked up
    space_defs = [i for i in module.items if isinstance(i, ast.SpaceDef)]
    for sd in space_defs:
        if sd.name in srcs:
            bag.error(f"space '{sd.name}' is defined twice", sd.span, "give each space its own name")
            continue
        src = SpaceSource(sd, space_scope(sd, top, bag), bag.sources)
        srcs[sd.name] = src
        lowered = lower_space(src, bag)
        used |= lowered.used
        ir = lowered.ir
        if ir is not None and ir.numeric:
            ir = _check_numeric(src, ir, bag)
        if ir is not None:
            spaces[sd.name] = ir
    if not space_defs:
        bag.error("no space is defined in this file", Span(file, 1, 1),
                  "write 'space NAME { input [...] cell {...} network = ... }'")
    warn_unused_top_level(module, srcs, used, bag, top)
    bag.raise_if_errors()
    return Program(file, spaces, srcs, bag.warnings, bag.sources)


def _check_numeric(src: SpaceSource, ir: SpaceIR, bag: DiagnosticBag) -> SpaceIR | None:
    """Lower the space once at every other value of each numeric choice (the others at their
    first): an error that only one value causes is reported with that value."""
    ok = True
    for name, values in ir.numeric.items():
        options = src.scope.consts[name].options or ()
        for value, expr in list(zip(values, options, strict=True))[1:]:
            sub = DiagnosticBag(sources=bag.sources)
            other = lower_space(src, sub, {name: value}, warn=False).ir
            errors = sub.errors
            where = f" ({expr.span.file}:{expr.span.line}:{expr.span.column})"
            if errors:
                d = errors[0]
                bag.error(f"with {name} = {value}{where}: {d.message}", d.span, d.hint)
                ok = False
                break
            changed = _changed_cell(ir, other)
            if changed:
                # an architecture's index decodes its cells' digits before it knows its
                # numeric values, so every value must give the cells the same choices
                bag.error(f"with {name} = {value}{where}, cell '{changed}' has other choices than with {name} = "
                          f"{values[0]} (its nodes, edges, ops or pick)", src.scope.consts[name].span,
                          "a numeric choice may change widths, not what a cell chooses: declare one space per "
                          "structure, or place the variants as separate cells")
                ok = False
                break
    return ir if ok else None


def _changed_cell(ir: SpaceIR, other: SpaceIR | None) -> str | None:
    """The first cell instance whose choices differ between two lowerings of a space."""
    if other is None:
        return None
    for inst in ir.instances:
        a = ir.cells[ir.instance_cell[inst]]
        b = other.cells.get(other.instance_cell.get(inst, ""))
        if b is None or a.choice_structure() != b.choice_structure():
            return a.definition or a.name
    if other.instances != ir.instances:
        return next(iter(set(other.instances) ^ set(ir.instances)))
    return None


@dataclass
class LoweredSpace:
    """One space's lowering: its IR (None after an error) and the names it looked up."""

    ir: SpaceIR | None
    used: set[str]


def lower_space(src: SpaceSource, bag: DiagnosticBag, overrides: dict[str, int] | None = None,
                warn: bool = True) -> LoweredSpace:
    """Run the passes on one space, recording diagnostics in ``bag``."""
    ctx = LowerContext(src, bag, dict(overrides or {}), warn)
    header = space_header(ctx)
    ctx.bias = header.bias
    cells = lower_cells(ctx)
    network = lower_network(ctx, header.input_shape, cells)
    if network is not None and not ctx.failed:
        check_lint(lint_stages(network.stages, {**(cells.plain or {}), **cells.variants}, network.instances)
                   + lint_shape_chain(network.stages), f"the network of space '{src.space.name}'")
    constraints = check_space(ctx, network.stages if network is not None else None)
    if ctx.failed or network is None or cells.plain is None or header.input_shape is None:
        return LoweredSpace(None, ctx.used)
    cv = ctx.const_values
    consts = {k: v for k in ctx.scope.consts if k in cv and type(v := cv[k]) is int}
    consts.update(ctx.overrides)
    stages = network.stages
    used_cells = {st.cell for st in stages if st.kind == "cell"}
    all_cells = {**cells.plain, **cells.variants}
    ir = SpaceIR(
        name=src.space.name, file=src.space.span.file, constants=consts, input_shape=list(header.input_shape),
        output_shape=stages[-1].shape_out if stages else list(header.input_shape), bias=header.bias,
        prune=header.prune, init=header.init, cells={k: v for k, v in all_cells.items() if k in used_cells},
        instances=list(network.instances), instance_cell=dict(network.instances), network=stages,
        budgets=constraints.budgets, requires=constraints.requires, unique=constraints.unique, numeric=header.numeric)
    check_lint(ir.lint(), f"space '{src.space.name}'")
    return LoweredSpace(ir, ctx.used)


def relower(src: SpaceSource, overrides: dict[str, int]) -> SpaceIR:
    """Lower a space again with some constants overridden (raises on any error)."""
    bag = DiagnosticBag(sources=src.sources)
    with _deep_enough():
        ir = lower_space(src, bag, overrides, warn=False).ir
    bag.raise_if_errors(SemanticError)
    assert ir is not None
    return ir
