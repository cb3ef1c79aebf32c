"""AST -> IR: name resolution, argument checks, shape inference, warnings.

All diagnostics of a file are collected in one :class:`DiagnosticBag` and raised together.
A space can be lowered again with constants overridden (``scale width`` solves a width by
lowering at candidate values), so the AST and its scope are kept in :class:`SpaceSource`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from nflc import ops
from nflc.errors import DiagnosticBag, NflcError, SemanticError, Span, decode_source, did_you_mean
from nflc.ir.model import (BudgetIR, CellIR, ChoiceIR, EdgeIR, NodeIR, PrimIR, RequireIR, SourceSpan,
                           SpaceIR, StageIR)
from nflc.syntax import ast
from nflc.syntax.parser import parse

REQUIRE_METRICS = {
    "paths": "end-to-end paths P of every cell",
    "depth": "largest path depth (parameterized edges on a path) of every cell",
    "min_depth": "smallest path depth of every cell",
    "mean_depth": "mean path depth of every cell",
    "skip_paths": "paths with no parameterized edge, in every cell",
    "dead_edges": "non-zero edges on no input-to-output path, in every cell",
    "edges": "non-zero edges on some input-to-output path (the computing graph's), in every cell",
    "params": "parameters of the whole network",
    "flops": "multiply-accumulates of the whole network",
}
BUDGET_METRICS = ("params", "flops")
INIT_SCHEMES = ("he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "torch_default")
_ID_RESERVED = set("|~+;")
_NODE_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # node op labels stand in ids as `op(0,1)`
MAX_DIGITS = 100  # every value in an expression stays below 10**100 in magnitude
MAX_REPEAT = 10_000  # largest repeat count `xN`
MAX_PRIMS = 100_000  # primitive ops one op expression may expand to (repeats multiply)
MAX_STAGES = 100_000  # stages (primitives and cell placements) of a network
MAX_NESTING = 5_000  # levels of parentheses, repeats and op-in-op definitions


def _sspan(span: Span | None) -> SourceSpan | None:
    return SourceSpan(file=span.file, line=span.line, column=span.column, end_line=span.end_line,
                      end_column=span.end_column) if span else None


class _Abort(Exception):
    """Stops lowering one construct after its error was recorded."""


# ------------------------------------------------------------------ files and scopes


@dataclass
class Scope:
    """What names mean in one space: ops, constants, cells (later layers shadow earlier)."""

    ops: dict[str, ast.OpDef] = field(default_factory=dict)
    op_origin: dict[str, str] = field(default_factory=dict)  # prelude / import / file / space
    consts: dict[str, ast.ConstDef] = field(default_factory=dict)
    const_origin: dict[str, str] = field(default_factory=dict)


@dataclass
class SpaceSource:
    """A space's AST with the scope it was defined in: enough to lower it again."""

    space: ast.SpaceDef
    scope: Scope
    sources: dict[str, str]


@functools.lru_cache(maxsize=1)
def _prelude() -> tuple[ast.OpDef, ...]:
    return tuple(i for i in parse(ops.PRELUDE, "<prelude>").items if isinstance(i, ast.OpDef))


def prelude_shape_rule(name: str) -> str:
    """The shape rule of a prelude op in words, found by compiling it on a [features] and a
    [channels, height, width] input (``nflc ops``)."""
    keeps = []
    for shape, text in (([16], "[d]"), ([4, 9, 9], "[c, h, w]")):
        try:
            ir = compile_text(f"space s {{ input {shape} network = {name} }}", "<ops>").spaces["s"]
        except NflcError:
            continue
        if ir.output_shape == shape:
            keeps.append(text)
    return "keeps the shape" if len(keeps) == 2 else f"keeps {keeps[0]} (only)" if keeps else "see its definition"


@dataclass
class Program:
    """Every space of a file (and the warnings its compilation produced)."""

    file: str
    spaces: dict[str, SpaceIR]
    sources_by_space: dict[str, SpaceSource]
    warnings: list
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
def _deep_enough():
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
    root = (base_dir or Path.cwd()).resolve()
    file_scope = Scope()
    for d in _prelude():
        file_scope.ops[d.name], file_scope.op_origin[d.name] = d, "prelude"
    top = (root / Path(file).name,) if base_dir is not None else ()  # the file itself, for cycles
    _load_imports(module, root, root, allow_outside, bag, file_scope, stack=top)
    _add_top_level(module, bag, file_scope, origin="file")
    spaces: dict[str, SpaceIR] = {}
    srcs: dict[str, SpaceSource] = {}
    space_defs = [i for i in module.items if isinstance(i, ast.SpaceDef)]
    for sd in space_defs:
        if sd.name in srcs:
            bag.error(f"space '{sd.name}' is defined twice", sd.span, "give each space its own name")
            continue
        src = SpaceSource(sd, _space_scope(sd, file_scope, bag), bag.sources)
        srcs[sd.name] = src
        ir = Lowerer(src, bag).lower()
        if ir is not None and ir.numeric:
            ir = _check_numeric(src, ir, bag)
        if ir is not None:
            spaces[sd.name] = ir
    if not space_defs:
        bag.error("no space is defined in this file", Span(file, 1, 1),
                  "write 'space NAME { input [...] cell {...} network = ... }'")
    _warn_unused_top_level(module, srcs, bag, file_scope)
    bag.raise_if_errors()
    return Program(file, spaces, srcs, bag.warnings, bag.sources)


def _check_numeric(src: SpaceSource, ir: SpaceIR, bag: DiagnosticBag) -> SpaceIR | None:
    """Lower the space once at every other value of each numeric choice (the others at their
    first): an error that only one value causes is reported with that value."""
    ok = True
    for name, values in ir.numeric.items():
        options = src.scope.consts[name].options
        for value, expr in list(zip(values, options, strict=True))[1:]:
            sub = DiagnosticBag(sources=bag.sources)
            Lowerer(src, sub, {name: value}, warn=False).lower()
            errors = sub.errors
            if errors:
                d = errors[0]
                where = f" ({expr.span.file}:{expr.span.line}:{expr.span.column})"
                bag.error(f"with {name} = {value}{where}: {d.message}", d.span, d.hint)
                ok = False
                break
    return ir if ok else None


def _load_imports(module: ast.Module, root: Path, here: Path, allow_outside: bool, bag: DiagnosticBag,
                  scope: Scope, stack: tuple[Path, ...], loaded: set[Path] | None = None) -> None:
    loaded = set() if loaded is None else loaded  # files already imported (a diamond imports once)
    for imp in (i for i in module.items if isinstance(i, ast.Import)):
        target = (here / imp.path).resolve()
        if not allow_outside and not target.is_relative_to(root):
            bag.error(f"import '{imp.path}' leaves the directory tree of the importing file ({root})", imp.span,
                      "move the file under that directory, or pass --allow-outside-imports")
            continue
        if target in stack:
            cycle = stack[stack.index(target):] + (target,)
            bag.error("import cycle: " + " -> ".join(p.name for p in cycle), imp.span,
                      "move what both files need into a third file that both import")
            continue
        if target in loaded:
            continue
        loaded.add(target)
        shown = _display_path(target)
        try:
            text = decode_source(target.read_bytes(), shown)
        except OSError as exc:
            bag.error(f"cannot import '{imp.path}': {exc.strerror or 'cannot read'}: {target}", imp.span,
                      "import paths are relative to the importing file")
            continue
        except NflcError as exc:  # not UTF-8: the byte's position in the imported file
            for d in exc.diagnostics:
                bag.add(d)
            bag.sources.update(exc.sources)
            bag.error_calls += 1
            continue
        bag.sources[shown] = text
        try:
            sub = parse(text, shown)
        except NflcError as exc:
            for d in exc.diagnostics:
                bag.add(d)
            bag.error_calls += 1
            continue
        _load_imports(sub, root, target.parent, allow_outside, bag, scope, stack + (target,), loaded)
        _add_top_level(sub, bag, scope, origin="import")


