"""The encodings NAS researchers already have, to nflc ids and back.

Architectures arrive as NAS-Bench-201 strings, NASLib ``op_indices``, NAS-Bench-101
``(matrix, ops)``, NASLib's NB101 tuple, DARTS genotypes or NASLib's compact DARTS form;
nflc names them by ids (docs/LANGUAGE.md, "Architectures, indices and ids"; the formats are
in its "Encodings" section). Every function here only checks a value's structure and
rewrites it, without a space, so a malformed value is reported by its bad part before any
space is loaded; whether an id is *in* a space (its filters, ``unique``) is the space's
question (:func:`not_in_space`, :func:`class_representative`).

Conventions are NASLib's, checked against its source (``naslib/search_spaces/nasbench{101,
201,301}/conversions.py``) and the NASLib columns of the benchmark files in
``../shared/data``. Conversions that pass through an id give the canonical form: DARTS
pairs sorted by input within a node, NB101 matrices of 7 vertices.
"""

from __future__ import annotations

import ast
import json
import numbers
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nflc.errors import NflcError, did_you_mean
from nflc.readers import MAX_INT_DIGITS

if TYPE_CHECKING:
    from nflc.space import Architecture


class EncodingError(NflcError):
    """A value that is not a well-formed encoding; the message names the bad part."""


class UnreadableValue(EncodingError):
    """A value that is written as an encoding (JSON, a literal, ``Genotype(...)``) but cannot
    be read: never taken for an id."""


class ValueBoundsError(UnreadableValue):
    """A value beyond what nflc reads (its size, a number's digits, a range's length)."""


_INT = re.compile(r"[0-9]+")


def _int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise EncodingError(f"{what} is not an integer: {x!r}")
    return int(x)


def _list(x: Any, what: str, length: int | None = None) -> list:
    """A list from a list, tuple or numpy array (strings and mappings are not sequences here)."""
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
        x = x.tolist()
    if not isinstance(x, (list, tuple)):
        raise EncodingError(f"{what} is not a list: {x!r}")
    if length is not None and len(x) != length:
        raise EncodingError(f"{what} has {len(x)} entries, not {length}: {_short(x)}")
    return list(x)


def _short(x: Any, limit: int = 80) -> str:
    text = json.dumps(x) if isinstance(x, (list, tuple, dict)) else repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _op(name: Any, known: tuple[str, ...] | dict[str, str], what: str) -> str:
    if not isinstance(name, str) or name not in known:
        raise EncodingError(f"{what}: {name!r} is not one of the ops {', '.join(known)}",
                            hint=did_you_mean(name, known) if isinstance(name, str) else None)
    return name


def _parse_groups(text: str, what: str, first_node: int, n_groups: int, example: str) -> list[list[tuple[str, int]]]:
    """NAS-Bench-201's ``|op~src|op~src|+|...|``: per node, its (op, source) pairs sorted by source."""
    groups = text.strip().split("+")
    if len(groups) != n_groups or not all(len(g) >= 2 and g[0] == "|" and g[-1] == "|" for g in groups):
        raise EncodingError(f"{text!r} is not {what}: expected {n_groups} groups '|op~source|...|' (nodes "
                            f"{first_node}..{first_node + n_groups - 1}) joined by '+'", hint=f"e.g. {example!r}")
    out = []
    for node, g in enumerate(groups, start=first_node):
        pairs: list[tuple[str, int]] = []
        for item in g[1:-1].split("|") if g[1:-1] else []:
            op, sep, src = item.rpartition("~")
            if not sep or not op or not _INT.fullmatch(src):
                raise EncodingError(f"{item!r} in the group of node {node} of {text!r} is not 'op~source'",
                                    hint=f"e.g. {example!r}")
            if int(src) >= node:
                raise EncodingError(f"{item!r} in the group of node {node} of {text!r}: source {src} is not a node "
                                    f"before {node} (0..{node - 1})")
            if any(s == int(src) for _, s in pairs):
                raise EncodingError(f"source {src} appears twice in the group of node {node} of {text!r}")
            pairs.append((op, int(src)))
        out.append(sorted(pairs, key=lambda p: p[1]))
    return out


def _format_groups(groups: list[list[tuple[str, int]]]) -> str:
    return "+".join("|" + "|".join(f"{op}~{src}" for op, src in sorted(g, key=lambda p: p[1])) + "|" for g in groups)


# ---------------------------------------------------------------- NAS-Bench-201

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# NASLib's op_indices: codes index OP_NAMES_NB201, edges follow EDGE_LIST ((1,2), (1,3), ...)
# with its nodes numbered from 1, i.e. nflc's (0,1), (0,2), (0,3), (1,2), (1,3), (2,3)
NASLIB_NB201_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_NB201_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_NB201_EXAMPLE = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|"


