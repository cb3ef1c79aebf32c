"""The IR: a checked, fully resolved space, as JSON-serialisable pydantic models.

Produced by the passes :mod:`nflc.ir.lower` drives; consumed by :mod:`nflc.space` (counting,
enumeration, costs, graphs) and the backends. ``SpaceIR.to_text()``
prints one stable line per node; ``SpaceIR.lint()`` checks the invariants (``CellIR.lint``,
``lint_stages`` and ``lint_shape_chain`` check the parts the passes produce).
"""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction
from typing import Annotated, Any, Literal, Sequence

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from nflc import ops


def _to_exact(v: Any) -> int | Fraction:
    """An int, a Fraction, or their JSON form (a float that holds the value exactly, or
    "p/q"); a whole Fraction becomes an int."""
    if isinstance(v, bool) or not isinstance(v, (int, float, Fraction, str)):
        raise ValueError(f"an exact number is an int, a Fraction or 'p/q', not {v!r}")
    f = Fraction(v)
    return f.numerator if f.denominator == 1 else f


def _exact_json(v: int | Fraction) -> float | str:
    """A float where it holds ``v`` exactly (as bounds were written before they were exact,
    so the spec hash of an existing spec stays the same), else the exact "p/q" text."""
    f = float(v)
    return f if Fraction(f) == v else str(v)


# A filter's bound or tolerance: exact (issue #28: `require params <= 2 ** 53 + 1` must not
# become the float 2**53).
Exact = Annotated[Any, BeforeValidator(_to_exact), PlainSerializer(_exact_json)]


class SourceSpan(BaseModel):
    model_config = ConfigDict(frozen=True)
    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None


class PrimIR(BaseModel):
    """A primitive op with its arguments (shape-dependent defaults are bound in place)."""

    model_config = ConfigDict(frozen=True)
    name: str
    args: dict[str, int | bool] = {}

    def to_prim(self) -> ops.Prim:
        spec = ops.PRIMS[self.name]
        order = [p.name for p in spec.params]
        return ops.Prim(self.name, tuple((k, self.args[k]) for k in order if k in self.args))

    def __str__(self) -> str:
        return str(self.to_prim())


class ChoiceIR(BaseModel):
    label: str  # the name architecture ids use
    prims: list[PrimIR]
    aliases: list[str] = []  # other names ids may use for it (NAS-Bench-201's, for instance)
    span: SourceSpan | None = None

    def prim_tuple(self) -> tuple[ops.Prim, ...]:
        return tuple(p.to_prim() for p in self.prims)


class EdgeIR(BaseModel):
    src: int
    dst: int
    choices: list[ChoiceIR]
    span: SourceSpan | None = None


class NodeIR(BaseModel):
    """The op choices of an intermediate node of a node cell (`node * : ...`)."""

    node: int
    choices: list[ChoiceIR]
    span: SourceSpan | None = None


