"""Text -> AST: the grammar, numbers, spans, every statement; and AST -> IR for the
constructs the specs in specs/ do not use."""

from __future__ import annotations

import pytest

import nflc
from nflc import ops
from nflc.errors import NflcError, SyntaxError_
from nflc.syntax import ast, parse
from nflc.syntax.parser import parse_number

from .conftest import BASE


@pytest.mark.parametrize("text,value", [("256", 256), ("1_000", 1000), ("20k", 20_000), ("1.5M", 1_500_000),
                                        ("2G", 2 * 10**9), ("0.5", 0.5), ("1.25k", 1250), ("3K", 3000)])
def test_numbers(text, value):
    assert parse_number(text) == value and type(parse_number(text)) is type(value)


def test_every_statement_parses_with_spans():
    text = '''\
import "lib.nfl"          # a comment
op top(k, c = 2 * width) = relu >> conv2d(k, c)
space demo {
    input [3, 32, 32]
    width = 16
    bias false
    prune dead
    init xavier_normal
    cell normal {
        nodes [a, b, c]
        edge a -> b : skip | zero as off
        edge 0 -> 2 : (relu >> skip) x2
    }
    network = top(3) >> normal x3 independent >> normal x2 shared >> global_avg_pool
    budget params <= 1.5M
    budget flops == 20M +- 5% scale width
    require paths >= 1
    unique
}
'''
    m = parse(text, "demo.nfl")
    imp, top, space = m.items
    assert isinstance(imp, ast.Import) and imp.path == "lib.nfl" and (imp.span.line, imp.span.column) == (1, 1)
    assert isinstance(top, ast.OpDef) and [p.name for p in top.params] == ["k", "c"]
    assert top.params[1].default is not None and top.name_span.column == 4
    assert isinstance(space, ast.SpaceDef) and space.name == "demo"
    kinds = [type(i).__name__ for i in space.items]
    assert kinds == ["InputStmt", "ConstDef", "Option", "Option", "Option", "CellDef", "NetworkDef", "Budget", "Budget",
                     "Require", "Unique"]
    cell = space.items[5]
    assert cell.name == "normal" and cell.nodes[0].names == ("a", "b", "c")
    e1, e2 = cell.edges
    assert (e1.src.value, e1.dst.value) == ("a", "b") and [c.label for c in e1.choices] == [None, "off"]
    assert (e2.src.value, e2.dst.value) == (0, 2) and (e2.span.line, e2.span.column) == (12, 9)
    net = space.items[6].body.items
    assert isinstance(net[1], ast.Repeat) and net[1].count == 3 and net[1].mode == "independent"
    assert net[2].mode == "shared"
    b1, b2 = space.items[7:9]
    assert b1.value.value == 1_500_000 and b1.tolerance is None
    assert b2.percent and b2.tolerance.value == 5 and b2.scale == "width" and b2.scale_span.column == 37
    assert (b2.metric_span.line, b2.metric_span.column) == (16, 12)


def _lalr_conflicts(grammar: str) -> list[str]:
    """Shift/reduce conflicts lark reports (on its logger, at debug level) while building an
    LALR table for ``grammar``; reduce/reduce conflicts raise GrammarError by themselves."""
    import logging

    import lark

    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            if "conflict" in record.getMessage().lower():
                found.append(record.getMessage())

    handler, level = Collect(logging.DEBUG), lark.logger.level
    lark.logger.addHandler(handler)
    lark.logger.setLevel(logging.DEBUG)
    try:
        lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)
    finally:
        lark.logger.removeHandler(handler)
        lark.logger.setLevel(level)
    return found


def test_grammar_is_lalr_without_conflicts():
    from nflc.syntax.parser import _parser, grammar_text

    assert _parser().options.parser == "lalr"
    assert _lalr_conflicts(grammar_text()) == []
    # the check sees a conflict where there is one: the dangling else
    dangling = '''
start: stmt
stmt: "if" NAME stmt ("else" stmt)? | NAME
%import common.CNAME -> NAME
%ignore " "
'''
    assert any("ELSE" in m for m in _lalr_conflicts(dangling))


def test_keywords_are_still_names_where_a_name_is_expected():
    """`cell` is a statement keyword and the default cell's name; x1 is a repeat and a name."""
    sp = nflc.loads(BASE.replace("nodes 4", "nodes [x0, x1, x2, x3]").replace("edge * :", "edge x0 -> x3 :"))
    assert sp.count() == 3 and sp.ir.cells["cell"].node_names == ["x0", "x1", "x2", "x3"]


def test_syntax_error_is_a_syntax_error_with_position():
    with pytest.raises(SyntaxError_) as info:
        parse("space s {\n  input [784\n}\n", "f.nfl")
    d = info.value.diagnostics[0]
    assert (d.span.file, d.span.line, d.span.column) == ("f.nfl", 3, 1)
    assert "expected" in d.message and "']'" in d.message


def test_unclosed_brace_hint_names_the_opening_brace():
    with pytest.raises(SyntaxError_) as info:
        parse('space s {\n  cell {\n    nodes 2  # } not this one\n', "f.nfl")
    assert info.value.diagnostics[0].hint == "is a '}' missing? the '{' at line 2, column 8 is never closed"