def parse_nb201(arch_str: str) -> dict[tuple[int, int], str]:
    """The op of each edge ``(src, dst)`` of a NAS-Bench-201 string (every edge named once)."""
    if not isinstance(arch_str, str):
        raise EncodingError(f"a NAS-Bench-201 string is text, not {_short(arch_str)}")
    groups = _parse_groups(arch_str, "a NAS-Bench-201 string", 1, 3, _NB201_EXAMPLE)
    edges = {}
    for node, pairs in enumerate(groups, start=1):
        if [s for _, s in pairs] != list(range(node)):
            raise EncodingError(f"the group of node {node} of {arch_str!r} has sources {[s for _, s in pairs]}; "
                                f"NAS-Bench-201 gives node {node} one op from each of 0..{node - 1}",
                                hint=f"e.g. {_NB201_EXAMPLE!r}")
        for op, src in pairs:
            edges[(src, node)] = _op(op, NB201_OPS, f"edge {src} -> {node} of {arch_str!r}")
    return edges


def nb201_to_op_indices(arch_str: str) -> list[int]:
    """NASLib's ``op_indices`` of a NAS-Bench-201 string (``convert_str_to_op_indices``)."""
    edges = parse_nb201(arch_str)
    return [NASLIB_NB201_OPS.index(edges[e]) for e in NASLIB_NB201_EDGES]


def op_indices_to_nb201(op_indices: Any) -> str:
    """The NAS-Bench-201 string of NASLib's ``op_indices`` (six codes, NASLib's edge order)."""
    codes = [_int(c, f"op_indices[{i}]") for i, c in enumerate(_list(op_indices, "op_indices", 6))]
    for i, c in enumerate(codes):
        if not 0 <= c < len(NASLIB_NB201_OPS):
            raise EncodingError(f"op_indices[{i}] = {c} is not an op code 0..4",
                                hint="NASLib's codes: " + ", ".join(f"{k} {n}" for k, n in enumerate(NASLIB_NB201_OPS)))
    edges = {e: NASLIB_NB201_OPS[c] for e, c in zip(NASLIB_NB201_EDGES, codes, strict=True)}
    return _format_groups([[(edges[(s, t)], s) for s in range(t)] for t in (1, 2, 3)])


# ---------------------------------------------------------------- NAS-Bench-101

NB101_VERTICES = 7
# NAS-Bench-101's op names -> the node labels of specs/nb101.nfl (labels are names, no '-')
NB101_LABELS = {"conv3x3-bn-relu": "conv3x3_bn_relu", "conv1x1-bn-relu": "conv1x1_bn_relu", "maxpool3x3": "maxpool3x3"}
_NB101_OPS = {label: op for op, label in NB101_LABELS.items()}
_NB101_PAD = "conv3x3-bn-relu"  # the op of a node a smaller matrix does not have (the space's first choice)
NASLIB_NB101_OPS = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")  # conversions.all_ops
_NODE_GROUP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)?\(([0-9, ]*)\)")
_NB101_EXAMPLE = "conv3x3_bn_relu(0)+conv1x1_bn_relu(0,1)+maxpool3x3(1,2)+conv3x3_bn_relu()+conv3x3_bn_relu()+(0,1,2,3)"

Matrix = list[list[int]]


def check_nb101(matrix: Any, ops: Any) -> tuple[Matrix, list[str]]:
    """A NAS-Bench-101 spec as plain lists, after the checks nasbench's ``ModelSpec`` makes
    on the encoding (square, 0/1, upper-triangular, ``input`` first, ``output`` last)."""
    rows = _list(matrix, "matrix")
    n = len(rows)
    if not 2 <= n <= NB101_VERTICES:
        raise EncodingError(f"the matrix has {n} vertices; NAS-Bench-101's have 2..{NB101_VERTICES}")
    m: Matrix = []
    for i, row in enumerate(rows):
        m.append([])
        for j, v in enumerate(_list(row, f"matrix[{i}]", n)):
            if isinstance(v, bool) or v not in (0, 1):
                raise EncodingError(f"matrix[{i}][{j}] = {v!r} is not 0 or 1")
            if v and j <= i:
                raise EncodingError(f"matrix[{i}][{j}] = 1 is on or below the diagonal: NAS-Bench-101's matrix is "
                                    "upper-triangular (row = source, column = target)")
            m[-1].append(int(v))
    names = _list(ops, "ops", n)
    for i, op in enumerate(names):
        want = "input" if i == 0 else "output" if i == n - 1 else None
        if want is not None and op != want:
            raise EncodingError(f"ops[{i}] is {op!r}; the {'first' if i == 0 else 'last'} vertex is {want!r}")
        if want is None:
            _op(op, NB101_LABELS, f"ops[{i}]")
    return m, list(names)


