"""The ops every space can use, described for ``nflc ops``: the builtins of
:data:`nflc.ops.PRIMS`, then the prelude's ops (:data:`nflc.ops.PRELUDE`), whose shape rule
the compiler itself finds by compiling each one."""

from __future__ import annotations

from nflc import ops
from nflc.errors import NflcError
from nflc.ir.lower import compile_text

_DEFAULT_TEXT = {"required": "required", "in_channels": "input channels", "same_padding": "(k - 1) // 2",
                 "space_bias": "the space's bias", "true_unset": "true"}


def describe_ops() -> list[dict[str, str]]:
    """One row per op every space can use: the builtins, then the prelude (``nflc ops``):
    name, where it comes from, its parameters with defaults, its shape rule, what it is."""
    rows = []
    for spec in ops.PRIMS.values():
        params = ", ".join(p.name if p.default == "required" else
                           f"{p.name} = {_DEFAULT_TEXT.get(str(p.default), str(p.default).lower())}" for p in spec.params
                           if isinstance(p.default, (bool, int)) or p.default in _DEFAULT_TEXT)
        rows.append({"op": spec.name, "from": "builtin", "parameters": params, "shape": spec.rule, "what": spec.doc})
    for line in ops.PRELUDE.strip().splitlines():
        name, body = (part.strip() for part in line.removeprefix("op ").split("=", 1))
        rows.append({"op": name, "from": "prelude", "parameters": "", "shape": prelude_shape_rule(name),
                     "what": f"= {body}"})
    return rows


def prelude_shape_rule(name: str) -> str:
    """The shape rule of a prelude op in words, found by compiling it on a [features] and a
    [channels, height, width] input."""
    keeps = []
    for shape, text in (([16], "[d]"), ([4, 9, 9], "[c, h, w]")):
        try:
            ir = compile_text(f"space s {{ input {shape} network = {name} }}", "<ops>").spaces["s"]
        except NflcError:
            continue
        if ir.output_shape == shape:
            keeps.append(text)
    return "keeps the shape" if len(keeps) == 2 else f"keeps {keeps[0]} (only)" if keeps else "see its definition"
