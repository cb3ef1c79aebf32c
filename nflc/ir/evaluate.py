"""The evaluation pass: exact constant arithmetic, op expansion and argument binding.

:func:`space_header` evaluates a space's options, input shape and numeric choices; the
functions below it are what the later passes call to evaluate an expression (constants are
evaluated where first used and cached in the :class:`LowerContext`) or to expand an op
expression into primitive ops with bound arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

from nflc import ops
from nflc.errors import Span, did_you_mean
from nflc.ir.context import MAX_DIGITS, MAX_NESTING, MAX_PRIMS, MAX_REPEAT, Abort, LowerContext, Value
from nflc.syntax import ast

INIT_SCHEMES = ("he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "torch_default")

Local = dict[str, Value]  # an op's or a cell's parameters while its body is lowered


@dataclass
class SpaceHeader:
    """A space's options, input shape (None when wrong) and numeric choices (name -> values)."""

    bias: bool
    prune: bool
    init: str
    input_shape: tuple[int, ...] | None
    numeric: dict[str, list[int]]


def space_header(ctx: LowerContext) -> SpaceHeader:
    items = ctx.sd.items
    bias, prune, init = True, False, "he_normal"
    for o in (i for i in items if isinstance(i, ast.Option)):
        if o.name == "bias":
            bias = o.value == "true"
        elif o.name == "prune":
            prune = True
        elif o.value not in INIT_SCHEMES:
            ctx.bag.error(f"unknown init scheme '{o.value}'", o.span,
                          did_you_mean(o.value, INIT_SCHEMES) or "one of: " + ", ".join(INIT_SCHEMES))
        else:
            init = o.value
    inputs = [i for i in items if isinstance(i, ast.InputStmt)]
    input_shape = None
    if not inputs:
        ctx.bag.error(f"space '{ctx.sd.name}' has no input shape", ctx.sd.span,
                      "add e.g. 'input [784]' or 'input [3, 32, 32]'")
    else:
        for extra in inputs[1:]:
            ctx.bag.error("input is declared twice", extra.span, "keep one 'input [...]'")
        dims = inputs[0].dims
        input_shape = ctx.attempt(lambda: tuple(eval_int(ctx, d, "an input dimension", minimum=1) for d in dims))
        if input_shape is not None and len(input_shape) not in (1, 3):
            ctx.bag.error(f"input shape {list(input_shape)} is neither [features] nor [channels, height, width]",
                          inputs[0].span)
            input_shape = None
    return SpaceHeader(bias, prune, init, input_shape, _numeric(ctx))


def _numeric(ctx: LowerContext) -> dict[str, list[int]]:
    """The space's own numeric choices (`c in {8, 16}`): name -> values."""
    out: dict[str, list[int]] = {}
    for d in ctx.sd.items:
        if not isinstance(d, ast.ConstDef) or d.options is None or ctx.scope.consts.get(d.name) is not d:
            continue
        if not d.options:
            ctx.bag.error(f"numeric choice '{d.name}' has no values", d.span,
                          f"list the values it chooses from, e.g. '{d.name} in {{8, 16, 32}}'")
            continue
        values: list[int] = []
        seen: set[int] = set()  # not `v in values`: quadratic in the number of values
        literal = [e.value for e in d.options if isinstance(e, ast.Num) and type(e.value) is int]
        if len(literal) == len(d.options) and len(set(literal)) == len(literal):
            out[d.name] = literal  # the common case, read once per lowering (one per value) without evaluating
            continue
        for e in d.options:
            v = ctx.attempt(eval_int, ctx, e, f"a value of '{d.name}'")
            if v is None:
                continue
            if v in seen:
                ctx.bag.error(f"{v} appears twice in numeric choice '{d.name}'", e.span, "remove the duplicate")
                continue
            seen.add(v)
            values.append(v)
        out[d.name] = values
    return out


# ------------------------------------------------------------------ expressions