def nb101_to_id(matrix: Any, ops: Any) -> str:
    """The node-cell id of specs/nb101.nfl naming exactly this graph: vertex ``i`` is node
    ``Xi`` and the output is X6, so a smaller matrix leaves nodes without edges (op
    ``conv3x3_bn_relu``); vertices off every input-output path stay in the id (the space
    prunes them, as NAS-Bench-101 does)."""
    m, names = check_nb101(matrix, ops)
    n = len(m)
    node = list(range(n - 1)) + [NB101_VERTICES - 1]
    labels = {t: NB101_LABELS[names[t] if t < n - 1 else _NB101_PAD] for t in range(1, NB101_VERTICES - 1)}
    srcs: dict[int, list[int]] = {t: [] for t in range(1, NB101_VERTICES)}
    for i in range(n):
        for j in range(n):
            if m[i][j]:
                srcs[node[j]].append(node[i])
    return "+".join(f"{labels.get(t, '')}({','.join(map(str, sorted(srcs[t])))})" for t in range(1, NB101_VERTICES))


def id_to_nb101(ident: str) -> tuple[Matrix, list[str]]:
    """``(matrix, ops)`` of a node-cell id (one vertex per node, so 7 x 7 for specs/nb101.nfl)."""
    if not isinstance(ident, str):
        raise EncodingError(f"a node-cell id is text, not {_short(ident)}")
    groups = ident.strip().split("+")
    matches = [_NODE_GROUP.fullmatch(g.strip()) for g in groups]
    if len(groups) < 1 or not all(matches):
        bad = next((g for g, mt in zip(groups, matches, strict=True) if not mt), ident)
        raise EncodingError(f"{bad.strip()!r} in {ident!r} is not a node group 'op(sources)'",
                            hint=f"a NAS-Bench-101 id looks like {_NB101_EXAMPLE!r}")
    n = len(groups) + 1
    m = [[0] * n for _ in range(n)]
    names = ["input"]
    for t, mt in enumerate(matches, start=1):
        assert mt is not None  # all(matches) was checked
        op, body = mt.group(1), mt.group(2)
        for src in (s.strip() for s in body.split(",") if s.strip()):
            if not _INT.fullmatch(src) or int(src) >= t:
                raise EncodingError(f"{src!r} in group {t} of {ident!r} is not a node before node {t} (0..{t - 1})")
            if m[int(src)][t]:
                raise EncodingError(f"source {src} appears twice in group {t} of {ident!r}")
            m[int(src)][t] = 1
        if t == n - 1:
            if op:
                raise EncodingError(f"the last group of {ident!r} is the output, which has no op: write '({body})'")
            names.append("output")
        elif not op:
            raise EncodingError(f"group {t} of {ident!r} names no op for node {t}", hint=f"e.g. {_NB101_EXAMPLE!r}")
        else:
            names.append(_NB101_OPS[_op(op, tuple(_NB101_OPS), f"node {t} of {ident!r}")])
    return m, names


def prune_nb101(matrix: Any, ops: Any) -> tuple[Matrix, list[str]]:
    """The vertices and edges on some input-output path, as nasbench's ``ModelSpec`` keeps
    them (the graph NAS-Bench-101's tables are keyed by, and nflc's computing graph)."""
    m, names = check_nb101(matrix, ops)
    n = len(m)
    ahead, behind = {0}, {n - 1}
    for j in range(n):  # vertices are in topological order (upper-triangular)
        if any(m[i][j] for i in ahead):
            ahead.add(j)
    for i in reversed(range(n)):
        if any(m[i][j] for j in behind):
            behind.add(i)
    keep = sorted(ahead & behind)
    if n - 1 not in ahead:
        raise EncodingError("the output is not reachable from the input: the cell computes nothing")
    return [[m[i][j] for j in keep] for i in keep], [names[i] for i in keep]


def nb101_to_naslib_tuple(matrix: Any, ops: Any) -> list[int]:
    """NASLib's tuple (``convert_spec_to_tuple``): the matrix row by row, then each vertex's
    code in ``NASLIB_NB101_OPS`` (input 0, output 1, maxpool3x3 2, conv1x1 3, conv3x3 4)."""
    m, names = check_nb101(matrix, ops)
    return [v for row in m for v in row] + [NASLIB_NB101_OPS.index(o) for o in names]