def test_comments_and_blank_lines_are_ignored():
    assert nflc.loads("# head\n\n" + BASE.replace("width 256", "width 256   # the width\n\n")).count() == 729


def test_user_ops_with_parameters_and_defaults():
    text = BASE.replace("input [784]", "input [3, 8, 8]").replace("flatten >> linear(width) >> relu >> cell",
                                                                  "conv2d(3, width) >> cell >> global_avg_pool")
    text = text.replace("    cell {", "    op conv(k, c = width) = relu >> conv2d(k, c) >> batchnorm\n"
                                     "    op nor(k) = relu >> conv2d(k) >> batchnorm\n    cell {")
    text = text.replace("zero | skip | linear >> relu as linear", "none | conv(1) | conv(3) | nor(3) | nor_conv_3x3")
    with pytest.raises(NflcError, match="appears twice"):  # labels are the text unless named with `as`
        nflc.loads(text.replace("nor(3)", "conv(3)"))
    sp = nflc.loads(text)
    edge = sp.ir.cells["cell"].edges[0]
    assert [c.label for c in edge.choices] == ["none", "conv(1)", "conv(3)", "nor(3)", "nor_conv_3x3"]
    conv3, nor3, nb = (c.prim_tuple() for c in edge.choices[2:])
    assert conv3[1] == ops.Prim("conv2d", (("k", 3), ("out", 256), ("stride", 1), ("padding", 1), ("bias", True)))
    assert nor3 == nb and ops.seq_bind(nor3, (256, 8, 8)) == conv3  # `out` defaults to the input's channels
    assert "nor_conv_3x3" in edge.choices[3].aliases  # ids may use NAS-Bench-201's name for it


def test_constants_arithmetic_and_top_level_constants():
    text = "hidden = 2 ** 3 * (10 - 2) // 4 + -1\n" + BASE.replace("width 256", "width hidden * 2")
    sp = nflc.loads(text)
    assert sp.ir.constants["width"] == 30


def test_several_spaces_in_one_file():
    text = BASE + BASE.replace("space s", "space t").replace("nodes 4", "nodes 3")
    with pytest.raises(NflcError, match="defines 2 spaces"):
        nflc.loads(text)
    assert nflc.loads(text, space="t").count() == 27


def test_fixed_edges_and_named_choices():
    text = BASE.replace("edge * : zero | skip | linear >> relu as linear",
                        "edge 0 -> 1 : linear >> relu as lin\n        edge X1 -> X3 : skip | zero\n"
                        "        edge 0 -> 3 : skip")
    sp = nflc.loads(text)
    assert sp.count() == 2
    assert sp.architecture(0).id == "|lin~0|+||+|skip~0|skip~1|"
    assert sp.architecture("|lin~0|+||+|skip~0|zero~1|").index == 1


def test_repeated_edge_warns_and_the_later_wins():
    text = BASE.replace("edge * : zero | skip | linear >> relu as linear", "edge * : zero | skip\n        edge 0 -> 3 : skip")
    sp = nflc.loads(text)
    assert sp.count() == 2 ** 5
    assert not [w for w in sp.warnings if "given again" in w.message]  # `*` then one pair: no warning
    text2 = text.replace("edge 0 -> 3 : skip", "edge 0 -> 3 : skip\n        edge 0 -> 3 : zero")
    sp2 = nflc.loads(text2)
    assert [w.message for w in sp2.warnings] == ["edge 0 -> 3 is given again; the later statement wins"]
    assert sp2.architecture(0).graph.edges[0, 3]["op"] == "zero"


def test_options_reach_the_ir():
    text = BASE.replace("width 256", "width 256\n    bias false\n    prune dead\n    init xavier_uniform")
    ir = nflc.loads(text).ir
    assert (ir.bias, ir.prune, ir.init) == (False, True, "xavier_uniform")
    assert ir.network[1].prim.args["bias"] is False


def test_prune_dead_leaves_dead_edges_out_of_parameter_counts():
    text = BASE.replace("width 256", "width 256\n    bias false")
    dead = "|linear~0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|"  # 0 -> 1 leads nowhere
    assert nflc.loads(text).architecture(dead).params == 784 * 256 + 256 * 256 + 2560
    assert nflc.loads(text.replace("bias false", "bias false\n    prune dead")).architecture(dead).params == 784 * 256 + 2560


def test_a_label_wins_over_another_choices_alias():
    """`nor(3)` is also known as nor_conv_3x3, but the choice labelled nor_conv_3x3 owns that name."""
    text = BASE.replace("input [784]", "input [3, 8, 8]").replace("flatten >> linear(width) >> relu >> cell",
                                                                  "conv2d(3, width) >> cell >> global_avg_pool")
    text = text.replace("    cell {", "    op nor(k) = relu >> conv2d(k) >> batchnorm\n    cell {")
    sp = nflc.loads(text.replace("zero | skip | linear >> relu as linear", "nor(3) | nor_conv_3x3"))
    for a in sp:
        assert sp.architecture(a.id).index == a.index