def evaluate(ctx: LowerContext, e: ast.Expr, local: Local | None = None) -> Value:
    """The exact value of an expression: an int, a Fraction (not whole) or a bool.

    Post-order with an explicit stack: `1 + 1 + ... + 1` nests as deep as it is long."""
    todo: list[tuple[ast.Expr, bool]] = [(e, False)]
    vals: list[Value] = []
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
                vals.append(const(ctx, node.name, node.span, local))
        elif isinstance(node, ast.Neg):
            if not ready:
                todo += [(node, True), (node.operand, False)]
                continue
            vals.append(-_number(ctx, vals.pop(), node.operand))
        elif not ready:
            todo += [(node, True), (node.right, False), (node.left, False)]
        else:
            b = vals.pop()
            a = vals.pop()
            vals.append(_binop(ctx, node, a, b))
    return vals[0]


def _binop(ctx: LowerContext, e: ast.BinOp, x: Value, y: Value) -> int | Fraction:
    a, b = _number(ctx, x, e.left), _number(ctx, y, e.right)
    v: int | Fraction
    if e.op == "+":
        v = a + b
    elif e.op == "-":
        v = a - b
    elif e.op == "*":
        v = a * b
    elif e.op == "**":
        if not isinstance(b, int) or not 0 <= b <= 64:
            ctx.fail(f"exponent {show(b)} is out of range (a whole number 0..64)", e.span)
        if a != 0 and b * math.log10(-a if a < 0 else a) > MAX_DIGITS:  # not abs(): mypy types abs(int | Fraction) as object
            ctx.fail(f"{show(a)} ** {b} has more than {MAX_DIGITS} digits", e.span)
        v = a**b
    elif b == 0:
        ctx.fail("division by zero", e.span)
    elif e.op == "//":
        v = a // b
    else:
        if isinstance(a, int) and isinstance(b, int) and a % b:
            ctx.fail(f"{a} / {b} is not a whole number", e.span, "use // for floor division")
        v = Fraction(a) / b
    return _check_size(ctx, exact(v), e.span)


def _check_size(ctx: LowerContext, v: int | Fraction, span: Span) -> int | Fraction:
    if abs(v) >= 10**MAX_DIGITS:
        ctx.fail(f"a value here has more than {MAX_DIGITS} digits", span, "numbers in a spec must stay below 10**100")
    return v


def _number(ctx: LowerContext, v: Value, e: ast.Expr) -> int | Fraction:
    if isinstance(v, bool):
        ctx.fail("expected a number, not true/false", e.span)
    return v


def const(ctx: LowerContext, name: str, span: Span | None, local: Local | None = None) -> Value:
    """A constant's value (evaluated on first use, then cached in the context)."""
    ctx.used.add(name)
    if name in ctx.overrides:
        return ctx.overrides[name]
    if name in ctx.const_values:
        return ctx.const_values[name]
    if name in ctx.failed_consts:  # already reported
        ctx.stop()
    if name not in ctx.scope.consts:
        cands = list(ctx.scope.consts) + list(local or {})
        ctx.fail(f"unknown constant '{name}'", span, did_you_mean(name, cands) or "define it, e.g. 'width 256'")
    _eval_consts(ctx, name)
    if name in ctx.failed_consts:
        ctx.stop()
    return ctx.const_values[name]


def _eval_consts(ctx: LowerContext, root: str) -> None:
    """Evaluate constant ``root`` after the constants it depends on, depth first with an
    explicit stack (a chain of thousands of constants needs no recursion); a cycle is an
    error at the reference that closes it."""
    consts = ctx.scope.consts
    root_value = consts[root].value
    if root_value is None:  # `c in {}`: reported by _numeric
        ctx.failed_consts.add(root)
        return
    path, on_path = [root], {root}
    deps = [iter(refs(root_value))]
    while deps:
        ref = next(deps[-1], None)
        if ref is None:  # every dependency of path[-1] is evaluated (or failed)
            name = path.pop()
            on_path.discard(name)
            deps.pop()
            value = consts[name].value
            assert value is not None  # a dependency without a value is skipped below
            try:
                ctx.const_values[name] = evaluate(ctx, value)
            except Abort:
                ctx.failed_consts.add(name)
            continue
        dep, where = ref
        dep_value = consts[dep].value if dep in consts else None
        if dep in ctx.overrides or dep in ctx.const_values or dep in ctx.failed_consts or dep_value is None:
            continue  # known, already reported, or reported when path[-1] is evaluated
        if dep in on_path:
            cycle = " -> ".join(path[path.index(dep):] + [dep])
            ctx.bag.error(f"constant '{dep}' depends on itself ({cycle})", where)
            ctx.failed_consts.update(path)
            for name in path:
                ctx.used.add(name)
            return
        path.append(dep)
        on_path.add(dep)
        deps.append(iter(refs(dep_value)))