def naslib_tuple_to_nb101(tup: Any) -> tuple[Matrix, list[str]]:
    """``(matrix, ops)`` of NASLib's tuple: n*n matrix entries then n op codes."""
    values = [_int(v, f"naslib_tuple[{i}]") for i, v in enumerate(_list(tup, "naslib_tuple"))]
    n = next((k for k in range(2, NB101_VERTICES + 1) if k * k + k == len(values)), None)
    if n is None:
        raise EncodingError(f"a NASLib NB101 tuple has n*n + n entries (56 for 7 vertices), not {len(values)}")
    codes = values[n * n:]
    for i, c in enumerate(codes):
        if not 0 <= c < len(NASLIB_NB101_OPS):
            raise EncodingError(f"naslib_tuple[{n * n + i}] = {c} (the op of vertex {i}) is not an op code 0..4",
                                hint="NASLib's codes: " + ", ".join(f"{k} {o}" for k, o in enumerate(NASLIB_NB101_OPS)))
    return check_nb101([values[r * n:(r + 1) * n] for r in range(n)], [NASLIB_NB101_OPS[c] for c in codes])


def _nb101_parts(value: Any) -> tuple[Any, Any]:
    """``(matrix, ops)`` from a dict, an object with those attributes (nasbench's ModelSpec)
    or a pair."""
    if isinstance(value, Mapping):
        missing = [k for k in ("matrix", "ops") if k not in value]
        if missing:
            raise EncodingError(f"a NAS-Bench-101 spec has 'matrix' and 'ops'; {missing[0]!r} is missing")
        return value["matrix"], value["ops"]
    if hasattr(value, "matrix") and hasattr(value, "ops"):
        return value.matrix, value.ops
    pair = _list(value, "a NAS-Bench-101 spec (matrix, ops)", 2)
    return pair[0], pair[1]


# ---------------------------------------------------------------- DARTS (NAS-Bench-301)

# NASLib's compact op codes (nasbench301/conversions.py, OPS); genotypes use the names
DARTS_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5")
DARTS_CELLS = ("normal", "reduce")
DARTS_CONCAT = [2, 3, 4, 5]
DARTS_NODES = (2, 3, 4, 5)  # intermediate nodes; 0 and 1 are the two previous cells' outputs
_GENOTYPE_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")  # DARTS's namedtuple order
_DARTS_CELL_EXAMPLE = "|sep_conv_3x3~0|sep_conv_5x5~1|+|skip_connect~0|sep_conv_3x3~1|+|max_pool_3x3~0|" \
                      "skip_connect~2|+|dil_conv_3x3~1|max_pool_3x3~3|"
Pairs = list[tuple[str, int]]  # a cell: 8 (op, input) pairs, two per node 2..5


def _genotype_fields(genotype: Any) -> dict[str, Any]:
    """A genotype's fields from a dict, DARTS's namedtuple (or any object with the fields) or
    a sequence in the namedtuple's order; the concat lists may be left out."""
    if isinstance(genotype, Mapping):
        fields = dict(genotype)
    elif all(hasattr(genotype, f) for f in DARTS_CELLS):
        fields = {f: getattr(genotype, f) for f in _GENOTYPE_FIELDS if hasattr(genotype, f)}
    elif isinstance(genotype, (list, tuple)) and len(genotype) == 4:
        fields = dict(zip(_GENOTYPE_FIELDS, genotype, strict=True))
    else:
        raise EncodingError(f"a DARTS genotype has fields normal, normal_concat, reduce, reduce_concat; got {_short(genotype)}")
    extra = [k for k in fields if k not in _GENOTYPE_FIELDS]
    missing = [k for k in DARTS_CELLS if k not in fields]
    if extra or missing:
        raise EncodingError(f"the genotype {'has no field ' + repr(missing[0]) if missing else 'has an unknown field ' + repr(extra[0])}",
                            hint="its fields are " + ", ".join(_GENOTYPE_FIELDS))
    for cell in DARTS_CELLS:
        concat = fields.get(f"{cell}_concat", DARTS_CONCAT)
        if isinstance(concat, range):  # compared as a range: range(10**12) is never listed
            concat = DARTS_CONCAT if concat == range(DARTS_CONCAT[0], DARTS_CONCAT[-1] + 1) else concat
        else:
            concat = _list(concat, f"{cell}_concat")
        if concat != DARTS_CONCAT:
            raise EncodingError(f"{cell}_concat is {_short(concat)}; DARTS cells (and nflc's) concatenate nodes "
                                f"{DARTS_CONCAT}")
    return fields


