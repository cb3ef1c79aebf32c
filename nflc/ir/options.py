"""Space-wide options applied to a lowered IR (a pure IR -> IR pass).

``bias`` forces every linear and conv2d layer to have (or not have) a bias, overriding
per-call arguments: the paper's theory setting is ``bias=False``. ``prune`` leaves dead
edges out of modules and counts. ``init`` picks the weight initialisation scheme.
"""

from __future__ import annotations

from nflc import ops
from nflc.errors import SpaceError
from nflc.ir.lower import INIT_SCHEMES
from nflc.ir.model import PrimIR, SpaceIR

_HAS_BIAS = ("linear", "conv2d")


def _rebias(p: PrimIR, bias: bool) -> PrimIR:
    return PrimIR(name=p.name, args={**p.args, "bias": bias}) if p.name in _HAS_BIAS else p


def apply_options(ir: SpaceIR, bias: bool | None = None, prune: bool | None = None, init: str | None = None) -> SpaceIR:
    if init is not None and init not in INIT_SCHEMES:
        raise SpaceError(f"unknown init scheme '{init}'", hint="one of: " + ", ".join(INIT_SCHEMES))
    out = ir.model_copy(deep=True)
    if prune is not None:
        out.prune = prune
    if init is not None:
        out.init = init
    if bias is None:
        return out
    out.bias = bias
    for cell in out.cells.values():
        for e in cell.edges:
            for c in e.choices:
                c.prims = [_rebias(p, bias) for p in c.prims]
    for st in out.network:
        if st.kind == "prim" and st.prim is not None and st.prim.name in _HAS_BIAS:
            st.prim = _rebias(st.prim, bias)
            _, st.params, st.flops = ops.seq_cost((st.prim.to_prim(),), tuple(st.shape_in))
    return out