def eval_int(ctx: LowerContext, e: ast.Expr, what: str, local: Local | None = None, minimum: int | None = None) -> int:
    v = evaluate(ctx, e, local)
    if isinstance(v, bool) or not isinstance(v, int):
        ctx.fail(f"{what} must be a whole number, got {show(v)}", e.span,
                 "1.5M is fine (1500000); 1.5 is not" if isinstance(v, Fraction) else None)
    if minimum is not None and v < minimum:
        ctx.fail(f"{what} must be at least {minimum}, got {v}", e.span)
    return v


def show(v: object) -> str:
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


def exact(v: int | Fraction) -> int | Fraction:
    """A Fraction that is whole becomes an int (`1.5 * 2` is the integer 3)."""
    return v.numerator if isinstance(v, Fraction) and v.denominator == 1 else v


def refs(e: ast.Expr) -> Iterator[tuple[str, Span]]:
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


# ------------------------------------------------------------------ op expressions -> primitives


def expand_seq(ctx: LowerContext, seq: ast.OpSeq, local: Local, stack: tuple[str, ...]) -> tuple[ops.Prim, ...]:
    """The primitive ops of an op expression (``stack``: the ops being expanded, for cycles)."""
    out: list[ops.Prim] = []
    for term in seq.items:
        out.extend(_expand_term(ctx, term, local, stack))
        if len(out) > MAX_PRIMS:
            ctx.fail(f"this op expands to more than {MAX_PRIMS:,} primitive ops", seq.span, "lower its repeat counts")
    return tuple(out)


def _expand_term(ctx: LowerContext, term: ast.OpTerm, local: Local, stack: tuple[str, ...]) -> tuple[ops.Prim, ...]:
    ctx.depth += 1
    try:
        if ctx.depth > MAX_NESTING:
            ctx.fail(f"ops nest more than {MAX_NESTING:,} levels deep (parentheses, repeats and op definitions)",
                     term.span, "flatten the expression, or define fewer ops in terms of each other")
        if isinstance(term, ast.OpSeq):
            return expand_seq(ctx, term, local, stack)
        if isinstance(term, ast.Repeat):
            check_repeat(ctx, term)
            if term.mode is not None:
                ctx.fail(f"'{term.mode}' applies to cells in the network only", term.span)
            body = _expand_term(ctx, term.body, local, stack)
            if len(body) * term.count > MAX_PRIMS:
                ctx.fail(f"this repeat expands to {len(body) * term.count:,} primitive ops, more than "
                         f"{MAX_PRIMS:,}", term.span, "lower the repeat count")
            return body * term.count
        return expand_call(ctx, term, local, stack)
    finally:
        ctx.depth -= 1


def check_repeat(ctx: LowerContext, term: ast.Repeat) -> None:
    if term.count < 1:
        ctx.fail("a repeat count must be at least 1", term.span)
    if term.count > MAX_REPEAT:
        ctx.fail(f"a repeat count must be at most {MAX_REPEAT:,}, got {term.count:,}", term.span)


def expand_call(ctx: LowerContext, call: ast.OpCall, local: Local, stack: tuple[str, ...]) -> tuple[ops.Prim, ...]:
    name = call.name
    if name in ctx.scope.ops:
        ctx.used.add(name)
        d = ctx.scope.ops[name]
        if name in stack:
            ctx.fail(f"op '{name}' is defined in terms of itself ({' -> '.join(stack + (name,))})", call.span)
        bound = bind_args(ctx, call, [(p.name, p.default) for p in d.params], local, name)
        return expand_seq(ctx, d.body, bound, stack + (name,))
    if name in ops.PRIMS:
        spec = ops.PRIMS[name]
        bound = bind_args(ctx, call, [(p.name, p.default) for p in spec.params], local, name, spec)
        args = tuple((p.name, bound[p.name]) for p in spec.params if p.name in bound)
        return (ops.Prim(name, args),)  # type: ignore[arg-type]  # a primitive's arguments are checked int or bool
    if name == "cell" or name in ctx.cell_defs:
        ctx.fail(f"cell '{name}' can only be used in the network, not inside an op", call.span)
    cands = list(ctx.scope.ops) + list(ops.PRIMS)
    ctx.fail(f"unknown op '{name}'", call.span, did_you_mean(name, cands) or "see 'nflc ops' for the builtin ops")