def _check_cell(pairs: list[tuple[Any, Any]], shown: list, cell: str, what: str) -> Pairs:
    """A cell's 8 (op, input) pairs, checked: known ops, inputs before their node, two
    distinct inputs per node; errors show the pair as the user wrote it (``shown``)."""
    out: Pairs = []
    for k, ((op, src), raw) in enumerate(zip(pairs, shown, strict=True)):
        node = DARTS_NODES[k // 2]
        where = f"{what} {cell}[{k}] = {_short(raw)} (node {node})"
        op = _op(op, DARTS_OPS, where)
        src = _int(src, f"the input of {where}")
        if not 0 <= src < node:
            raise EncodingError(f"{where}: input {src} is not a node before node {node} (0..{node - 1})")
        if k % 2 and out[-1][1] == src:
            raise EncodingError(f"{where}: both pairs of node {node} take input {src}; a DARTS node has two distinct inputs")
        out.append((op, src))
    return out


def _genotype_cell(pairs: Any, cell: str) -> Pairs:
    raw = _list(pairs, f"genotype {cell}", 2 * len(DARTS_NODES))
    named = []
    for k, p in enumerate(raw):
        op, src = _list(p, f"genotype {cell}[{k}] (an [op, input] pair)", 2)
        named.append((op, src))
    return _check_cell(named, raw, cell, "genotype")


def _canonical(pairs: Pairs) -> Pairs:
    return [p for k in range(0, len(pairs), 2) for p in sorted(pairs[k:k + 2], key=lambda q: q[1])]


def _genotype(cells: dict[str, Pairs]) -> dict[str, Any]:
    return {"normal": [list(p) for p in cells["normal"]], "normal_concat": list(DARTS_CONCAT),
            "reduce": [list(p) for p in cells["reduce"]], "reduce_concat": list(DARTS_CONCAT)}


def check_genotype(genotype: Any) -> dict[str, Pairs]:
    """Each cell's pairs, in their given order, after checking the whole genotype."""
    fields = _genotype_fields(genotype)
    return {cell: _genotype_cell(fields[cell], cell) for cell in DARTS_CELLS}


def canonical_genotype(genotype: Any) -> dict[str, Any]:
    """The genotype as a dict with each node's pairs sorted by input (DARTS does not order them)."""
    return _genotype({c: _canonical(p) for c, p in check_genotype(genotype).items()})


def genotype_to_id(genotype: Any) -> str:
    """The id of specs/darts.nfl: normal cell ';' reduction cell, each NAS-Bench-201's form
    for nodes 2..5 (``op~input``, inputs ascending)."""
    cells = check_genotype(genotype)
    return ";".join(_format_groups([[(op, s) for op, s in pairs[k:k + 2]] for k in range(0, 8, 2)])
                    for pairs in (cells[c] for c in DARTS_CELLS))


def id_to_genotype(ident: str) -> dict[str, Any]:
    """The canonical genotype (dict) of a DARTS id."""
    if not isinstance(ident, str):
        raise EncodingError(f"a DARTS id is text, not {_short(ident)}")
    parts = ident.strip().split(";")
    if len(parts) != 2:
        raise EncodingError(f"a DARTS id has 2 parts (normal cell ';' reduction cell), {ident!r} has {len(parts)}",
                            hint=f"e.g. '{_DARTS_CELL_EXAMPLE};{_DARTS_CELL_EXAMPLE}'")
    cells = {}
    for cell, part in zip(DARTS_CELLS, parts, strict=True):
        groups = _parse_groups(part, f"the {cell} cell of a DARTS id", DARTS_NODES[0], len(DARTS_NODES), _DARTS_CELL_EXAMPLE)
        pairs: Pairs = []
        for node, g in zip(DARTS_NODES, groups, strict=True):
            if len(g) != 2:
                raise EncodingError(f"node {node} of the {cell} cell in {ident!r} has {len(g)} inputs; a DARTS node has 2",
                                    hint=f"e.g. {_DARTS_CELL_EXAMPLE!r}")
            pairs += [(_op(op, DARTS_OPS, f"node {node} of the {cell} cell in {ident!r}"), s) for op, s in g]
        cells[cell] = pairs
    return _genotype(cells)


def genotype_to_compact(genotype: Any) -> list[list[list[int]]]:
    """NASLib's compact form (``convert_genotype_to_compact``): per cell 8 ``[input, op code]``,
    in the genotype's order."""
    return [[[s, DARTS_OPS.index(op)] for op, s in pairs] for pairs in check_genotype(genotype).values()]


def compact_to_genotype(compact: Any) -> dict[str, Any]:
    """The genotype (dict, pairs in the compact form's order) of NASLib's compact form."""
    cells = _list(compact, "the compact form (normal cell, reduction cell)", 2)
    out: dict[str, Pairs] = {}
    for cell, pairs in zip(DARTS_CELLS, cells, strict=True):
        raw = _list(pairs, f"compact {cell}", 2 * len(DARTS_NODES))
        named = []
        for k, pair in enumerate(raw):
            src, code = _list(pair, f"compact {cell}[{k}] (an [input, op code] pair)", 2)
            code = _int(code, f"the op code of compact {cell}[{k}]")
            if not 0 <= code < len(DARTS_OPS):
                raise EncodingError(f"compact {cell}[{k}] = {_short(pair)}: op code {code} is not 0..{len(DARTS_OPS) - 1}",
                                    hint="NASLib's codes: " + ", ".join(f"{i} {o}" for i, o in enumerate(DARTS_OPS)))
            named.append((DARTS_OPS[code], src))
        out[cell] = _check_cell(named, raw, cell, "compact")
    return _genotype(out)


# ---------------------------------------------------------------- any format

FORMATS: dict[str, str] = {  # name -> family ("" for the id, whose family its shape tells)
    "id": "", "op_indices": "nb201", "nb101": "nb101", "naslib_tuple": "nb101", "genotype": "darts", "compact": "darts",
}
FAMILIES = {"nb201": "NAS-Bench-201", "nb101": "NAS-Bench-101", "darts": "DARTS"}


def id_family(ident: str) -> str:
    """Which benchmark's id this is, by its shape: DARTS's has two parts of 4 node groups,
    NB201's 3 groups ``|op~src|``, NB101's node groups ``op(sources)``."""
    if ";" in ident or ("~" in ident and ident.count("+") == len(DARTS_NODES) - 1):
        return "darts"
    if "~" in ident:
        return "nb201"
    if "(" in ident:
        return "nb101"
    raise EncodingError(f"{ident!r} is not an id of NAS-Bench-201, NAS-Bench-101 or DARTS",
                        hint=f"e.g. {_NB201_EXAMPLE!r}")


def to_id(value: Any, fmt: str) -> str:
    """The id of a value in format ``fmt`` (an id is only stripped: its space checks it)."""
    if fmt == "id":
        if not isinstance(value, str):
            raise EncodingError(f"an id is text, not {_short(value)}")
        return value.strip()
    if fmt == "op_indices":
        return op_indices_to_nb201(value)
    if fmt == "nb101":
        return nb101_to_id(*_nb101_parts(value))
    if fmt == "naslib_tuple":
        return nb101_to_id(*naslib_tuple_to_nb101(value))
    if fmt == "genotype":
        return genotype_to_id(value)
    if fmt == "compact":
        return genotype_to_id(compact_to_genotype(value))
    raise EncodingError(f"unknown format {fmt!r}", hint=did_you_mean(fmt, FORMATS) or "one of " + ", ".join(FORMATS))


def from_id(ident: str, fmt: str) -> Any:
    """The value in format ``fmt`` of an id (canonical: see the module's docstring)."""
    if fmt not in FORMATS:
        raise EncodingError(f"unknown format {fmt!r}", hint=did_you_mean(fmt, FORMATS) or "one of " + ", ".join(FORMATS))
    if fmt == "id":
        return ident
    family = id_family(ident)
    if family != FORMATS[fmt]:
        raise EncodingError(f"{ident!r} is a {FAMILIES[family]} id; {fmt} is a {FAMILIES[FORMATS[fmt]]} encoding",
                            hint="formats of " + FAMILIES[family] + ": id, " +
                            ", ".join(f for f, fam in FORMATS.items() if fam == family))
    if fmt == "op_indices":
        return nb201_to_op_indices(ident)
    if fmt in ("nb101", "naslib_tuple"):
        m, names = id_to_nb101(ident)
        return {"matrix": m, "ops": names} if fmt == "nb101" else nb101_to_naslib_tuple(m, names)
    genotype = id_to_genotype(ident)
    return genotype if fmt == "genotype" else genotype_to_compact(genotype)


def convert(value: Any, src: str, dst: str) -> Any:
    """``value`` from format ``src`` to ``dst``, through the id (so the result is canonical)."""
    return from_id(to_id(value, src), dst)


def detect_format(value: Any) -> str:
    """The format a parsed value is in, from its shape (an int is an index, i.e. an id)."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return "id"
    if isinstance(value, Mapping):
        if "matrix" in value:
            return "nb101"
        if "normal" in value:
            return "genotype"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "op_indices" if len(value) == 6 else "naslib_tuple"
        if len(value) == 4:
            return "genotype"
        if len(value) == 2 and isinstance(value[1], (list, tuple)):
            if value[1] and all(isinstance(v, str) for v in value[1]):
                return "nb101"
            return "compact"
    raise EncodingError(f"cannot tell which encoding {_short(value)} is", hint="name it with --from")


MAX_VALUE_CHARS = 1 << 20  # a value on the command line or standard input (a genotype is a few hundred)
MAX_RANGE = 64  # values a range() in a value may stand for: a DARTS cell concatenates 4 nodes
_LONG_DIGITS = re.compile(r"[0-9]{%d,}" % (MAX_INT_DIGITS + 1))


def parse_value(text: str) -> Any:
    """A value as a user writes it: JSON, a Python literal (tuples, quotes), or DARTS's own
    ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``; read
    within :mod:`nflc.readers`' bounds (digits, nesting, size) and with every ``range()``
    at most :data:`MAX_RANGE` long."""
    from nflc.readers import JsonBoundsError, JsonInputError, parse_json, where

    if len(text) > MAX_VALUE_CHARS:
        raise ValueBoundsError(f"the value has {len(text):,} characters; nflc reads values of at most {MAX_VALUE_CHARS:,}")
    long = _LONG_DIGITS.search(text)
    if long is not None:
        line, col = where(text, long.start())
        raise ValueBoundsError(f"the value has a number of {len(long.group()):,} digits (line {line}, column {col}); "
                            f"nflc reads integers of at most {MAX_INT_DIGITS} digits")
    try:
        return parse_json(text, "VALUE")
    except JsonBoundsError as exc:
        raise ValueBoundsError(str(exc), hint=exc.diagnostics[0].hint) from None
    except JsonInputError:
        pass
    try:
        return _literal(ast.parse(text.strip(), mode="eval").body)
    except ValueBoundsError:
        raise
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError, OverflowError):
        if text.lstrip().startswith("Genotype("):  # DARTS's form, not an id (`Genotype(**d)`)
            raise UnreadableValue(f"{_short(text)} is not a genotype nflc can read: it reads "
                                  "Genotype(normal=[(op, input), ...], normal_concat=range(2, 6), reduce=[...], "
                                  "reduce_concat=range(2, 6)) written out, not a call with ** or variables",
                                  hint="print the genotype (print(genotype)) and pass that text") from None
        raise EncodingError(f"{_short(text)} is neither JSON nor a Python literal",
                            hint="quote it for the shell: '[[0, 1], ...]'") from None


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Genotype", "range"):
        args = [_literal(a) for a in node.args]
        if node.func.id == "range":
            values = range(*args)
            if not 0 <= (values.stop - values.start) // (values.step or 1) <= MAX_RANGE:
                raise ValueBoundsError(f"range({', '.join(_short(a, 30) for a in args)}) is too long: a value's ranges have at most "
                                    f"{MAX_RANGE} numbers (a DARTS cell concatenates {len(DARTS_CONCAT)} nodes)")
            return list(values)
        if len(args) > len(_GENOTYPE_FIELDS) or any(kw.arg is None for kw in node.keywords):
            raise ValueError("not a Genotype")
        return {**dict(zip(_GENOTYPE_FIELDS, args, strict=False)), **{str(kw.arg): _literal(kw.value) for kw in node.keywords}}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    return ast.literal_eval(node)


# ---------------------------------------------------------------- benchmark entries

# (key, format) in the order an entry's encoding is read; every other present key must agree
ENTRY_KEYS = (("id", "id"), ("arch_str", "id"), ("matrix", "nb101"), ("genotype", "genotype"),
              ("naslib_tuple", "naslib_tuple"), ("naslib_op_indices", "op_indices"), ("naslib_compact", "compact"))
ENCODING_KEYS = frozenset(k for k, _ in ENTRY_KEYS) | {"ops"}


def entry_id(entry: Mapping) -> str:
    """The id of a benchmark entry from whichever encodings it has (NASLib's files carry two:
    ``arch_str`` and ``naslib_op_indices``, ``matrix``/``ops`` and ``naslib_tuple``, ...);
    when it has several they must name the same architecture."""
    found = [(k, fmt) for k, fmt in ENTRY_KEYS if k in entry]
    if not found:
        raise EncodingError("missing an architecture: the entry has none of " +
                            ", ".join("matrix and ops" if k == "matrix" else k for k, _ in ENTRY_KEYS))
    ids = []
    for key, fmt in found:
        value = entry if fmt == "nb101" else entry[key]
        try:
            ids.append((key, to_id(value, fmt)))
        except EncodingError as exc:
            raise EncodingError(f"{'matrix/ops' if fmt == 'nb101' else key}: {exc}", hint=exc.diagnostics[0].hint) from None
    first_key, first = ids[0]
    for key, other in ids[1:]:
        if _same_architecture(first, other) is False:
            raise EncodingError(f"{first_key} and {key} name different architectures ({first} and {other})")
    return first


def _same_architecture(a: str, b: str) -> bool | None:
    """Whether two ids name one architecture (None when an id's own form cannot be read
    here, e.g. an id of another space: the space will judge it)."""
    try:
        if id_family(a) == "nb201":
            return parse_nb201(a) == parse_nb201(b)
        if id_family(a) == "darts":
            return id_to_genotype(a) == id_to_genotype(b)
        return id_to_nb101(a) == id_to_nb101(b)
    except EncodingError:
        return None


# ---------------------------------------------------------------- ids in a space

def class_representative(arch: Architecture) -> Architecture:
    """The member of ``arch``'s isomorphism class a space with ``unique`` keeps (``arch``
    itself without ``unique``). A benchmark's graph (NAS-Bench-101 lists one per class, not
    necessarily nflc's representative) is in the space when this is."""
    sp = arch.space
    if not sp.ir.unique:
        return arch
    choices = {}
    cells = sp.filters_at(arch.numeric_digits).cells  # `unique` as it reads at the architecture's values
    for k in sp.instances:
        cs = cells[sp.cell_of[k].name]
        choices[k] = cs.choice(cs.representative(arch.cell_index(k)))
    return sp.architecture(sp.format_id(choices, tuple(arch.numeric.values())))


