"""The scopes pass: what names mean in each space of a file.

The prelude's ops, then the imported files' definitions, then the file's own, then each
space's (later layers shadow earlier ones). Also the file-level checks that need every
space lowered first (definitions no space uses).
"""

from __future__ import annotations

import functools
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nflc import ops
from nflc.errors import DiagnosticBag, NflcError, decode_source, did_you_mean
from nflc.syntax import ast
from nflc.syntax.parser import parse


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
def prelude() -> tuple[ast.OpDef, ...]:
    return tuple(i for i in parse(ops.PRELUDE, "<prelude>").items if isinstance(i, ast.OpDef))


def file_scope(module: ast.Module, file: str, base_dir: Path | None, allow_outside: bool,
               bag: DiagnosticBag) -> Scope:
    """The prelude, the imports and the top-level definitions of a parsed file."""
    root = (base_dir or Path.cwd()).resolve()
    scope = Scope()
    for d in prelude():
        scope.ops[d.name], scope.op_origin[d.name] = d, "prelude"
    top = (root / Path(file).name,) if base_dir is not None else ()  # the file itself, for cycles
    _load_imports(module, root, root, allow_outside, bag, scope, stack=top)
    _add_top_level(module, bag, scope, origin="file")
    return scope


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
        # a file outside the tree may be anything (--allow-outside-imports): if it is not a
        # spec, say where it stops being one, but show none of its lines
        private = not target.is_relative_to(root)
        try:
            kind = _not_a_regular_file(target)
            if kind is not None:  # a FIFO would block the read forever, a device never end
                bag.error(f"cannot import '{imp.path}': {target} is {kind}, not a file", imp.span,
                          "import a .nfl file")
                continue
            text = decode_source(target.read_bytes(), shown)
        except OSError as exc:
            bag.error(f"cannot import '{imp.path}': {exc.strerror or 'cannot read'}: {target}", imp.span,
                      "import paths are relative to the importing file")
            continue
        except NflcError as exc:  # not UTF-8: the byte's position in the imported file
            if private:
                _not_a_spec(bag, imp, target, exc)
                continue
            for d in exc.diagnostics:
                bag.add(d)
            bag.sources.update(exc.sources)
            bag.error_calls += 1
            continue
        try:
            sub = parse(text, shown)
        except NflcError as exc:
            if private:
                _not_a_spec(bag, imp, target, exc)
                continue
            bag.sources[shown] = text
            for d in exc.diagnostics:
                bag.add(d)
            bag.error_calls += 1
            continue
        bag.sources[shown] = text
        _load_imports(sub, root, target.parent, allow_outside, bag, scope, stack + (target,), loaded)
        _add_top_level(sub, bag, scope, origin="import")


def _not_a_regular_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (it exists: else reading says so)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _not_a_spec(bag: DiagnosticBag, imp: ast.Import, target: Path, exc: NflcError) -> None:
    """An import outside the spec's tree that is not an nflc spec: where, never what."""
    span = exc.span
    at = f" (at line {span.line}, column {span.column})" if span is not None else ""
    bag.error(f"cannot import '{imp.path}': {target} is not an nflc spec{at}; its lines are not shown, since it lies "
              "outside the spec's directory tree", imp.span, "import a .nfl file")


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


def space_scope(sd: ast.SpaceDef, file_scope: Scope, bag: DiagnosticBag) -> Scope:
    """The file's scope with the space's own ops and constants over it."""
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


def own_names(sd: ast.SpaceDef, scope: Scope, kind: Literal["ops", "consts"]) -> list[str]:
    """Names of the ops or constants a space defines itself (not the file's: a file with
    many spaces and many top-level definitions must not cost their product)."""
    cls: type[ast.OpDef] | type[ast.ConstDef]
    cls, origin = (ast.OpDef, scope.op_origin) if kind == "ops" else (ast.ConstDef, scope.const_origin)
    return list(dict.fromkeys(i.name for i in sd.items if isinstance(i, cls) and origin.get(i.name) == "space"))


def warn_unused_top_level(module: ast.Module, srcs: dict[str, SpaceSource], used: set[str], bag: DiagnosticBag,
                          file_scope: Scope) -> None:
    """Top-level definitions no space uses (``used``: the names every space looked up)."""
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


def check_calls(d: ast.OpDef, known: set[str], bag: DiagnosticBag, cells: set[str] | frozenset[str] = frozenset()) -> None:
    """Report every call in op ``d``'s body that names no op in ``known`` (a walk with an
    explicit stack: bodies may nest thousands of levels)."""
    todo: list[ast.OpTerm] = [d.body]
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
