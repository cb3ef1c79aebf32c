"""Exact parameter and FLOP counts of architectures, from the IR alone.

A cost model precomputes, for one lowered space, the cost of every (cell placement, edge,
choice); an architecture's cost is then a sum. By default dead edges (non-zero edges on no
input-to-output path) are counted, as NAS-Bench-201 and the paper's code build them;
``prune=True`` leaves them out, as the pruned torch module does.
"""

from __future__ import annotations

from dataclasses import dataclass

from nflc import ops
from nflc.ir.model import CellIR, SpaceIR
from nflc.space.graph import NodeCellPlan


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int


class CostModel:
    def __init__(self, ir: SpaceIR):
        self.ir = ir
        # primitive stages, and the preprocessing of two-input cells (the same in every architecture)
        self.fixed_params = sum(st.params for st in ir.network)
        self.fixed_flops = sum(st.flops for st in ir.network)
        # placements[instance] = list of tables, one per placement: table[edge][choice] = (params, flops)
        self.placements: dict[str, list[list[list[tuple[int, int]]]]] = {k: [] for k in ir.instances}
        # node cells (NAS-Bench-101's) cost what their pruned graph builds: (instance, cell, shape in, channels out)
        self.node_placements: list[tuple[str, CellIR, tuple[int, ...], int]] = []
        self._node_costs: dict[tuple, tuple[int, int]] = {}
        for st in ir.network:
            if st.kind == "cell" and ir.cells[st.cell].is_node_cell:
                self.node_placements.append((st.instance, ir.cells[st.cell], tuple(st.shape_in), st.shape_out[0]))
            elif st.kind == "cell":
                cell = ir.cells[st.cell]
                table = []
                for e, shape in zip(cell.edges, cell.edge_shapes(st.shape_in), strict=False):
                    row = []
                    for c in e.choices:
                        prims = c.prim_tuple()
                        if any(p.name == "zero" for p in prims):
                            row.append((0, 0))
                        else:
                            _, p, f = ops.seq_cost(prims, shape, cell.channels)
                            row.append((p, f))
                    table.append(row)
                self.placements[st.instance].append(table)

    def cost(self, choices: dict[str, tuple[int, ...]], dead: dict[str, set[int]] | None = None) -> Cost:
        """Cost of an architecture; ``dead[instance]`` = edge indices to leave out (pruning)."""
        params, flops = self.fixed_params, self.fixed_flops
        for inst, tables in self.placements.items():
            ch = choices[inst]
            skip = dead.get(inst, set()) if dead else set()
            for table in tables:
                for i, (row, c) in enumerate(zip(table, ch, strict=False)):
                    if i not in skip:
                        p, f = row[c]
                        params += p
                        flops += f
        for inst, cell, shape, c_out in self.node_placements:
            key = (cell.name, shape, c_out, choices[inst])
            if key not in self._node_costs:
                self._node_costs[key] = NodeCellPlan(cell, choices[inst], shape, c_out).cost()
            p, f = self._node_costs[key]
            params, flops = params + p, flops + f
        return Cost(params, flops)
