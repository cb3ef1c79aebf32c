"""The lowering's passes (nflc/ir: scopes, evaluate, cells, network, checks) and the lint
after each: a malformed IR is an internal error, never a user's diagnostic."""

from __future__ import annotations

import pytest

import nflc.ir.cells as cells_pass
import nflc.ir.lower as lower
from nflc.errors import DiagnosticBag, NflcError
from nflc.ir.cells import lower_cells
from nflc.ir.checks import IRLintError, check_lint, check_space
from nflc.ir.context import LowerContext
from nflc.ir.evaluate import space_header
from nflc.ir.lower import compile_path, compile_text
from nflc.ir.model import ChoiceIR, PrimIR, SpaceIR
from nflc.ir.network import lower_network

from .conftest import SPECS

H3 = """space s {
    input [784]
    width 64
    cell {
        nodes 3
        edge * : zero | skip | linear >> relu as linear
    }
    network = flatten >> linear(width) >> relu >> cell x2 >> linear(10)
}
"""


def _darts() -> SpaceIR:
    return compile_path(SPECS / "darts.nfl").spaces["darts"]


def _h3() -> SpaceIR:
    return compile_text(H3).spaces["s"]


def _broken_edge_order(ir: SpaceIR) -> None:
    cell = ir.cells["cell"]
    cell.edges.reverse()


def _repeated_label(ir: SpaceIR) -> None:
    e = ir.cells["cell"].edges[0]
    e.choices.append(e.choices[0])


def _broken_shape_chain(ir: SpaceIR) -> None:
    ir.network[1].shape_in = [1, 2, 3]


def _unknown_instance(ir: SpaceIR) -> None:
    next(st for st in ir.network if st.kind == "cell").instance = "nowhere"


def _wrong_output(ir: SpaceIR) -> None:
    ir.output_shape = [11]


def _repeated_numeric(ir: SpaceIR) -> None:
    ir.numeric = {"width": [64, 64]}


@pytest.mark.parametrize("breaks, violation", [
    (_broken_edge_order, "edges not sorted by (dst, src)"),
    (_repeated_label, "has empty or repeated labels"),
    (_broken_shape_chain, "shape chain broken"),
    (_unknown_instance, "refers to an unknown cell instance"),
    (_wrong_output, "output shape does not match the last stage"),
    (_repeated_numeric, "numeric choice width has no values or repeated values"),
])
def test_lint_catches_a_deliberately_broken_ir(breaks, violation):
    ir = _h3()
    assert ir.lint() == []
    breaks(ir)
    bad = ir.lint()
    assert any(violation in v for v in bad), bad
    with pytest.raises(IRLintError, match="internal error: the IR of space 's' is malformed"):
        check_lint(bad, "space 's'")


def test_lint_catches_a_pick_cell_without_its_implicit_zero():
    ir = _darts()
    cell = ir.cells["normal(c=32)"]
    assert cell.lint() == []
    cell.edges[0].choices = cell.edges[0].choices[1:]  # what the pass adds first: `none`
    assert any("lacks its implicit zero" in v for v in cell.lint())
    assert any("lacks its implicit zero" in v for v in ir.lint())


def test_lint_catches_a_node_cell_edge_with_an_op():
    ir = compile_path(SPECS / "nb101.nfl").spaces["nb101"]
    cell = next(iter(ir.cells.values()))
    cell.edges[0].choices.append(ChoiceIR(label="relu", prims=[PrimIR(name="relu")]))
    assert any("has an op other than zero or skip" in v for v in cell.lint())


def test_a_pass_producing_broken_cells_is_an_internal_error(monkeypatch):
    real = cells_pass.lower_cell

    def reversed_edges(*args, **kwargs):
        cell = real(*args, **kwargs)
        return cell.model_copy(update={"edges": cell.edges[::-1]})

    monkeypatch.setattr(cells_pass, "lower_cell", reversed_edges)
    with pytest.raises(IRLintError, match="the IR of cell 'cell' is malformed.*not sorted"):
        compile_text(H3)
    # parameterized cells are linted where the network places them
    with pytest.raises(IRLintError, match=r"the IR of cell 'normal\(c=32\)' is malformed"):
        compile_path(SPECS / "darts.nfl")


def test_a_pass_producing_a_broken_network_is_an_internal_error(monkeypatch):
    real = lower.lower_network

    def broken(*args, **kwargs):
        net = real(*args, **kwargs)
        net.stages[2].shape_out = [7]
        return net

    monkeypatch.setattr(lower, "lower_network", broken)
    with pytest.raises(IRLintError, match="the IR of the network of space 's' is malformed.*shape chain broken"):
        compile_text(H3)


def test_the_whole_space_is_linted(monkeypatch):
    real = lower.space_header

    def repeated(ctx):
        header = real(ctx)
        header.numeric["width"] = [64, 64]
        return header

    monkeypatch.setattr(lower, "space_header", repeated)
    with pytest.raises(IRLintError, match="the IR of space 's' is malformed.*numeric choice width"):
        compile_text(H3)


def test_a_lint_failure_is_no_user_error():
    assert not issubclass(IRLintError, NflcError)  # the CLI reports NflcError as the user's mistake
    assert issubclass(IRLintError, AssertionError)


def test_the_passes_by_hand_give_the_driver_s_ir():
    prog = compile_path(SPECS / "nats_sss.nfl")
    (name, src), = prog.sources_by_space.items()
    ctx = LowerContext(src, DiagnosticBag(sources=src.sources))
    header = space_header(ctx)
    ctx.bias = header.bias
    cells = lower_cells(ctx)
    assert cells.plain == {} and set(cells.defs) == {"tss"}  # a parameterized cell: lowered where placed
    network = lower_network(ctx, header.input_shape, cells)
    assert network is not None and cells.variants  # the network placed the cell's variants
    constraints = check_space(ctx, network.stages)
    assert not ctx.failed and not constraints.budgets
    ir = prog.spaces[name]
    assert network.stages == ir.network and list(network.instances) == ir.instances
    assert {**cells.variants} == ir.cells
    lowered = lower.lower_space(src, DiagnosticBag(sources=src.sources))
    assert lowered.ir == ir and "c1" in lowered.used


def test_errors_stop_the_passes_before_lint():
    # a cell with an error is never linted (its IR is incomplete), the user gets diagnostics
    with pytest.raises(NflcError, match="does not go forward"):
        compile_text(H3.replace("edge * :", "edge 2 -> 1 : skip\n        edge * :"))