class CellIR(BaseModel):
    name: str
    nodes: int  # X0 .. X(nodes-1); a `sum` cell's last node is its output
    node_names: list[str]
    edges: list[EdgeIR]  # sorted by (dst, src): NAS-Bench-201's order
    span: SourceSpan | None = None
    channels: int | None = None  # channels (features) of the non-input nodes; None: the cell's input's
    definition: str | None = None  # the cell definition a parameterized cell was lowered from
    # a node cell (NAS-Bench-101's): edges are `zero | skip` (absent or present), each
    # intermediate node applies its chosen op; see docs/LANGUAGE.md, "Node cells"
    node_ops: list[NodeIR] = []
    # DARTS's cells (docs/LANGUAGE.md, "Cells with two inputs"): X0 .. X(inputs-1) are inputs;
    # `concat`: every other node is intermediate and the output concatenates them all
    inputs: int = 1
    output: Literal["sum", "concat"] = "sum"
    # every intermediate node keeps exactly `pick` of its incoming edges, each with one of the
    # edge's ops; the lowering puts an implicit `zero` first on every such edge (edge not picked)
    pick: int | None = None
    stride: int = 1  # 2: a reduction cell (already bound into the ops of edges from the inputs)

    @property
    def is_node_cell(self) -> bool:
        return bool(self.node_ops)

    @property
    def intermediates(self) -> list[int]:
        """The nodes that are neither inputs nor the output."""
        last = self.nodes if self.output == "concat" else self.nodes - 1
        return list(range(self.inputs, last))

    def _pick_groups(self) -> list[tuple[int, list[int]]]:
        """For a `pick` cell: (node, indices of its incoming edges) for every intermediate node."""
        return [(t, [k for k, e in enumerate(self.edges) if e.dst == t]) for t in self.intermediates]

    def _sizes(self, ks: list[int]) -> list[int]:
        """The number of ops of each of a node's incoming edges (without the implicit zero)."""
        return [len(self.edges[k].choices) - 1 for k in ks]

    def radices(self) -> list[int]:
        """The number of values of every digit of a cell choice: edges, then node ops; for a
        `pick` cell one digit per intermediate node (which edges it picks, and their ops)."""
        if self.pick is not None:
            return [_pick_table(tuple(self._sizes(ks)), self.pick)[0][self.pick] for _, ks in self._pick_groups()]
        return [len(e.choices) for e in self.edges] + [len(n.choices) for n in self.node_ops]

    def expand(self, digits: tuple[int, ...]) -> tuple[int, ...]:
        """The choice of every edge (then node) from the digits of :meth:`radices`: the
        identity except for `pick` cells, whose unpicked edges take choice 0 (`zero`)."""
        if self.pick is None:
            return tuple(digits)
        out = [0] * len(self.edges)
        for (_, ks), d in zip(self._pick_groups(), digits, strict=True):
            for pos, op in _unrank_pick(tuple(self._sizes(ks)), self.pick, d):
                out[ks[pos]] = op + 1
        return tuple(out)

    def compress(self, choice: tuple[int, ...]) -> tuple[int, ...]:
        """Inverse of :meth:`expand` (ValueError when a node does not pick exactly `pick` edges)."""
        if self.pick is None:
            return tuple(choice)
        digits = []
        for t, ks in self._pick_groups():
            picked = [(pos, choice[k] - 1) for pos, k in enumerate(ks) if choice[k]]
            if len(picked) != self.pick:
                raise ValueError(f"node {t} of cell '{self.name}' picks {len(picked)} edges, not {self.pick}")
            digits.append(_rank_pick(tuple(self._sizes(ks)), self.pick, picked))
        return tuple(digits)

    def choice_structure(self) -> tuple:
        """What a choice of this cell means (nodes, inputs, output, pick, edges and node ops
        with their labels): placements sharing a choice, and a space at every value of its
        numeric choices, must agree on it; widths and strides may differ."""
        return (self.nodes, self.inputs, self.output, self.pick,
                tuple((e.src, e.dst, tuple(c.label for c in e.choices)) for e in self.edges),
                tuple((nd.node, tuple(c.label for c in nd.choices)) for nd in self.node_ops))

    def node_shapes(self, shape_in: Sequence[int]) -> list[tuple[int, ...]]:
        """The shape of every node X0..X(nodes-1) when the cell is placed on ``shape_in`` (a
        two-input cell's inputs are preprocessed to ``channels`` at ``shape_in``'s size)."""
        shape_in = tuple(shape_in)
        inner = shape_in if self.channels is None else (self.channels, *shape_in[1:])
        if self.inputs > 1 or self.stride > 1:
            first = inner if self.inputs > 1 else shape_in
            inner = (inner[0], *(-(-n // self.stride) for n in inner[1:]))
            return [first] * self.inputs + [inner] * (self.nodes - self.inputs)
        return [shape_in] + [inner] * (self.nodes - 1)

    def output_shape(self, shape_in: Sequence[int]) -> tuple[int, ...]:
        """The shape of the cell's output: its last node, or the concatenation of its intermediates."""
        last = self.node_shapes(shape_in)[-1]
        if self.output == "concat":
            return (last[0] * len(self.intermediates), *last[1:])
        return last

    def edge_shapes(self, shape_in: Sequence[int]) -> list[tuple[int, ...]]:
        """The input shape of every edge (its source node's shape), in edge order."""
        nodes = self.node_shapes(shape_in)
        return [nodes[e.src] for e in self.edges]

    def lint(self) -> list[str]:
        """Invariant violations of the cell alone (empty when it is well formed)."""
        bad: list[str] = []
        keys = [(e.dst, e.src) for e in self.edges]
        if keys != sorted(set(keys)):
            bad.append(f"cell {self.name}: edges not sorted by (dst, src) or duplicated")
        for e in self.edges:
            if not 0 <= e.src < e.dst < self.nodes:
                bad.append(f"cell {self.name}: edge {e.src}->{e.dst} out of range")
            labels = [c.label for c in e.choices]
            if len(set(labels)) != len(labels) or not labels:
                bad.append(f"cell {self.name}: edge {e.src}->{e.dst} has empty or repeated labels")
        if self.pick is not None:
            zero = (ops.Prim("zero"),)
            for e in self.edges:
                if e.dst < self.inputs or not e.choices or e.choices[0].prim_tuple() != zero or \
                        "zero" in {p.name for c in e.choices[1:] for p in c.prims}:
                    bad.append(f"cell {self.name}: edge {e.src}->{e.dst} of a pick cell lacks its implicit zero")
            for t, ks in self._pick_groups():
                if len(ks) < self.pick:
                    bad.append(f"cell {self.name}: node {t} has {len(ks)} incoming edges, fewer than pick {self.pick}")
        if self.inputs > 1 and (self.output != "concat" or self.channels is None):
            bad.append(f"cell {self.name}: a two-input cell needs `output concat` and `channels`")
        if self.node_ops:
            if [nd.node for nd in self.node_ops] != list(range(1, self.nodes - 1)):
                bad.append(f"node cell {self.name}: node ops not given for nodes 1..{self.nodes - 2} in order")
            for e in self.edges:
                if any(p.name not in ("zero", "skip") for c in e.choices for p in c.prims):
                    bad.append(f"node cell {self.name}: edge {e.src}->{e.dst} has an op other than zero or skip")
        return bad


# A `pick` node's digit enumerates its K-subsets of incoming edges in lexicographic order, each
# subset's block holding the picked edges' ops (the first edge's most significant). Block
# sizes are products, so the counts are elementary symmetric polynomials of the edges' op
# counts, computed by a recurrence rather than by listing the subsets.

@functools.lru_cache(maxsize=4096)
def _pick_table(sizes: tuple[int, ...], k: int) -> list[list[int]]:
    """``e[i][j]``: the total over j-subsets S of edges i.. of the product of their op counts."""
    m = len(sizes)
    e = [[0] * (k + 1) for _ in range(m + 1)]
    for i in range(m, -1, -1):
        e[i][0] = 1
        if i < m:
            for j in range(1, k + 1):
                e[i][j] = sizes[i] * e[i + 1][j - 1] + e[i + 1][j]
    return e


def _subset_at(sizes: tuple[int, ...], e: list[list[int]], k: int, d: int, i: int = 0) -> tuple[list[int], int]:
    """(the subset of k edges from i.. whose block holds index ``d``, the block's first index);
    ``e``: :func:`_pick_table` of ``sizes`` (for any larger k: its rows hold every smaller one)."""
    if k == 0:
        return [], 0
    take = sizes[i] * e[i + 1][k - 1]  # subsets that pick edge i come first
    if d < take:
        # inside them the rest's blocks are scaled by edge i's op count
        rest, start = _subset_at(sizes, e, k - 1, d // sizes[i], i + 1)
        return [i, *rest], sizes[i] * start
    rest, start = _subset_at(sizes, e, k, d - take, i + 1)
    return rest, take + start


def _unrank_pick(sizes: tuple[int, ...], k: int, d: int) -> list[tuple[int, int]]:
    """(edge position, op) of every edge a node picks, from its digit ``d``."""
    subset, start = _subset_at(sizes, _pick_table(sizes, k), k, d)
    v, ops = d - start, []
    for p in reversed(subset):  # the first picked edge's op is the most significant
        v, op = divmod(v, sizes[p])
        ops.append((p, op))
    return ops[::-1]


def _rank_pick(sizes: tuple[int, ...], k: int, picked: list[tuple[int, int]]) -> int:
    """The digit of a node that picks ``picked`` = [(edge position, op)], sorted by position."""
    e = _pick_table(sizes, k)
    positions = {p for p, _ in picked}
    start, scale, j = 0, 1, k
    for i in range(len(sizes)):
        if not j:
            break
        if i in positions:
            scale *= sizes[i]
            j -= 1
        else:
            start += scale * sizes[i] * e[i + 1][j - 1]
    v = 0
    for p, op in picked:
        v = v * sizes[p] + op
    return start + v


class _Stage(BaseModel):
    """The fields every stage has, in the order the IR's JSON lists them: a stage of one
    kind has the other kind's fields too, empty (so the JSON and the spec hash keep one form)."""

    kind: Literal["prim", "cell"]
    prim: PrimIR | None = None
    cell: str | None = None
    instance: str | None = None  # placements with the same instance share their choices
    shape_in: list[int]
    shape_out: list[int]
    params: int = 0  # of a primitive stage (or a cell's preprocessing); cell costs depend on the architecture
    flops: int = 0
    # a two-input cell: the shape of X0's source (the input of the cell placed before it, or
    # its own input for the first) and each input's preprocessing, bound (X0's, then X1's)
    shape_prev: list[int] | None = None
    preprocess: list[list[PrimIR]] = []
    span: SourceSpan | None = None


class PrimStage(_Stage):
    """A step of the macro network that applies one primitive op."""

    kind: Literal["prim"] = "prim"
    prim: PrimIR


class CellStage(_Stage):
    """A step of the macro network that places a cell (``instance``: whose choices it takes)."""

    kind: Literal["cell"] = "cell"
    cell: str
    instance: str


# One step of the macro network: a primitive op or one placement of a cell (tagged by ``kind``).
StageIR = Annotated[PrimStage | CellStage, Field(discriminator="kind")]


class BudgetIR(BaseModel):
    metric: Literal["params", "flops"]
    cmp: Literal["<=", ">=", "==", "!=", "<", ">"]
    value: int
    tolerance: Exact = 0  # absolute, same unit as value (exact: 1% of 10**30 is 10**28)
    scale: str | None = None  # a constant to solve for (`scale width`)
    span: SourceSpan | None = None


class RequireIR(BaseModel):
    metric: str
    cmp: Literal["<=", ">=", "==", "!=", "<", ">"]
    value: Exact
    span: SourceSpan | None = None


class SpaceIR(BaseModel):
    name: str
    file: str
    constants: dict[str, int]
    input_shape: list[int]
    output_shape: list[int]
    bias: bool = True
    prune: bool = False  # leave dead edges out of modules and parameter counts
    init: str = "he_normal"
    cells: dict[str, CellIR]
    instances: list[str]  # choice-carrying cell instances, in network order
    instance_cell: dict[str, str]
    network: list[StageIR]
    budgets: list[BudgetIR] = []
    requires: list[RequireIR] = []
    unique: bool = False
    # numeric choices (`c1 in {8, 16}`): name -> values, in declaration order; the IR itself
    # is lowered at one value of each (the first, unless overridden)
    numeric: dict[str, list[int]] = {}

    def to_text(self) -> str:
        """One stable line per node (for diffs and golden tests)."""
        lines = [f"space {self.name}  input={self.input_shape} output={self.output_shape}"
                 f" bias={str(self.bias).lower()} prune={str(self.prune).lower()} init={self.init}"]
        for k, v in self.constants.items():
            lines.append(f"  const {k} = {v}")
        for k, vs in self.numeric.items():
            lines.append(f"  choice {k} in {{{', '.join(map(str, vs))}}}")
        for cell in self.cells.values():
            lines.append(f"  cell {cell.name} nodes={cell.nodes}" + (f" channels={cell.channels}" if cell.channels else "")
                         + (f" inputs={cell.inputs}" if cell.inputs != 1 else "")
                         + (f" output={cell.output}" if cell.output != "sum" else "")
                         + (f" pick={cell.pick}" if cell.pick is not None else "")
                         + (f" stride={cell.stride}" if cell.stride != 1 else ""))
            for e in cell.edges:
                ch = " | ".join(f"{c.label}=" + " >> ".join(str(p) for p in c.prims) for c in e.choices)
                lines.append(f"    edge {e.src}->{e.dst}: {ch}")
            for nd in cell.node_ops:
                ch = " | ".join(f"{c.label}=" + " >> ".join(str(p) for p in c.prims) for c in nd.choices)
                lines.append(f"    node {nd.node}: {ch}")
        for i, st in enumerate(self.network):
            what = str(st.prim) if st.kind == "prim" else f"cell {st.cell} [{st.instance}]"
            lines.append(f"  %{i} = {what}  {st.shape_in} -> {st.shape_out}"
                         + (f"  params={st.params} flops={st.flops}" if st.kind == "prim" or st.preprocess else ""))
            for x, pre in enumerate(st.preprocess):
                lines.append(f"    X{x} <- " + " >> ".join(str(p) for p in pre))
        for b in self.budgets:
            lines.append(f"  budget {b.metric} {b.cmp} {b.value} +- {b.tolerance}" + (f" scale {b.scale}" if b.scale else ""))
        for r in self.requires:
            lines.append(f"  require {r.metric} {r.cmp} {r.value}")
        if self.unique:
            lines.append("  unique")
        return "\n".join(lines)

    def lint(self) -> list[str]:
        """Invariant violations (empty when the IR is well formed)."""
        bad: list[str] = []
        for cell in self.cells.values():
            bad += cell.lint()
        bad += lint_stages(self.network, self.cells, self.instance_cell)
        for k, vs in self.numeric.items():
            if not vs or len(set(vs)) != len(vs):
                bad.append(f"numeric choice {k} has no values or repeated values")
        bad += lint_shape_chain(self.network)
        if self.network and self.network[-1].shape_out != self.output_shape:
            bad.append("output shape does not match the last stage")
        return bad


def lint_stages(network: list[StageIR], cells: dict[str, CellIR], instance_cell: dict[str, str]) -> list[str]:
    """Violations of the network's stages: cell stages name a known cell and instance, give
    their cell's output shape, and placements sharing an instance have the same edges."""
    bad: list[str] = []
    edges: dict[str, list[tuple[int, int, list[str]]]] = {}  # cell -> its edges' structure (computed once)
    for st in network:
        cell_name, instance = st.cell or "", st.instance or ""  # a cell stage names both ("" is no name)
        if st.kind == "cell" and (instance not in instance_cell or cell_name not in cells):
            bad.append(f"stage {st} refers to an unknown cell instance")
        elif st.kind == "cell" and list(cells[cell_name].output_shape(st.shape_in)) != st.shape_out:
            bad.append(f"stage {st}: its output shape is not its cell's output node's")
        elif st.kind == "cell" and instance_cell[instance] != cell_name:  # (a cell agrees with itself)
            for name in (instance_cell[instance], cell_name):
                if name not in edges:
                    edges[name] = [(e.src, e.dst, [c.label for c in e.choices]) for e in cells[name].edges]
            if edges[instance_cell[instance]] != edges[cell_name]:
                bad.append(f"stage {st}: placements sharing instance {st.instance} differ in their edges")
    return bad


def lint_shape_chain(network: list[StageIR]) -> list[str]:
    """Violations of the shape chain: every stage takes the shape the one before it gives."""
    return [f"shape chain broken between {a} and {b}" for a, b in itertools.pairwise(network) if a.shape_out != b.shape_in]
