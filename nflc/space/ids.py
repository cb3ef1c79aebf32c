"""Architecture ids: NAS-Bench-201's form per cell (``|op~src|...|+...``), a node cell's
``op(sources)+...`` form, the numeric choices' values first, ``;`` between the parts.

:func:`format_id` and :func:`parse_id` are inverse on the space's architectures; a parse
error says which part is wrong and shows an id of the space.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from nflc.errors import SpaceError, did_you_mean
from nflc.ir.model import CellIR
from nflc.space.radix import encode, radix_product

ASCII_INT = re.compile(r"[0-9]+")  # str.isdigit() also takes '²' and '٣', which int() rejects or reads


class IdSpace(Protocol):
    """What an id is made of: a space's numeric choices and cell instances."""

    name: str
    numeric: dict[str, list[int]]
    instances: list[str]
    cell_of: dict[str, CellIR]
    edge_radices: dict[str, list[int]]
    radices: list[int]


def id_instances(space: IdSpace) -> list[str]:
    """The cell instances an id names: all of them, except that a space with numeric
    choices leaves out cells that have a single configuration (NATS-Bench's size space
    is then named by its channels alone, ``64:32:8:64:16``)."""
    if not space.numeric:
        return space.instances
    return [k for k in space.instances if radix_product(space.edge_radices[k]) > 1]


def format_id(space: IdSpace, choices: dict[str, tuple[int, ...]], numeric: Sequence[int] = ()) -> str:
    """The id of the architecture with these cell choices and numeric values."""
    parts = [":".join(str(v) for v in numeric)] if space.numeric else []
    parts += [cell_id(space.cell_of[k], choices[k]) for k in id_instances(space)]
    return ";".join(parts)


def example_id(space: IdSpace) -> str:
    """The id of the space's first raw architecture (for hints)."""
    return format_id(space, {k: space.cell_of[k].expand(tuple(0 for _ in space.edge_radices[k])) for k in space.instances},
                     tuple(v[0] for v in space.numeric.values()))


def parse_id(space: IdSpace, text: str) -> int:
    """Raw index of an id string: the numeric choices' values joined by ':' (when the
    space has numeric choices), then NAS-Bench-201's form per cell, ';' between parts."""
    parts = [p.strip() for p in text.strip().split(";")] if (space.instances or space.numeric) else [""]
    digits = _numeric_digits(space, text, parts.pop(0)) if space.numeric else []
    named = space.instances if len(parts) == len(space.instances) else id_instances(space)
    if len(parts) != len(named):
        raise SpaceError(f"id has {len(parts)} cell part(s) but space '{space.name}' has {len(named)} cell "
                         f"instance(s)", hint=f"ids look like {example_id(space)!r}")
    given = dict(zip(named, parts, strict=True))
    for k in space.instances:
        if k in given:
            cell = space.cell_of[k]
            choice = tuple(parse_cell_id(cell, given[k], example_id(space)))
            try:
                digits.extend(cell.compress(choice))
            except ValueError as exc:
                raise SpaceError(f"{given[k]!r} is not a choice of cell '{cell.name}': {exc}",
                                 hint=f"ids look like {example_id(space)!r}") from None
        else:
            digits.extend(0 for _ in space.edge_radices[k])
    return encode(tuple(digits), space.radices)


def _numeric_digits(space: IdSpace, text: str, part: str) -> list[int]:
    """The digits of the numeric choices' values ``part`` (``16:32``) of id ``text``."""
    values = part.split(":")
    if len(values) != len(space.numeric):
        raise SpaceError(f"id {text!r} gives {len(values)} numeric value(s) but space '{space.name}' has "
                         f"{len(space.numeric)} numeric choice(s) ({', '.join(space.numeric)})",
                         hint=f"ids look like {example_id(space)!r}")
    digits = []
    for (name, allowed), v in zip(space.numeric.items(), values, strict=True):
        v = v.strip()
        if not ASCII_INT.fullmatch(v) or int(v) not in allowed:
            raise SpaceError(f"{v!r} is not a value of numeric choice '{name}' in id {text!r}",
                             hint=f"'{name}' is one of {', '.join(map(str, allowed))}")
        digits.append(allowed.index(int(v)))
    return digits


_NODE_GROUP = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)?\(([0-9, ]*)\)")


def node_cell_id(cell: CellIR, choice: tuple[int, ...]) -> str:
    """A node cell's id: per node 1..H its op and its inputs, `conv3x3(0)+maxpool3x3(0,1)+(1,2)`."""
    ne = len(cell.edges)
    srcs: dict[int, list[int]] = {t: [] for t in range(1, cell.nodes)}
    for e, c in zip(cell.edges, choice, strict=False):
        if e.choices[c].prim_tuple()[0].name != "zero":
            srcs[e.dst].append(e.src)
    ops_ = {nd.node: nd.choices[choice[ne + k]].label for k, nd in enumerate(cell.node_ops)}
    return "+".join(f"{ops_.get(t, '')}({','.join(map(str, srcs[t]))})" for t in range(1, cell.nodes))