def not_in_space(arch: Architecture) -> str | None:
    """Why neither ``arch`` nor its class representative is in the space, or None."""
    if arch.rejection is None or class_representative(arch).rejection is None:
        return None
    return arch.rejection


# ---------------------------------------------------------------- encodings placed in a space

def darts_roles(space: Any) -> list[str]:
    """The role (``normal`` or ``reduce``) of each of a DARTS-like space's cell instances, in
    the space's order, from its spec: a cell with ``stride 2`` reduces. A genotype names its
    cells by role, so it is placed by role, never by position (a spec may place its reduction
    cell first)."""
    roles = ["reduce" if space.cell_of[k].stride > 1 else "normal" for k in space.instances]
    if sorted(roles) != sorted(DARTS_CELLS):
        shown = ", ".join(f"{space.cell_of[k].name} ({r})" for k, r in zip(space.instances, roles, strict=True)) or "none"
        raise EncodingError(f"a DARTS genotype has a normal and a reduction cell; space '{space.name}' has the cell "
                            f"instances {shown}", hint="a reduction cell is one with 'stride 2'")
    return roles


def _darts_in_space_order(space: Any, ident: str) -> str:
    """A DARTS id (normal ';' reduce) with its parts in the order of the space's instances."""
    parts = dict(zip(DARTS_CELLS, ident.split(";"), strict=True))
    return ";".join(parts[r] for r in darts_roles(space))


