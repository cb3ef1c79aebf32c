"""The IR: a checked, fully resolved space, as JSON-serialisable pydantic models.

Produced by :func:`nflc.ir.lower.lower`; consumed by :mod:`nflc.space` (counting,
enumeration), :mod:`nflc.cost`, :mod:`nflc.graph` and the backends. ``SpaceIR.to_text()``
prints one stable line per node; ``SpaceIR.lint()`` checks the invariants.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict

from nflc import ops


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
    nodes: int  # H + 1: X0 (input) .. XH (output)
    node_names: list[str]
    edges: list[EdgeIR]  # sorted by (dst, src): NAS-Bench-201's order
    span: SourceSpan | None = None
    channels: int | None = None  # channels (features) of nodes 1..H; None: the cell's input's
    definition: str | None = None  # the cell definition a parameterized cell was lowered from
    # a node cell (NAS-Bench-101's): edges are `zero | skip` (absent or present), each
    # intermediate node applies its chosen op; see docs/LANGUAGE.md, "Node cells"
    node_ops: list[NodeIR] = []

    @property
    def is_node_cell(self) -> bool:
        return bool(self.node_ops)

    def radices(self) -> list[int]:
        """The number of choices of every digit of a cell choice: edges, then node ops."""
        return [len(e.choices) for e in self.edges] + [len(n.choices) for n in self.node_ops]

    def node_shapes(self, shape_in) -> list[tuple[int, ...]]:
        """The shape of every node X0..XH when the cell is placed on ``shape_in``."""
        shape_in = tuple(shape_in)
        inner = shape_in if self.channels is None else (self.channels, *shape_in[1:])
        return [shape_in] + [inner] * (self.nodes - 1)

    def edge_shapes(self, shape_in) -> list[tuple[int, ...]]:
        """The input shape of every edge (its source node's shape), in edge order."""
        nodes = self.node_shapes(shape_in)
        return [nodes[e.src] for e in self.edges]


class StageIR(BaseModel):
    """One step of the macro network: a primitive op or one placement of a cell."""

    kind: Literal["prim", "cell"]
    prim: PrimIR | None = None
    cell: str | None = None
    instance: str | None = None  # placements with the same instance share their choices
    shape_in: list[int]
    shape_out: list[int]
    params: int = 0  # of a primitive stage; cell costs depend on the architecture
    flops: int = 0
    span: SourceSpan | None = None


class BudgetIR(BaseModel):
    metric: Literal["params", "flops"]
    cmp: Literal["<=", ">=", "==", "!=", "<", ">"]
    value: int
    tolerance: float = 0.0  # absolute, same unit as value
    scale: str | None = None  # a constant to solve for (`scale width`)
    span: SourceSpan | None = None


class RequireIR(BaseModel):
    metric: str
    cmp: Literal["<=", ">=", "==", "!=", "<", ">"]
    value: float
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
            lines.append(f"  cell {cell.name} nodes={cell.nodes}" + (f" channels={cell.channels}" if cell.channels else ""))
            for e in cell.edges:
                ch = " | ".join(f"{c.label}=" + " >> ".join(str(p) for p in c.prims) for c in e.choices)
                lines.append(f"    edge {e.src}->{e.dst}: {ch}")
            for nd in cell.node_ops:
                ch = " | ".join(f"{c.label}=" + " >> ".join(str(p) for p in c.prims) for c in nd.choices)
                lines.append(f"    node {nd.node}: {ch}")
        for i, st in enumerate(self.network):
            what = str(st.prim) if st.kind == "prim" else f"cell {st.cell} [{st.instance}]"
            lines.append(f"  %{i} = {what}  {st.shape_in} -> {st.shape_out}"
                         + (f"  params={st.params} flops={st.flops}" if st.kind == "prim" else ""))
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
            keys = [(e.dst, e.src) for e in cell.edges]
            if keys != sorted(set(keys)):
                bad.append(f"cell {cell.name}: edges not sorted by (dst, src) or duplicated")
            for e in cell.edges:
                if not 0 <= e.src < e.dst < cell.nodes:
                    bad.append(f"cell {cell.name}: edge {e.src}->{e.dst} out of range")
                labels = [c.label for c in e.choices]
                if len(set(labels)) != len(labels) or not labels:
                    bad.append(f"cell {cell.name}: edge {e.src}->{e.dst} has empty or repeated labels")
            if cell.node_ops:
                if [nd.node for nd in cell.node_ops] != list(range(1, cell.nodes - 1)):
                    bad.append(f"node cell {cell.name}: node ops not given for nodes 1..{cell.nodes - 2} in order")
                for e in cell.edges:
                    if any(p.name not in ("zero", "skip") for c in e.choices for p in c.prims):
                        bad.append(f"node cell {cell.name}: edge {e.src}->{e.dst} has an op other than zero or skip")
        for st in self.network:
            cell_name, instance = st.cell or "", st.instance or ""  # a cell stage names both ("" is no name)
            if st.kind == "cell" and (instance not in self.instance_cell or cell_name not in self.cells):
                bad.append(f"stage {st} refers to an unknown cell instance")
            elif st.kind == "cell" and list(self.cells[cell_name].node_shapes(st.shape_in)[-1]) != st.shape_out:
                bad.append(f"stage {st}: its output shape is not its cell's output node's")
            elif st.kind == "cell":
                first = self.cells[self.instance_cell[instance]]
                here = self.cells[cell_name]
                if [(e.src, e.dst, [c.label for c in e.choices]) for e in first.edges] != \
                        [(e.src, e.dst, [c.label for c in e.choices]) for e in here.edges]:
                    bad.append(f"stage {st}: placements sharing instance {st.instance} differ in their edges")
        for k, vs in self.numeric.items():
            if not vs or len(set(vs)) != len(vs):
                bad.append(f"numeric choice {k} has no values or repeated values")
        for a, b in itertools.pairwise(self.network):
            if a.shape_out != b.shape_in:
                bad.append(f"shape chain broken between {a} and {b}")
        if self.network and self.network[-1].shape_out != self.output_shape:
            bad.append("output shape does not match the last stage")
        return bad