def _display_path(path: Path) -> str:
    """An imported file's name in diagnostics: relative to the working directory if below it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _add_top_level(module: ast.Module, bag: DiagnosticBag, scope: Scope, origin: str) -> None:
    for item in module.items:
        if isinstance(item, ast.OpDef):
            _define_op(item, scope, bag, origin)
        elif isinstance(item, ast.ConstDef):
            if item.options is not None:
                bag.error(f"numeric choice '{item.name}' is outside a space", item.span,
                          "a numeric choice is part of one space's architectures: move it into the space")
                continue
            if scope.const_origin.get(item.name) == origin:
                bag.error(f"constant '{item.name}' is defined twice", item.span)
            scope.consts[item.name], scope.const_origin[item.name] = item, origin


def _define_op(d: ast.OpDef, scope: Scope, bag: DiagnosticBag, origin: str) -> None:
    if d.name in ops.PRIMS:
        bag.error(f"'{d.name}' is a builtin op and cannot be redefined", d.name_span,
                  f"pick another name, e.g. 'my_{d.name}'; a choice can still be labelled '... as {d.name}'")
        return
    if scope.op_origin.get(d.name) == origin:
        bag.error(f"op '{d.name}' is defined twice", d.name_span, "rename one of them")
        return
    if scope.op_origin.get(d.name) == "prelude":
        bag.warning(f"op '{d.name}' shadows the builtin op '{d.name}' (from the prelude)", d.name_span,
                    f"pick another name, e.g. 'my_{d.name}'; 'nflc ops' lists the builtin ops")
    names = [p.name for p in d.params]
    for p in d.params:
        if names.count(p.name) > 1:
            bag.error(f"parameter '{p.name}' appears twice in op '{d.name}'", p.span)
            return
    scope.ops[d.name], scope.op_origin[d.name] = d, origin


def _space_scope(sd: ast.SpaceDef, file_scope: Scope, bag: DiagnosticBag) -> Scope:
    scope = Scope(dict(file_scope.ops), dict(file_scope.op_origin), dict(file_scope.consts),
                  dict(file_scope.const_origin))
    for item in sd.items:
        if isinstance(item, ast.OpDef):
            _define_op(item, scope, bag, "space")
        elif isinstance(item, ast.ConstDef):
            if scope.const_origin.get(item.name) == "space":
                bag.error(f"constant '{item.name}' is defined twice in space '{sd.name}'", item.span,
                          "remove one definition")
            scope.consts[item.name], scope.const_origin[item.name] = item, "space"
    return scope


def _warn_unused_top_level(module: ast.Module, srcs: dict[str, SpaceSource], bag: DiagnosticBag,
                           file_scope: Scope) -> None:
    used: set[str] = set()
    for src in srcs.values():
        used |= getattr(src, "used_names", set())
    for item in module.items:
        if isinstance(item, (ast.OpDef, ast.ConstDef)) and item.name not in used and srcs:
            kind = "op" if isinstance(item, ast.OpDef) else "constant"
            bag.warning(f"{kind} '{item.name}' is defined but never used", item.span)
    # an op no space uses is never expanded: its calls must still name ops (in some space,
    # since an op's names are looked up where it is used)
    unused = [d for name, d in file_scope.ops.items() if file_scope.op_origin[name] != "prelude" and name not in used]
    if unused:
        known = set(ops.PRIMS) | set(file_scope.ops)
        for src in srcs.values():
            known.update(i.name for i in src.space.items if isinstance(i, ast.OpDef))
        for d in unused:
            check_calls(d, known, bag)


def check_calls(d: ast.OpDef, known: set[str], bag: DiagnosticBag, cells: set[str] = frozenset()) -> None:
    """Report every call in op ``d``'s body that names no op in ``known`` (a walk with an
    explicit stack: bodies may nest thousands of levels)."""
    todo: list = [d.body]
    while todo:
        t = todo.pop()
        if isinstance(t, ast.OpSeq):
            todo.extend(reversed(t.items))
        elif isinstance(t, ast.Repeat):
            todo.append(t.body)
        elif t.name in cells:
            bag.error(f"cell '{t.name}' can only be used in the network, not inside an op", t.span)
        elif t.name not in known:
            bag.error(f"unknown op '{t.name}' in op '{d.name}'", t.span,
                      did_you_mean(t.name, known) or "'nflc ops' lists the builtin ops")

# ------------------------------------------------------------------ one space


class Lowerer:
    """Lowers one space; records diagnostics in the bag, returns None on error."""

    def __init__(self, src: SpaceSource, bag: DiagnosticBag, overrides: dict[str, int] | None = None,
                 warn: bool = True):
        self.src, self.bag, self.sd, self.scope = src, bag, src.space, src.scope
        self.overrides = dict(overrides or {})
        self.warn = warn
        self.const_values: dict[str, int | float | bool] = {}
        self.failed_consts: set[str] = set()
        self.used: set[str] = set()
        self.bias = True
        self.depth = 0  # nesting of the op expansion (MAX_NESTING)
        self.cell_shapes_checked: dict[tuple, bool] = {}  # (cell, shape) -> passed
        self.errors_before = bag.error_calls

    # -- expressions
    def eval(self, e: ast.Expr, local: dict[str, int | bool] | None = None) -> int | Fraction | bool:
        """The exact value of an expression: an int, a Fraction (not whole) or a bool.

        Post-order with an explicit stack: `1 + 1 + ... + 1` nests as deep as it is long."""
        todo: list[tuple[ast.Expr, bool]] = [(e, False)]
        vals: list = []
        while todo:
            node, ready = todo.pop()
            if isinstance(node, ast.Num):
                vals.append(node.value)
            elif isinstance(node, ast.Ref):
                if local and node.name in local:
                    vals.append(local[node.name])
                elif node.name in ("true", "false"):
                    vals.append(node.name == "true")
                else:
                    vals.append(self.const(node.name, node.span, local))
            elif isinstance(node, ast.Neg):
                if not ready:
                    todo += [(node, True), (node.operand, False)]
                    continue
                v = vals.pop()
                self._need_number(v, node.operand)
                vals.append(-v)
            elif not ready:
                todo += [(node, True), (node.right, False), (node.left, False)]
            else:
                b = vals.pop()
                a = vals.pop()
                vals.append(self._binop(node, a, b))
        return vals[0]

    def _binop(self, e: ast.BinOp, a, b) -> int | Fraction:
        self._need_number(a, e.left)
        self._need_number(b, e.right)
        if e.op == "+":
            v = a + b
        elif e.op == "-":
            v = a - b
        elif e.op == "*":
            v = a * b
        elif e.op == "**":
            if not isinstance(b, int) or not 0 <= b <= 64:
                self._fail(f"exponent {_show(b)} is out of range (a whole number 0..64)", e.span)
            if a != 0 and b * math.log10(abs(a)) > MAX_DIGITS:
                self._fail(f"{_show(a)} ** {b} has more than {MAX_DIGITS} digits", e.span)
            v = a**b
        elif b == 0:
            self._fail("division by zero", e.span)
        elif e.op == "//":
            v = a // b
        else:
            if isinstance(a, int) and isinstance(b, int) and a % b:
                self._fail(f"{a} / {b} is not a whole number", e.span, "use // for floor division")
            v = Fraction(a) / b
        return self._check_size(_exact(v), e.span)

    def _check_size(self, v, span: Span):
        if abs(v) >= 10**MAX_DIGITS:
            self._fail(f"a value here has more than {MAX_DIGITS} digits", span,
                       "numbers in a spec must stay below 10**100")
        return v

    def _need_number(self, v, e: ast.Expr) -> None:
        if isinstance(v, bool):
            self._fail("expected a number, not true/false", e.span)

    def const(self, name: str, span: Span, local=None) -> int | Fraction | bool:
        self.used.add(name)
        if name in self.overrides:
            return self.overrides[name]
        if name in self.const_values:
            return self.const_values[name]
        if name in self.failed_consts:  # already reported
            raise _Abort
        if name not in self.scope.consts:
            cands = list(self.scope.consts) + list(local or {})
            self._fail(f"unknown constant '{name}'", span, did_you_mean(name, cands) or "define it, e.g. 'width 256'")
        self._eval_consts(name)
        if name in self.failed_consts:
            raise _Abort
        return self.const_values[name]

    def _eval_consts(self, root: str) -> None:
        """Evaluate constant ``root`` after the constants it depends on, depth first with an
        explicit stack (a chain of thousands of constants needs no recursion); a cycle is an
        error at the reference that closes it."""
        if self.scope.consts[root].value is None:  # `c in {}`: reported by _numeric
            self.failed_consts.add(root)
            return
        path, on_path = [root], {root}
        deps = [iter(_refs(self.scope.consts[root].value))]
        while deps:
            ref = next(deps[-1], None)
            if ref is None:  # every dependency of path[-1] is evaluated (or failed)
                name = path.pop()
                on_path.discard(name)
                deps.pop()
                try:
                    self.const_values[name] = self.eval(self.scope.consts[name].value)
                except _Abort:
                    self.failed_consts.add(name)
                continue
            dep, where = ref
            if (dep in self.overrides or dep in self.const_values or dep in self.failed_consts
                    or dep not in self.scope.consts or self.scope.consts[dep].value is None):
                continue  # known, already reported, or reported when path[-1] is evaluated
            if dep in on_path:
                cycle = " -> ".join(path[path.index(dep):] + [dep])
                self.bag.error(f"constant '{dep}' depends on itself ({cycle})", where)
                self.failed_consts.update(path)
                for name in path:
                    self.used.add(name)
                return
            path.append(dep)
            on_path.add(dep)
            deps.append(iter(_refs(self.scope.consts[dep].value)))

    def eval_int(self, e: ast.Expr, what: str, local=None, minimum: int | None = None) -> int:
        v = self.eval(e, local)
        if isinstance(v, bool) or not isinstance(v, int):
            self._fail(f"{what} must be a whole number, got {_show(v)}", e.span,
                       "1.5M is fine (1500000); 1.5 is not" if isinstance(v, Fraction) else None)
        if minimum is not None and v < minimum:
            self._fail(f"{what} must be at least {minimum}, got {v}", e.span)
        return v

    def _fail(self, msg: str, span: Span | None, hint: str | None = None):
        self.bag.error(msg, span, hint)
        raise _Abort

    def _try(self, fn, *args):
        try:
            return fn(*args)
        except _Abort:
            return None

    # -- the space
    def lower(self) -> SpaceIR | None:
        sd = self.sd
        items = sd.items
        opts = [i for i in items if isinstance(i, ast.Option)]
        prune, init = False, "he_normal"
        for o in opts:
            if o.name == "bias":
                self.bias = o.value == "true"
            elif o.name == "prune":
                prune = True
            elif o.value not in INIT_SCHEMES:
                self.bag.error(f"unknown init scheme '{o.value}'", o.span,
                               did_you_mean(o.value, INIT_SCHEMES) or "one of: " + ", ".join(INIT_SCHEMES))
            else:
                init = o.value
        inputs = [i for i in items if isinstance(i, ast.InputStmt)]
        input_shape = None
        if not inputs:
            self.bag.error(f"space '{sd.name}' has no input shape", sd.span, "add e.g. 'input [784]' or 'input [3, 32, 32]'")
        else:
            for extra in inputs[1:]:
                self.bag.error("input is declared twice", extra.span, "keep one 'input [...]'")
            input_shape = self._try(lambda: tuple(self.eval_int(d, "an input dimension", minimum=1) for d in inputs[0].dims))
            if input_shape is not None and len(input_shape) not in (1, 3):
                self.bag.error(f"input shape {list(input_shape)} is neither [features] nor [channels, height, width]",
                               inputs[0].span)
                input_shape = None
        numeric = self._numeric()
        cells = self._lower_cells()
        nets = [i for i in items if isinstance(i, ast.NetworkDef)]
        if not nets:
            self.bag.error(f"space '{sd.name}' has no network", sd.span,
                           "add e.g. 'network = flatten >> linear(width) >> relu >> cell >> linear(classes)'")
        for extra in nets[1:]:
            self.bag.error("network is defined twice", extra.span, "keep one 'network = ...'")
        network = instances = None
        if nets and input_shape is not None and cells is not None:
            res = self._try(self._lower_network, nets[0], input_shape, cells)
            if res is not None:
                network, instances = res
        budgets = [b for b in (self._try(self._budget, b) for b in items if isinstance(b, ast.Budget)) if b]
        for extra in [b for b in items if isinstance(b, ast.Budget) and b.scale][1:]:
            self.bag.error("only one budget may scale a constant", extra.span, "keep one 'scale' budget")
        requires = [r for r in (self._try(self._require, r) for r in items if isinstance(r, ast.Require)) if r]
        uniques = [u for u in items if isinstance(u, ast.Unique)]
        for extra in uniques[1:]:
            self.bag.warning("'unique' is given more than once", extra.span, "keep one 'unique'")
        # evaluate every constant once, so a broken unused one is still reported
        used = set(self.used)
        for name in self._own("consts"):
            self._try(self.const, name, self.scope.consts[name].span)
        self.used = used
        cell_names = set(getattr(self, "cell_defs", {}))
        unused = [self.scope.ops[name] for name in self._own("ops") if name not in self.used]
        known = set(self.scope.ops) | set(ops.PRIMS) if unused else set()
        for d in unused:  # never expanded, so never checked
            check_calls(d, known, self.bag, cell_names)
        if self.warn:
            self._warnings(cells or {}, network, instances)
        self.src.used_names = self.used | self._referenced_names()
        if self.bag.error_calls > self.errors_before or network is None:
            return None
        cv = self.const_values
        consts = {k: cv[k] for k in [k for k in self.scope.consts if k in cv] if type(cv[k]) is int}
        consts.update({k: v for k, v in self.overrides.items()})
        used_cells = {st.cell for st in network if st.kind == "cell"}
        cells = {**cells, **self.variants}
        return SpaceIR(
            name=sd.name, file=sd.span.file, constants=consts, input_shape=list(input_shape),
            output_shape=network[-1].shape_out if network else list(input_shape), bias=self.bias, prune=prune,
            init=init, cells={k: v for k, v in cells.items() if k in used_cells}, instances=list(instances),
            instance_cell=dict(instances), network=network, budgets=budgets, requires=requires,
            unique=bool(uniques), numeric=numeric)

    def _own(self, kind: str) -> list[str]:
        """Names of the ops or constants this space defines itself (not the file's: a file
        with many spaces and many top-level definitions must not cost their product)."""
        cls, origin = (ast.OpDef, self.scope.op_origin) if kind == "ops" else (ast.ConstDef, self.scope.const_origin)
        return list(dict.fromkeys(i.name for i in self.sd.items if isinstance(i, cls) and origin.get(i.name) == "space"))

    def _referenced_names(self) -> set[str]:
        return self.used

    # -- numeric choices
    def _numeric(self) -> dict[str, list[int]]:
        """The space's own numeric choices (`c in {8, 16}`): name -> values."""
        out: dict[str, list[int]] = {}
        for d in self.sd.items:
            if not isinstance(d, ast.ConstDef) or d.options is None or self.scope.consts.get(d.name) is not d:
                continue
            if not d.options:
                self.bag.error(f"numeric choice '{d.name}' has no values", d.span,
                               f"list the values it chooses from, e.g. '{d.name} in {{8, 16, 32}}'")
                continue
            values: list[int] = []
            for e in d.options:
                v = self._try(self.eval_int, e, f"a value of '{d.name}'")
                if v is None:
                    continue
                if v in values:
                    self.bag.error(f"{v} appears twice in numeric choice '{d.name}'", e.span, "remove the duplicate")
                    continue
                values.append(v)
            out[d.name] = values
        return out

    # -- cells
    def _lower_cells(self) -> dict[str, CellIR] | None:
        out: dict[str, CellIR] = {}
        self.cell_defs: dict[str, ast.CellDef] = {}
        self.variants: dict[str, CellIR] = {}  # parameterized cells, one per argument tuple
        ok = True
        for cd in (i for i in self.sd.items if isinstance(i, ast.CellDef)):
            name = cd.name or "cell"
            if name in self.cell_defs:
                self.bag.error(f"cell '{name}' is defined twice", cd.span,
                               "name cells to have several: 'cell normal { ... }'")
                ok = False
                continue
            self.cell_defs[name] = cd
            if cd.params is not None:  # lowered where it is placed, with its arguments
                names = [p.name for p in cd.params]
                dup = [p for p in cd.params if names.count(p.name) > 1]
                if dup:
                    self.bag.error(f"parameter '{dup[0].name}' appears twice in cell '{name}'", dup[-1].span)
                    ok = False
                continue
            cell = self._try(self._lower_cell, cd, name)
            if cell is None:
                ok = False
            else:
                out[name] = cell
        return out if ok else None

    def _lower_cell(self, cd: ast.CellDef, name: str, local: dict | None = None,
                    variant: str | None = None) -> CellIR:
        local = local or {}
        if not cd.nodes:
            self._fail(f"cell '{name}' does not say how many nodes it has", cd.span, "add 'nodes 4' (X0 input .. X3 output)")
        if len(cd.nodes) > 1:
            self._fail(f"cell '{name}' declares its nodes twice", cd.nodes[1].span)
        ns = cd.nodes[0]
        if ns.names is not None:
            names = list(ns.names)
            dup = [n for n in names if names.count(n) > 1]
            if dup:
                self._fail(f"node '{dup[0]}' is named twice", ns.span)
        else:
            n = self.eval_int(ns.count, "the node count", local, minimum=2)
            if n > 64:
                self._fail(f"a cell of {n} nodes is too large (at most 64)", ns.span)
            names = [f"X{i}" for i in range(n)]
        n = len(names)
        if n < 2:
            self._fail("a cell needs at least 2 nodes (input and output)", ns.span)
        form = self._cell_settings(cd, name, local, n)
        channels = form["channels"]
        inputs = form["inputs"]
        concat = form["output"] == "concat"
        edges: dict[tuple[int, int], EdgeIR] = {}
        explicit: dict[tuple[int, int], Span] = {}
        for es in cd.edges:
            choices = self._try(self._lower_choices, es, local)
            if es.src is None:
                pairs = [(s, t) for t in range(inputs, n) for s in range(t)]
            else:
                s = self._try(self._node_index, es.src, names)
                t = self._try(self._node_index, es.dst, names)
                if s is None or t is None:
                    continue
                if t < inputs:
                    self.bag.error(f"edge {es.src.value} -> {es.dst.value} ends at an input of cell '{name}'", es.span,
                                   f"X0..X{inputs - 1} are the cell's inputs; edges end at X{inputs}..X{n - 1}")
                    continue
                if s >= t:
                    self.bag.error(f"edge {es.src.value} -> {es.dst.value} does not go forward", es.span,
                                   "edges go from an earlier node to a later one (the cell is a DAG in node order)")
                    continue
                pairs = [(s, t)]
                if (s, t) in explicit:
                    self.bag.warning(f"edge {s} -> {t} is given again; the later statement wins", es.span)
                explicit[(s, t)] = es.span
            if choices is None:
                continue
            for s, t in pairs:
                edges[(s, t)] = EdgeIR(src=s, dst=t, choices=choices, span=_sspan(es.span))
        if not cd.edges:
            self.bag.warning(f"cell '{name}' has no edges: its output is always zero", cd.span)
        node_ops = self._lower_node_ops(cd, name, names, local, edges) if cd.node_ops else []
        clash = "inputs 2" if inputs > 1 else "output concat" if concat else "pick" if form["pick"] is not None else \
            "stride 2" if form["stride"] > 1 else None
        if node_ops and clash:
            self._fail(f"node cell '{name}' cannot also have '{clash}'", cd.node_ops[0].span,
                       "node cells (NAS-Bench-101's) and DARTS's cells are separate forms")
        if form["pick"] is not None:
            self._pick_edges(cd, name, names, form, edges)
        if form["stride"] > 1:
            edges = {k: self._strided(e, inputs, name) for k, e in edges.items()}
        return CellIR(name=variant or name, nodes=n, node_names=names,
                      edges=[edges[k] for k in sorted(edges, key=lambda st: (st[1], st[0]))], span=_sspan(cd.span),
                      channels=channels, definition=name if variant else None, node_ops=node_ops,
                      inputs=inputs, output=form["output"], pick=form["pick"], stride=form["stride"])

    def _cell_settings(self, cd: ast.CellDef, name: str, local: dict, n: int) -> dict:
        """The `NAME EXPR` statements of a cell: channels, inputs, output, pick, stride."""
        known = {"channels": None, "inputs": 1, "output": "sum", "pick": None, "stride": 1}
        seen: dict[str, ast.ChannelsStmt] = {}
        form = dict(known)
        for st in cd.channels:
            if st.keyword not in known:
                self._fail(f"unknown cell statement '{st.keyword}'", st.keyword_span,
                           did_you_mean(st.keyword, [*known, "nodes", "edge", "node"]) or
                           "a cell has 'nodes', 'edge', 'node', 'channels', 'inputs', 'output', 'pick' and 'stride' statements")
            if st.keyword in seen:
                self._fail(f"cell '{name}' declares its {st.keyword} twice", st.span, f"keep one '{st.keyword}'")
            seen[st.keyword] = st
            if st.keyword == "output":
                how = st.value.name if isinstance(st.value, ast.Ref) else None
                if how not in ("sum", "concat"):
                    self._fail("a cell's output is 'sum' (its last node) or 'concat' (all intermediate nodes)",
                               st.value.span, "write 'output concat'")
                form["output"] = how
            elif st.keyword == "channels":
                form["channels"] = self.eval_int(st.value, "a cell's channels", local, minimum=1)
            else:
                form[st.keyword] = self.eval_int(st.value, f"a cell's {st.keyword}", local, minimum=1)
        if form["inputs"] > 2:
            self._fail(f"cell '{name}' has {form['inputs']} inputs; a cell takes one input or two (DARTS's: the outputs "
                       "of the two cells before it)", seen["inputs"].value.span, "write 'inputs 2'")
        if form["inputs"] == 2:
            if form["output"] != "concat":
                self._fail(f"two-input cell '{name}' needs 'output concat'", seen["inputs"].span,
                           "add 'output concat': the output concatenates its intermediate nodes, as DARTS's cells do")
            if form["channels"] is None:
                self._fail(f"two-input cell '{name}' needs 'channels'", seen["inputs"].span,
                           "add 'channels c': both inputs are preprocessed to c channels")
        if form["stride"] not in (1, 2):
            self._fail(f"stride {form['stride']}: a cell's stride is 1 or 2 (a reduction cell)", seen["stride"].value.span)
        if form["pick"] is not None and form["output"] != "concat":
            self._fail("'pick' chooses the inputs of intermediate nodes of a cell with 'output concat'",
                       seen["pick"].span, "add 'output concat'")
        if form["stride"] > 1 and form["output"] != "concat":
            self._fail("'stride 2' halves a cell whose output concatenates its nodes", seen["stride"].span,
                       "add 'output concat'")
        first = form["inputs"]
        if n - first < 1:
            self._fail(f"cell '{name}' has {n} nodes and {first} inputs: no intermediate node", cd.nodes[0].span,
                       f"raise 'nodes' to at least {first + 1}")
        self._pick_stmt = seen.get("pick")
        return form

    def _pick_edges(self, cd: ast.CellDef, name: str, names: list[str], form: dict,
                    edges: dict[tuple[int, int], EdgeIR]) -> None:
        """A `pick K` cell: check every intermediate node has K candidate edges, and put an
        implicit `zero` (not picked) first on each edge, so edge choices index as elsewhere."""
        k, stmt = form["pick"], self._pick_stmt
        for t in range(form["inputs"], len(names)):
            have = sum(1 for (_, d) in edges if d == t)
            if have < k:
                self._fail(f"node {names[t]} of cell '{name}' has {have} incoming edge{'s' * (have != 1)} but picks {k}",
                           stmt.span, f"lower 'pick' to {have} or give node {names[t]} more edges")
        for key, e in edges.items():
            zero = [c for c in e.choices if any(p.name == "zero" for p in c.prim_tuple())]
            if zero:
                self._fail(f"edge {key[0]} -> {key[1]} of cell '{name}' offers '{zero[0].label}', which is no edge; "
                           f"with 'pick' an edge is absent when its node does not pick it", _span(zero[0].span) or stmt.span,
                           "leave zero out of the choices")
            none = ChoiceIR(label="none", prims=[PrimIR(name="zero")], span=e.span)
            edges[key] = e.model_copy(update={"choices": [none, *e.choices]})

    def _strided(self, e: EdgeIR, inputs: int, name: str) -> EdgeIR:
        """A reduction cell's edge: from an input, the op's first primitive with a stride gets 2."""
        if e.src >= inputs:
            return e
        out = []
        for c in e.choices:
            prims = list(c.prims)
            if any(p.name == "zero" for p in prims):
                out.append(c)
                continue
            at = next((i for i, p in enumerate(prims) if any(ps.name == "stride" for ps in ops.PRIMS[p.name].params)), None)
            if at is None or prims[at].args.get("stride", 1) != 1:
                why = "has no primitive that takes a stride" if at is None else "already has a stride"
                self._fail(f"op '{c.label}' on edge {e.src} -> {e.dst} of reduction cell '{name}' {why}, so it cannot "
                           "halve the cell's input", _span(c.span) or _span(e.span),
                           "DARTS halves a skip with factorized_reduce: 'factorized_reduce as skip_connect'")
            prims[at] = PrimIR(name=prims[at].name, args={**prims[at].args, "stride": 2})
            out.append(c.model_copy(update={"prims": prims}))
        return e.model_copy(update={"choices": out})

    def _lower_node_ops(self, cd: ast.CellDef, name: str, names: list[str], local: dict,
                        edges: dict[tuple[int, int], EdgeIR]) -> list[NodeIR]:
        """`node * : ...` statements: the op choices of a node cell's intermediate nodes."""
        n = len(names)
        found: dict[int, NodeIR] = {}
        ok = True
        for ns in cd.node_ops:
            if ns.keyword != "node":
                self._fail(f"unknown cell statement '{ns.keyword}'", ns.keyword_span,
                           did_you_mean(ns.keyword, ["node", "nodes", "edge"]) or
                           "a cell has 'nodes', 'edge', 'node' and 'channels' statements")
            if n < 3:
                self._fail(f"cell '{name}' has no intermediate node to choose an op", ns.span,
                           "a node cell needs at least 3 nodes (input, intermediates, output)")
            if ns.node is None:
                targets = list(range(1, n - 1))
            else:
                t = self._try(self._node_index, ns.node, names)
                if t is None:
                    ok = False
                    continue
                if t in (0, n - 1):
                    self.bag.error(f"node {ns.node.value} is the cell's {'input' if t == 0 else 'output'}; only "
                                   "intermediate nodes choose an op", ns.node.span,
                                   f"choose ops for nodes 1..{n - 2}, or 'node * : ...' for all of them")
                    ok = False
                    continue
                targets = [t]
            choices = self._try(self._lower_choices, ns, local)
            if choices is None:
                ok = False
                continue
            bad = [c for c in choices if not _NODE_LABEL.fullmatch(c.label)]
            if bad:
                self.bag.error(f"the node op '{bad[0].label}' cannot name itself in architecture ids", _span(bad[0].span),
                               f"give it a name: '{bad[0].label} as NAME'")
                ok = False
                continue
            for c in choices:
                if any(p.name == "zero" for p in c.prim_tuple()):
                    self.bag.error(f"node op '{c.label}' is zero: a node cell's nodes always compute", _span(c.span),
                                   "leave a node out by its edges (they are 'zero | skip')")
                    ok = False
            for t in targets:
                found[t] = NodeIR(node=t, choices=choices, span=_sspan(ns.span))
        for (s, t), e in sorted(edges.items()):
            for c in e.choices:
                if any(p.name not in ("zero", "skip") for p in c.prim_tuple()) or len(c.prims) > 1:
                    self.bag.error(f"edge {s} -> {t} of node cell '{name}' applies '{c.label}'; in a node cell an "
                                   "edge only exists or not", _span(c.span) or _span(e.span),
                                   "write 'edge * : zero | skip' and put the ops on the nodes: 'node * : ...'")
                    ok = False
                    break
            if [c.prim_tuple()[0].name for c in e.choices] not in (["zero"], ["skip"], ["zero", "skip"]):
                if ok:
                    self.bag.error(f"edge {s} -> {t} of node cell '{name}' must be 'zero', 'skip' or 'zero | skip' "
                                   "(in this order)", _span(e.span))
                ok = False
        missing = [t for t in range(1, n - 1) if t not in found]
        if ok and missing:
            self._fail(f"node {names[missing[0]]} of node cell '{name}' chooses no op", cd.span,
                       "give every intermediate node its ops: 'node * : ...'")
        if not ok:
            raise _Abort
        return [found[t] for t in range(1, n - 1)]

    def _node_index(self, ref: ast.NodeRef, names: list[str]) -> int:
        n = len(names)
        if isinstance(ref.value, int):
            if not 0 <= ref.value < n:
                self._fail(f"node {ref.value} is out of range: this cell has nodes 0..{n - 1}", ref.span,
                           f"raise 'nodes' to {ref.value + 1} or use a node below {n}")
            return ref.value
        if ref.value in names:
            return names.index(ref.value)
        if ref.value[:1].isdigit():
            self._fail(f"node '{ref.value}' is not a node number", ref.span, f"nodes are numbered 0..{n - 1}")
        if ref.value.startswith("X") and ref.value[1:].isdigit():
            return self._node_index(ast.NodeRef(int(ref.value[1:]), ref.span), names)
        self._fail(f"unknown node '{ref.value}'", ref.span, did_you_mean(ref.value, names) or f"nodes are {', '.join(names)}")

    def _lower_choices(self, es: ast.EdgeStmt, local: dict | None = None) -> list[ChoiceIR]:
        out: list[ChoiceIR] = []
        seen: dict[str, Span] = {}
        ok = True
        for item in es.choices:
            prims = self._try(self._expand_seq, item.op, dict(local or {}), (), False)
            if prims is None:
                ok = False
                continue
            label = item.label or item.op.text
            if label in seen:
                self.bag.error(f"the choice '{label}' appears twice on this edge", item.span,
                               "remove the duplicate, or tell them apart with 'as NAME'")
                ok = False
                continue
            if _ID_RESERVED & set(label):
                self.bag.error(f"the choice '{label}' cannot name itself in architecture ids (it contains one of | ~ + ;)",
                               item.span, f"give it a name: '{item.op.text} as NAME'")
                ok = False
                continue
            seen[label] = item.span
            out.append(ChoiceIR(label=label, prims=[PrimIR(name=p.name, args=dict(p.args)) for p in prims],
                                aliases=self._aliases(label, prims), span=_sspan(item.span)))
        if not ok:
            raise _Abort
        return out

    def _aliases(self, label: str, prims: tuple[ops.Prim, ...]) -> list[str]:
        names = []
        for name in (d.name for d in _prelude()):
            d = self.scope.ops[name]
            if self.scope.op_origin.get(name) == "prelude" and name != label and not d.params:
                if self._try(self._expand_seq, d.body, {}, (), False) == prims:
                    names.append(name)
        for builtin in ("zero", "skip"):
            if builtin != label and prims == (ops.Prim(builtin),):
                names.append(builtin)
        return names

    # -- op expressions -> primitives
    def _expand_seq(self, seq: ast.OpSeq, local: dict, stack: tuple[str, ...], allow_cells: bool) -> tuple[ops.Prim, ...]:
        out: list[ops.Prim] = []
        for term in seq.items:
            out.extend(self._expand_term(term, local, stack, allow_cells))
            if len(out) > MAX_PRIMS:
                self._fail(f"this op expands to more than {MAX_PRIMS:,} primitive ops", seq.span,
                           "lower its repeat counts")
        return tuple(out)

    def _expand_term(self, term, local, stack, allow_cells) -> tuple[ops.Prim, ...]:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                self._fail(f"ops nest more than {MAX_NESTING:,} levels deep (parentheses, repeats and op definitions)",
                           term.span, "flatten the expression, or define fewer ops in terms of each other")
            if isinstance(term, ast.OpSeq):
                return self._expand_seq(term, local, stack, allow_cells)
            if isinstance(term, ast.Repeat):
                self._check_repeat(term)
                if term.mode is not None:
                    self._fail(f"'{term.mode}' applies to cells in the network only", term.span)
                body = self._expand_term(term.body, local, stack, allow_cells)
                if len(body) * term.count > MAX_PRIMS:
                    self._fail(f"this repeat expands to {len(body) * term.count:,} primitive ops, more than "
                               f"{MAX_PRIMS:,}", term.span, "lower the repeat count")
                return body * term.count
            return self._expand_call(term, local, stack)
        finally:
            self.depth -= 1

    def _check_repeat(self, term: ast.Repeat) -> None:
        if term.count < 1:
            self._fail("a repeat count must be at least 1", term.span)
        if term.count > MAX_REPEAT:
            self._fail(f"a repeat count must be at most {MAX_REPEAT:,}, got {term.count:,}", term.span)

    def _expand_call(self, call: ast.OpCall, local: dict, stack: tuple[str, ...]) -> tuple[ops.Prim, ...]:
        name = call.name
        if name in self.scope.ops:
            self.used.add(name)
            d = self.scope.ops[name]
            if name in stack:
                self._fail(f"op '{name}' is defined in terms of itself ({' -> '.join(stack + (name,))})", call.span)
            params = d.params
            bound = self._bind_args(call, [(p.name, p.default) for p in params], local, name)
            return self._expand_seq(d.body, bound, stack + (name,), False)
        if name in ops.PRIMS:
            spec = ops.PRIMS[name]
            bound = self._bind_args(call, [(p.name, p.default) for p in spec.params], local, name, spec)
            args = tuple((p.name, bound[p.name]) for p in spec.params if p.name in bound)
            return (ops.Prim(name, args),)
        if name == "cell" or name in getattr(self, "cell_defs", {}):
            self._fail(f"cell '{name}' can only be used in the network, not inside an op", call.span)
        cands = list(self.scope.ops) + list(ops.PRIMS)
        self._fail(f"unknown op '{name}'", call.span, did_you_mean(name, cands) or "see 'nflc ops' for the builtin ops")

    def _bind_args(self, call: ast.OpCall, params, local, name, spec: ops.PrimSpec | None = None) -> dict:
        names = [p for p, _ in params]
        if len(call.args) > len(params):
            sig = ", ".join(names) or "no arguments"
            self._fail(f"'{name}' takes {len(params)} argument{'s' * (len(params) != 1)} ({sig}) but {len(call.args)} were given",
                       call.span)
        values: dict[str, object] = {}
        for (pname, _), arg in zip(params, call.args, strict=False):  # the rest default
            values[pname] = (arg, local)
        for kw in call.kwargs:
            if kw.name not in names:
                self._fail(f"'{name}' has no parameter '{kw.name}'", kw.span,
                           did_you_mean(kw.name, names) or f"its parameters are: {', '.join(names) or 'none'}")
            if kw.name in values:
                self._fail(f"'{kw.name}' is given twice", kw.span)
            values[kw.name] = (kw.value, local)
        out: dict[str, int | bool] = {}
        types = {p.name: p.type for p in spec.params} if spec else {}
        for pname, default in params:
            if pname in values:
                expr, env = values[pname]
                v = self.eval(expr, env)
                if types.get(pname) == "bool" and not isinstance(v, bool):
                    self._fail(f"'{pname}' of '{name}' must be true or false, got {_show(v)}", expr.span)
                if types.get(pname) == "int" and (isinstance(v, bool) or not isinstance(v, int)):
                    self._fail(f"'{pname}' of '{name}' must be a whole number, got {_show(v)}", expr.span)
                if types.get(pname) == "int" and v < (0 if pname == "padding" else 1):
                    self._fail(f"'{pname}' of '{name}' must be positive, got {v}", expr.span)
                if spec is not None and v is True and any(p.name == pname and p.default == "true_unset" for p in spec.params):
                    continue  # `affine=true` is `batchnorm` itself: one text, one label, one hash
                out[pname] = v
            elif spec is None:
                if default is None:
                    self._fail(f"'{name}' needs its argument '{pname}'", call.span,
                               f"call it as {name}({', '.join(names)})")
                out[pname] = self.eval(default, dict(out))  # the op's own scope: constants, earlier parameters
            elif default == "required":
                self._fail(f"'{name}' needs its argument '{pname}'", call.span, f"e.g. {name}({pname}=3)" if pname == "k" else None)
            elif default == "same_padding":
                # (k - 1) // 2: keeps the size for odd k at stride 1 and never grows it for
                # even k, so max_pool(2, stride=2) halves a map (k // 2 would pad it by one)
                out[pname] = (int(out.get("k", 1)) - 1) // 2
            elif default == "space_bias":
                out[pname] = self.bias
            elif default not in ("in_channels", "true_unset"):
                out[pname] = default
        return out

    # -- the macro network
    def _lower_network(self, net: ast.NetworkDef, input_shape, cells: dict[str, CellIR]):
        stages: list[StageIR] = []
        instances: dict[str, str] = {}
        shape = tuple(input_shape)

        scopes: dict[tuple[int, str], str] = {}  # (shared scope, cell) -> its instance
        n_scopes = [0]
        prev_cell_input: list[tuple | None] = [None]  # a two-input cell's X0: the previous cell's input

        # mode: None, every placement of a cell shares one choice (the default);
        # ("independent",), every placement chooses on its own;
        # ("shared", k), placements in shared scope k (a `shared` repeat inside an
        # `independent` one) share one choice, apart from the placements outside it.
        def visit(term, shape, mode):
            self.depth += 1
            try:
                if self.depth > MAX_NESTING:
                    self._fail(f"the network nests more than {MAX_NESTING:,} levels deep", term.span,
                               "flatten the expression")
                return visit_term(term, shape, mode)
            finally:
                self.depth -= 1

        def visit_term(term, shape, mode):
            if isinstance(term, ast.OpSeq):
                for t in term.items:
                    shape = visit(t, shape, mode)
                return shape
            if isinstance(term, ast.Repeat):
                self._check_repeat(term)
                if term.mode is not None and not _mentions_cell(term.body, self.cell_defs):
                    self._fail(f"'{term.mode}' repeats need a cell to repeat", term.span,
                               f"'{term.mode}' says whether cell placements share their choice; drop it here")
                if term.mode == "independent":
                    mode = ("independent",)
                elif term.mode == "shared" and mode is not None:
                    mode = ("shared", n_scopes[0])
                    n_scopes[0] += 1
                for _ in range(term.count):
                    shape = visit(term.body, shape, mode)
                    if len(stages) > MAX_STAGES:
                        self._fail(f"the network has more than {MAX_STAGES:,} stages", term.span,
                                   "lower the repeat count")
                return shape
            name = term.name
            if name in self.cell_defs and name not in self.scope.ops:
                cd = self.cell_defs[name]
                if cd.params is None and term.has_parens:
                    self._fail(f"cell '{name}' takes no arguments", term.span,
                               f"give it parameters to take some: 'cell {name}(c) {{ ... }}'")
                self.used.add(name)
                if cd.params is None:
                    if name not in cells:  # its own errors are reported
                        raise _Abort
                    cell = cells[name]
                else:
                    cell = self._cell_variant(cd, name, term)
                if mode is None:
                    inst = name
                elif mode[0] == "shared" and (mode[1], name) in scopes:
                    inst = scopes[mode[1], name]
                else:
                    inst = f"{name}#{len(instances)}"
                    if mode[0] == "shared":
                        scopes[mode[1], name] = inst
                if inst in instances and instances[inst] != cell.name:
                    first = self.variants.get(instances[inst]) or cells[instances[inst]]
                    if _edge_structure(first) != _edge_structure(cell):
                        self._fail(f"the placements of cell '{name}' share one choice but their edges differ "
                                   f"({instances[inst]} and {cell.name})", term.span,
                                   "keep the node count and the edges independent of the cell's arguments, or "
                                   "place them in an 'independent' repeat")
                instances.setdefault(inst, cell.name)
                self._check_cell_shape(cell, shape, term.span)
                out_shape = cell.output_shape(shape)
                extra = self._preprocess(cell, prev_cell_input[0] or shape, shape, term.span) if cell.inputs > 1 else {}
                stages.append(StageIR(kind="cell", cell=cell.name, instance=inst, shape_in=list(shape),
                                      shape_out=list(out_shape), span=_sspan(term.span), **extra))
                prev_cell_input[0] = shape
                return out_shape
            if name == "cell" and not self.cell_defs:
                self._fail("the network uses 'cell' but the space defines no cell", term.span,
                           "add 'cell { nodes 4  edge * : zero | skip | linear }'")
            if name not in self.scope.ops and name not in ops.PRIMS and name not in self.cell_defs:
                cands = list(self.cell_defs) + list(self.scope.ops) + list(ops.PRIMS)
                self._fail(f"unknown op or cell '{name}'", term.span, did_you_mean(name, cands))
            for p in self._expand_call(term, {}, ()):
                p = ops.bind(p, shape)
                try:
                    out_shape, params, flops = ops.seq_cost((p,), shape)
                except ops.ShapeError as exc:
                    msg, hint = _shape_message(exc, shape)
                    self._fail(msg, term.span, hint)
                stages.append(StageIR(kind="prim", prim=PrimIR(name=p.name, args=dict(p.args)), shape_in=list(shape),
                                      shape_out=list(out_shape), params=params, flops=flops, span=_sspan(term.span)))
                if len(stages) > MAX_STAGES:
                    self._fail(f"the network has more than {MAX_STAGES:,} stages", term.span, "lower its repeat counts")
                shape = out_shape
            return shape

        visit(net.body, shape, None)
        return stages, instances

    def _preprocess(self, cell: CellIR, prev, shape, span: Span) -> dict:
        """DARTS's preprocessing of a two-input cell's inputs to its channels: X1 (its input)
        relu >> conv1x1 >> batchnorm; X0 (the previous cell's input) the same when its map
        has X1's size, a stride-2 factorized_reduce when it is twice as large."""
        c = cell.channels
        prev, shape = tuple(prev), tuple(shape)
        if len(shape) != 3 or len(prev) != 3:
            self._fail(f"two-input cell '{cell.name}' needs image-shaped inputs [channels, height, width], got "
                       f"{list(shape)}", span)
        conv = (ops.Prim("relu"), ops.Prim("conv2d", (("k", 1), ("out", c), ("stride", 1), ("padding", 0), ("bias", False))),
                ops.Prim("batchnorm"))
        if prev[1:] == shape[1:]:
            pre0: tuple[ops.Prim, ...] = conv
        elif prev[1:] == tuple(2 * n for n in shape[1:]):
            pre0 = (ops.Prim("factorized_reduce", (("out", c), ("stride", 2))),)
        else:
            self._fail(f"cell '{cell.name}' takes X0 from the input of the cell before it, {list(prev)}, whose map is "
                       f"neither its input's {list(shape)} nor twice as large", span,
                       "between two-input cells only a reduction (halving) may change the map size")
        params = flops = 0
        pre = []
        for prims, at in ((pre0, prev), (conv, shape)):
            try:
                out, p, f = ops.seq_cost(prims, at)
            except ops.ShapeError as exc:
                msg, hint = _shape_message(exc, at)
                self._fail(f"preprocessing an input of cell '{cell.name}': {msg}", span, hint)
            assert out == (c, *shape[1:])
            params, flops = params + p, flops + f
            pre.append([PrimIR(name=q.name, args=dict(q.args)) for q in prims])
        return {"shape_prev": list(prev), "preprocess": pre, "params": params, "flops": flops}

    def _check_cell_shape(self, cell: CellIR, shape, span: Span) -> None:
        key = (cell.name, tuple(shape))
        checked = self.cell_shapes_checked.get(key)
        if checked is None:
            try:
                self._check_cell_shape_once(cell, shape, span)
                checked = self.cell_shapes_checked[key] = True
            except _Abort:
                checked = self.cell_shapes_checked[key] = False
        if not checked:
            raise _Abort

    def _check_cell_shape_once(self, cell: CellIR, shape, span: Span) -> None:
        bad = False
        if cell.is_node_cell:  # node ops keep the node's shape (its channels vary per architecture)
            if len(shape) != 3:
                self._fail(f"node cell '{cell.name}' needs an image-shaped input [channels, height, width], "
                           f"got {list(shape)}", span)
            seen: set = set()
            for nd in cell.node_ops:
                for c in nd.choices:
                    if c.span in seen:  # `node *` shares its choices: each is reported once
                        continue
                    seen.add(c.span)
                    where = _span(c.span) or span
                    for inner in (tuple(cell.node_shapes(shape)[-1]), (1, *shape[1:])):
                        try:
                            out = ops.seq_cost(c.prim_tuple(), inner, inner[0])[0]
                        except ops.ShapeError as exc:
                            msg, hint = _shape_message(exc, inner)
                            self.bag.error(f"node op '{c.label}' in cell '{cell.name}' cannot take {list(inner)}: {msg}",
                                           where, hint)
                            bad = True
                            break
                        if tuple(out) != inner:
                            self.bag.error(f"node op '{c.label}' in cell '{cell.name}' changes the shape {list(inner)} "
                                           f"-> {list(out)}", where, "a node op must keep its node's shape, whose "
                                           "channels vary per architecture: leave 'out' to default to them")
                            bad = True
                            break
            if bad:
                raise _Abort
            return
        nodes = cell.node_shapes(shape)
        reported: set[tuple] = set()
        for e in cell.edges:
            src, want = nodes[e.src], nodes[e.dst]
            for c in e.choices:  # `edge *` shares its choices: each is reported once
                where = _span(c.span) or span
                prims = c.prim_tuple()
                if any(p.name == "zero" for p in prims):
                    continue  # contributes nothing, of whatever shape the node has
                key = (c.span, src)
                if key in reported:
                    continue
                try:
                    out = ops.seq_cost(prims, tuple(src), cell.channels)[0]
                except ops.ShapeError as exc:
                    msg, hint = _shape_message(exc, src)
                    what = "the cell's shape" if src == nodes[0] else f"node X{e.src}'s shape"
                    self.bag.error(f"op '{c.label}' in cell '{cell.name}' cannot take {what} {list(src)}: {msg}",
                                   where, hint)
                    reported.add(key)
                    bad = True
                    continue
                if cell.channels is not None and list(out) != list(want):
                    reported.add(key)
                    self.bag.error(f"op '{c.label}' on edge {e.src} -> {e.dst} of cell '{cell.name}' gives {list(out)} "
                                   f"from {list(src)}, but node X{e.dst} has shape {list(want)}", where,
                                   f"every non-zero edge into a node must give the node's shape ({cell.channels} "
                                   "channels, the cell's 'channels'); leave 'out' to default to it")
                    bad = True
                    continue
                if cell.channels is None and list(out) != list(shape):
                    self.bag.error(f"op '{c.label}' in cell '{cell.name}' changes the shape {list(shape)} -> {list(out)}",
                                   where, "cell nodes are sums of their edges, so every edge op must keep the shape")
                    bad = True
        if bad:
            raise _Abort

    def _cell_variant(self, cd: ast.CellDef, name: str, call: ast.OpCall) -> CellIR:
        """A parameterized cell lowered with the arguments of one placement (cached)."""
        bound = self._bind_args(call, [(p.name, p.default) for p in cd.params], {}, name)
        for k, v in bound.items():
            if isinstance(v, bool) or not isinstance(v, int):
                self._fail(f"argument '{k}' of cell '{name}' must be a whole number, got {_show(v)}", call.span)
        key = f"{name}(" + ", ".join(f"{k}={v}" for k, v in bound.items()) + ")"
        if key not in self.variants:
            errors = self.bag.error_calls
            cell = self._try(self._lower_cell, cd, name, bound, key)
            if cell is None or self.bag.error_calls > errors:
                raise _Abort
            self.variants[key] = cell
        return self.variants[key]

    # -- budgets and constraints
    def _budget(self, b: ast.Budget) -> BudgetIR:
        if b.metric not in BUDGET_METRICS:
            self._fail(f"unknown budget metric '{b.metric}'", b.metric_span,
                       did_you_mean(b.metric, BUDGET_METRICS) or "budgets are on params or flops")
        value = self.eval_int(b.value, "the budget", minimum=1)
        tol = 0.0
        if b.tolerance is not None:
            t = self.eval(b.tolerance)
            if isinstance(t, bool) or t < 0:
                self._fail("the tolerance must be a non-negative number", b.tolerance.span)
            tol = float(value * Fraction(t) / 100 if b.percent else t)
        if b.scale is not None:
            if b.scale not in self.scope.consts:
                self._fail(f"'scale {b.scale}': no constant named '{b.scale}'", b.scale_span,
                           did_you_mean(b.scale, self.scope.consts) or "scale names the constant to solve for, e.g. 'scale width'")
            if b.scale in self.scope.consts and self.scope.consts[b.scale].options is not None:
                self._fail(f"'scale {b.scale}': '{b.scale}' is a numeric choice, not a constant to solve for",
                           b.scale_span, "scale a plain constant ('width 64')")
            v = self.const(b.scale, b.scale_span)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                self._fail(f"'scale {b.scale}': the constant must be a positive whole number, got {_show(v)}",
                           b.scale_span, "scale solves for a width or a count, e.g. 'width 64 ... scale width'")
            if b.cmp != "==":
                self._fail("'scale' solves for a target, so the budget must use '=='", b.span,
                           f"write 'budget {b.metric} == {b.value.text if isinstance(b.value, ast.Num) else '...'} +- 2% scale {b.scale}'")
            self.used.add(b.scale)
        return BudgetIR(metric=b.metric, cmp=b.cmp, value=value, tolerance=tol, scale=b.scale, span=_sspan(b.span))

    def _require(self, r: ast.Require) -> RequireIR:
        if r.metric not in REQUIRE_METRICS:
            self._fail(f"unknown constraint metric '{r.metric}'", r.metric_span,
                       did_you_mean(r.metric, REQUIRE_METRICS) or "one of: " + ", ".join(REQUIRE_METRICS))
        v = self.eval(r.value)
        if isinstance(v, bool):
            self._fail("a constraint compares with a number", r.value.span)
        return RequireIR(metric=r.metric, cmp=r.cmp, value=float(v), span=_sspan(r.span))

    def _warnings(self, cells, network, instances) -> None:
        for name in self._own("ops"):
            if name not in self.used:
                self.bag.warning(f"op '{name}' is defined but never used", self.scope.ops[name].name_span)
        for name in self._own("consts"):
            if name not in self.used:
                self.bag.warning(f"constant '{name}' is defined but never used", self.scope.consts[name].span)
        for name, cd in getattr(self, "cell_defs", {}).items():
            if name in self.scope.ops:  # the network's `name` is the op: `op cell = relu` hides the cell
                d = self.scope.ops[name]
                where = cd.span if self.scope.op_origin[name] == "prelude" else d.name_span
                self.bag.warning(f"op '{name}' hides the cell '{name}': the network's '{name}' is the op, so the cell "
                                 "is never placed", where, "rename the op or the cell")
            elif name in ops.PRIMS:
                self.bag.warning(f"cell '{name}' shadows the builtin op '{name}': the network's '{name}' is the cell",
                                 cd.span, f"rename the cell, e.g. 'cell my_{name}'")
            elif network is not None and name not in self.used:
                self.bag.warning(f"cell '{name}' is defined but the network never uses it", cd.span)
        if network and "classes" in self.const_values:
            k = self.const_values["classes"]
            if network[-1].shape_out != [k]:
                net = next(i for i in self.sd.items if isinstance(i, ast.NetworkDef))
                self.bag.warning(f"the network ends in shape {network[-1].shape_out}, not [classes] = [{k}]", net.span,
                                 "end it with 'linear(classes)'")