def parse_node_cell_id(cell: CellIR, text: str, example: str) -> list[int]:
    groups = text.split("+")
    matches = [_NODE_GROUP.fullmatch(g.strip()) for g in groups]
    if len(groups) != cell.nodes - 1 or not all(matches):
        raise SpaceError(f"{text!r} is not an id of node cell '{cell.name}': expected {cell.nodes - 1} groups "
                         "'op(sources)' (nodes 1..H-1) then '(sources)' (the output), joined by '+'",
                         hint=f"e.g. {example!r}, or an integer index")
    found: set[tuple[int, int]] = set()
    node_digits = []
    for t, m in enumerate(matches, start=1):
        assert m is not None  # all(matches) was checked
        op, body = m.group(1), m.group(2)
        for src in (x.strip() for x in body.split(",") if x.strip()):
            if not ASCII_INT.fullmatch(src) or not 0 <= int(src) < t:
                raise SpaceError(f"{src!r} in group {t} of id {text!r} is not an earlier node", hint=f"e.g. {example!r}")
            found.add((int(src), t))
        if t == cell.nodes - 1:
            if op:
                raise SpaceError(f"the output group of id {text!r} names an op ({op!r}); write '({body})'")
            continue
        nd = cell.node_ops[t - 1]
        if not op:
            raise SpaceError(f"group {t} of id {text!r} names no op for node {t}", hint=f"e.g. {example!r}")
        for i, c in enumerate(nd.choices):
            if op == c.label or op in c.aliases:
                node_digits.append(i)
                break
        else:
            labels = [c.label for c in nd.choices]
            raise SpaceError(f"'{op}' is not an op of node {t} in cell '{cell.name}'",
                             hint=did_you_mean(op, labels) or f"the ops are {', '.join(labels)}")
    digits = []
    for e in cell.edges:
        names = [c.prim_tuple()[0].name for c in e.choices]
        want = "skip" if (e.src, e.dst) in found else "zero"
        if want not in names:
            raise SpaceError(f"id {text!r} {'has' if want == 'skip' else 'lacks'} edge {e.src} -> {e.dst}, which cell "
                             f"'{cell.name}' {'does not allow' if want == 'skip' else 'always has'}")
        digits.append(names.index(want))
        found.discard((e.src, e.dst))
    if found:
        s_, t_ = min(found)
        raise SpaceError(f"id {text!r} names edge {s_} -> {t_}, which cell '{cell.name}' does not have")
    return digits + node_digits


def cell_id(cell: CellIR, choice: tuple[int, ...]) -> str:
    if cell.is_node_cell:
        return node_cell_id(cell, choice)
    groups: dict[int, list[str]] = {t: [] for t in range(cell.inputs, cell.nodes)}
    for e, c in zip(cell.edges, choice, strict=False):
        if cell.pick is None or c:  # a `pick` cell names only the edges its nodes pick
            groups[e.dst].append(f"{e.choices[c].label}~{e.src}")
    return "+".join("|" + "|".join(groups[t]) + "|" for t in range(cell.inputs, cell.nodes))


def parse_cell_id(cell: CellIR, text: str, example: str) -> list[int]:
    if cell.is_node_cell:
        return parse_node_cell_id(cell, text, example)
    groups = text.split("+")
    first = cell.inputs
    if len(groups) != cell.nodes - first or not all(g.startswith("|") and g.endswith("|") for g in groups):
        raise SpaceError(f"{text!r} is not an id of cell '{cell.name}': expected {cell.nodes - first} groups "
                         f"'|op~src|...|' (the inputs of nodes {first}..{cell.nodes - 1}) joined by '+'",
                         hint=f"e.g. {example!r}, or an integer index")
    found: dict[tuple[int, int], str] = {}
    for t, g in enumerate(groups, start=first):
        body = g[1:-1]
        for item in body.split("|") if body else []:
            op, sep, src = item.rpartition("~")
            if not sep or not ASCII_INT.fullmatch(src):
                raise SpaceError(f"{item!r} in id {text!r} is not 'op~source'", hint=f"e.g. {example!r}")
            key = (int(src), t)
            if key in found:
                raise SpaceError(f"edge {src} -> {t} appears twice in id {text!r}")
            found[key] = op
    extra = [key for key in found if key not in {(e.src, e.dst) for e in cell.edges}]
    if extra:
        (s, t), op = extra[0], found[extra[0]]
        raise SpaceError(f"id {text!r} names edge {s} -> {t} ({op}~{s} in group {t}), which cell '{cell.name}' "
                         "does not have", hint=f"e.g. {example!r}")
    digits = []
    for e in cell.edges:
        key = (e.src, e.dst)
        if key not in found and cell.pick is not None:
            digits.append(0)  # not picked
            continue
        if key not in found:
            raise SpaceError(f"id {text!r} has no op for edge {e.src} -> {e.dst}", hint=f"e.g. {example!r}")
        op = found.pop(key)
        offer = list(enumerate(e.choices))[1:] if cell.pick is not None else list(enumerate(e.choices))
        labels = [c.label for _, c in offer]
        for i, c in sorted(offer, key=lambda ic: ic[1].label != op):  # labels before aliases
            if op == c.label or op in c.aliases:
                digits.append(i)
                break
        else:
            raise SpaceError(f"'{op}' is not a choice of edge {e.src} -> {e.dst} in cell '{cell.name}'",
                             hint=did_you_mean(op, labels + [a for _, c in offer for a in c.aliases]) or
                             f"the choices are {', '.join(labels)}")
    return digits