def _darts_in_role_order(space: Any, ident: str) -> str:
    """The inverse of :func:`_darts_in_space_order`: a space's id as normal ';' reduce."""
    parts = dict(zip(darts_roles(space), ident.split(";"), strict=True))
    return ";".join(parts[r] for r in DARTS_CELLS)


def architecture_from(space: Any, value: Any, fmt: str) -> Architecture:
    """The architecture of ``space`` that ``value`` (in format ``fmt``) names: a DARTS
    encoding's cells placed by role; a value of another benchmark's format is named as such."""
    if fmt == "id":
        return space.architecture(value)
    ident = to_id(value, fmt)
    family = FORMATS.get(fmt, "")
    if family == "darts" and not space.numeric and len(space.instances) == 2:
        ident = _darts_in_space_order(space, ident)
    try:
        return space.architecture(ident)
    except NflcError as exc:
        raise EncodingError(f"this is a {FAMILIES.get(family, '')} {fmt}, and it does not fit space '{space.name}': "
                            f"{exc.diagnostics[0].message if exc.diagnostics else exc}",
                            hint=f"space '{space.name}' takes ids like {space.example_id()!r}") from None


def benchmark_architecture(space: Any, ident: str) -> Architecture:
    """The architecture of a benchmark entry's id: a DARTS id (normal ';' reduce, as every
    DARTS encoding is read) placed by role in a space of a normal and a reduction cell."""
    if ";" in ident and not space.numeric and len(space.instances) == 2 and \
            sorted(c.stride > 1 for c in space.cell_of.values()) == [False, True]:
        try:
            ident = _darts_in_space_order(space, ident)
        except ValueError:  # not two parts: the space's own message follows
            pass
    return space.architecture(ident)


def value_in(arch: Architecture, fmt: str) -> Any:
    """``arch`` in format ``fmt`` (``index``: its raw index); a DARTS encoding names its
    cells by role, whatever their order in the space."""
    if fmt == "index":
        return arch.index
    ident = arch.id
    if FORMATS.get(fmt) == "darts" and not arch.space.numeric and len(arch.space.instances) == 2:
        ident = _darts_in_role_order(arch.space, ident)
    return from_id(ident, fmt)