# a parameter's default: an expression (an op's), None (required), or a primitive's
# default value or marker ("required", "same_padding", "space_bias", ...)
Params = list[tuple[str, "ast.Expr | ops.ArgValue | str | None"]]


def bind_args(ctx: LowerContext, call: ast.OpCall, params: Params, local: Local, name: str,
              spec: ops.PrimSpec | None = None) -> Local:
    """The arguments of a call of an op, a primitive (``spec``) or a cell, by parameter name."""
    names = [p for p, _ in params]
    if len(call.args) > len(params):
        sig = ", ".join(names) or "no arguments"
        ctx.fail(f"'{name}' takes {len(params)} argument{'s' * (len(params) != 1)} ({sig}) but {len(call.args)} were given",
                 call.span)
    values: dict[str, ast.Expr] = {}
    for (pname, _), arg in zip(params, call.args, strict=False):  # the rest default
        values[pname] = arg
    for kw in call.kwargs:
        if kw.name not in names:
            ctx.fail(f"'{name}' has no parameter '{kw.name}'", kw.span,
                     did_you_mean(kw.name, names) or f"its parameters are: {', '.join(names) or 'none'}")
        if kw.name in values:
            ctx.fail(f"'{kw.name}' is given twice", kw.span)
        values[kw.name] = kw.value
    out: Local = {}
    types = {p.name: p.type for p in spec.params} if spec else {}
    for pname, default in params:
        if pname in values:
            expr = values[pname]
            v = evaluate(ctx, expr, local)
            if types.get(pname) == "bool" and not isinstance(v, bool):
                ctx.fail(f"'{pname}' of '{name}' must be true or false, got {show(v)}", expr.span)
            if types.get(pname) == "int" and (isinstance(v, bool) or not isinstance(v, int)):
                ctx.fail(f"'{pname}' of '{name}' must be a whole number, got {show(v)}", expr.span)
            if types.get(pname) == "int" and v < (0 if pname == "padding" else 1):
                ctx.fail(f"'{pname}' of '{name}' must be positive, got {v}", expr.span)
            if spec is not None and v is True and any(p.name == pname and p.default == "true_unset" for p in spec.params):
                continue  # `affine=true` is `batchnorm` itself: one text, one label, one hash
            out[pname] = v
        elif spec is None:
            if default is None:
                ctx.fail(f"'{name}' needs its argument '{pname}'", call.span, f"call it as {name}({', '.join(names)})")
            assert isinstance(default, (ast.Num, ast.Ref, ast.BinOp, ast.Neg))  # an op's or a cell's default
            out[pname] = evaluate(ctx, default, dict(out))  # the op's own scope: constants, earlier parameters
        elif default == "required":
            ctx.fail(f"'{name}' needs its argument '{pname}'", call.span, f"e.g. {name}({pname}=3)" if pname == "k" else None)
        elif default == "same_padding":
            # (k - 1) // 2: keeps the size for odd k at stride 1 and never grows it for
            # even k, so max_pool(2, stride=2) halves a map (k // 2 would pad it by one)
            out[pname] = (int(out.get("k", 1)) - 1) // 2
        elif default == "space_bias":
            out[pname] = ctx.bias
        elif default not in ("in_channels", "true_unset"):
            assert isinstance(default, (int, bool))  # a primitive's default value
            out[pname] = default
    return out


def shape_message(exc: ops.ShapeError, shape: tuple[int, ...] | list[int]) -> tuple[str, str | None]:
    """(message, hint) of a shape error: the op's reason, and its advice as the hint."""
    msg, _, hint = str(exc).partition("; ")
    if "but gets" not in msg:
        msg = f"{msg} (input shape {list(shape)})"
    return msg, hint or None