def _shape_message(exc: ops.ShapeError, shape) -> tuple[str, str | None]:
    """(message, hint) of a shape error: the op's reason, and its advice as the hint."""
    msg, _, hint = str(exc).partition("; ")
    if "but gets" not in msg:
        msg = f"{msg} (input shape {list(shape)})"
    return msg, hint or None


def _show(v) -> str:
    """A value as the .nfl source would write it (an exact decimal, or p/q when it has none)."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, Fraction):
        d, places = v.denominator, 0
        for p in (2, 5):
            k = 0
            while d % p == 0:
                d, k = d // p, k + 1
            places = max(places, k)
        if d != 1:
            return f"{v.numerator}/{v.denominator}"
        digits = str(abs(v.numerator * 10**places // v.denominator)).rjust(places + 1, "0")
        return ("-" if v < 0 else "") + digits[:-places] + "." + digits[-places:]
    return str(v)


def _exact(v) -> int | Fraction:
    """A Fraction that is whole becomes an int (`1.5 * 2` is the integer 3)."""
    return v.numerator if isinstance(v, Fraction) and v.denominator == 1 else v


def _refs(e: ast.Expr):
    """(name, span) of every constant an expression refers to, left to right (no recursion)."""
    todo = [e]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Ref):
            if node.name not in ("true", "false"):
                yield node.name, node.span
        elif isinstance(node, ast.Neg):
            todo.append(node.operand)
        elif isinstance(node, ast.BinOp):
            todo += [node.right, node.left]


def _span(s: SourceSpan | None) -> Span | None:
    return Span(s.file, s.line, s.column, s.end_line, s.end_column) if s else None


def _edge_structure(cell: CellIR) -> list:
    return [(e.src, e.dst, [c.label for c in e.choices]) for e in cell.edges]


def _mentions_cell(term, cells) -> bool:
    todo = [term]
    while todo:
        t = todo.pop()
        if isinstance(t, ast.OpSeq):
            todo.extend(t.items)
        elif isinstance(t, ast.Repeat):
            todo.append(t.body)
        elif t.name in cells:
            return True
    return False


def relower(src: SpaceSource, overrides: dict[str, int]) -> SpaceIR:
    """Lower a space again with some constants overridden (raises on any error)."""
    bag = DiagnosticBag(sources=src.sources)
    with _deep_enough():
        ir = Lowerer(src, bag, overrides, warn=False).lower()
    bag.raise_if_errors(SemanticError)
    assert ir is not None
    return ir
