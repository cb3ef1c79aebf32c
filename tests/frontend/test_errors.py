"""User mistakes: each one exits 2 with ``file:line:col``, the source line, a caret under the
right column, a useful message (and hint), and never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

import nflc
from nflc.errors import NflcError

from .conftest import BASE, SPECS, assert_diagnostic, check_mistake, cli, locate, no_traceback


def edit(*pairs: str, base: str = BASE) -> str:
    """BASE with each (old, new) pair replaced (old must occur)."""
    text = base
    for old, new in zip(pairs[::2], pairs[1::2], strict=True):
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


IMAGE = edit("input [784]", "input [3, 8, 8]")
EDGES = "edge * : zero | skip | linear >> relu as linear"
NET = "network = flatten >> linear(width) >> relu >> cell >> linear(classes)"

# (name, source, (needle, occurrence, offset) of the reported position, message, hint)
CASES = [
    ("unexpected token", edit("nodes 4", "nodes 4 4"), ("4 4", 1, 2), "unexpected '4'; expected", None),
    ("bad character", edit("width 256", "width 256 $"), ("$", 1, 0), "unexpected character '$'", "comments start with '#'"),
    ("missing colon in edge", edit(EDGES, "edge * zero | skip"), ("zero | skip", 1, 0), "unexpected 'zero'",
     "an edge needs ':'"),
    ("missing } of a cell", edit("    }\n    network", "    network"), ("network", 1, 0), "unexpected 'network'",
     "is a '}' missing? the '{' at line 5, column 10 is never closed"),
    ("missing )", edit("linear(width)", "linear(width"), (">> relu >> cell", 1, 0), "unexpected '>'",
     "is a ')' missing? the '(' at line 9, column 32 is never closed"),
    ("missing ]", edit("[784]", "[784"), ("classes", 1, 0), "unexpected 'classes'", "is a ']' missing?"),
    ("missing >>", edit("flatten >> linear", "flatten linear"), (">> relu >> cell", 1, 0), "unexpected '>'",
     "is a '>>' missing"),
    ("comma between choices", edit("zero | skip", "zero, skip"), (", skip", 1, 0), "unexpected ','",
     "separate an edge's choices with '|'"),
    ("=> in an edge", edit(EDGES, "edge 0 => 1 : skip"), ("=>", 1, 0), "unexpected '='", "edge 0 -> 1 : op"),
    ("string for a number", edit("width 256", 'width "a"'), ('"a"', 1, 0), "unexpected '\"a\"'", None),
    ("=> for >=", edit(NET, "require paths => 1\n    " + NET), ("=> 1", 1, 0), "expected a comparison", "write '>='"),
    ("unknown op (network)", edit("linear(width)", "liner(width)"), ("liner", 1, 0), "unknown op or cell 'liner'",
     "did you mean 'linear'?"),
    ("unknown op (cell edge)", edit("linear >> relu as", "liner >> relu as"), ("liner", 1, 0), "unknown op 'liner'",
     "did you mean 'linear'?"),
    ("unknown constant", edit("linear(width)", "linear(widht)"), ("widht", 1, 0), "unknown constant 'widht'",
     "did you mean 'width'?"),
    ("unknown cell", edit(">> cell >>", ">> cel >>"), ("cel ", 1, 0), "unknown op or cell 'cel'", "did you mean 'cell'?"),
    ("too many arguments", edit("linear(width)", "linear(width, true, 3)"), ("linear(width", 1, 0),
     "'linear' takes 2 arguments (out, bias) but 3 were given", None),
    ("unknown keyword", edit("linear(width)", "linear(width, bais=true)"), ("bais", 1, 0), "'linear' has no parameter 'bais'",
     "did you mean 'bias'?"),
    ("missing required argument", edit("flatten >>", "conv2d(out=4) >> flatten >>", base=IMAGE), ("conv2d", 1, 0),
     "'conv2d' needs its argument 'k'", "conv2d(k=3)"),
    ("int for a bool", edit("linear(width)", "linear(width, bias=3)"), ("bias=3", 1, 5),
     "'bias' of 'linear' must be true or false, got 3", None),
    ("bool for an int", edit("linear(width)", "linear(true)"), ("true", 1, 0), "must be a whole number, got true", None),
    ("fraction for an int", edit("width 256", "width 2.5"), ("width)", 1, 0), "must be a whole number, got 2.5", None),
    ("duplicate op", edit("    cell {", "    op a = relu\n    op a = relu\n    cell {"), ("op a", 2, 3),
     "op 'a' is defined twice", "rename"),
    ("builtin redefined", edit("    cell {", "    op linear = relu\n    cell {"), ("op linear", 1, 3),
     "'linear' is a builtin op", None),
    ("duplicate constant", edit("width 256", "width 256\n    width 128"), ("width 128", 1, 0),
     "constant 'width' is defined twice", None),
    ("duplicate cell", edit("    network", "    cell {\n        nodes 2\n        edge * : skip\n    }\n    network"),
     ("cell {", 2, 0), "cell 'cell' is defined twice", "cell normal"),
    ("duplicate space", BASE + BASE, ("space s", 2, 0), "space 's' is defined twice", None),
    ("recursive op", edit("    cell {", "    op a = relu >> a\n    cell {", ">> relu >> cell", ">> a >> cell"),
     ("relu >> a\n", 1, 8), "op 'a' is defined in terms of itself (a -> a)", None),
    ("cyclic constant", edit("width 256", "width = depth\n    depth = width"), ("= width", 1, 2),
     "constant 'width' depends on itself (width -> depth -> width)", None),
    ("node out of range", edit(EDGES, "edge 0 -> 4 : skip"), ("4 : skip", 1, 0), "node 4 is out of range", "nodes' to 5"),
    ("node not a number", edit(EDGES, "edge 0 -> 1.5 : skip"), ("1.5", 1, 0), "node '1.5' is not a node number", None),
    ("backward edge", edit(EDGES, "edge 2 -> 1 : skip"), ("edge 2", 1, 0), "edge 2 -> 1 does not go forward", None),
    ("unknown node name", edit("nodes 4", "nodes [a, b, c]", EDGES, "edge a -> d : skip"), ("d : skip", 1, 0),
     "unknown node 'd'", "nodes are a, b, c"),
    ("node count too small", edit("nodes 4", "nodes 1"), ("1\n", 1, 0), "the node count must be at least 2", None),
    ("cell without nodes", edit("nodes 4", ""), ("cell {", 1, 0), "cell 'cell' does not say how many nodes", "nodes 4"),
    ("space without network", edit(NET, ""), ("space", 1, 0), "space 's' has no network", None),
    ("space without input", edit("input [784]", ""), ("space", 1, 0), "space 's' has no input shape", None),
    ("input dimension zero", edit("[784]", "[0]"), ("0]", 1, 0), "an input dimension must be at least 1", None),
    ("linear on an image", edit("flatten >> ", "", base=IMAGE), ("linear(width)", 1, 0),
     "linear expects an input of shape [features] but gets [3, 8, 8]", "put flatten"),
    ("conv on a flat input", edit("flatten >> ", "conv2d(3) >> "), ("conv2d", 1, 0),
     "conv2d expects an input of shape [channels, height, width] but gets [784]", None),
    ("op changes shape in a cell", edit("linear >> relu as", "linear(3) >> relu as"), ("linear(3)", 1, 0),
     "op 'linear' in cell 'cell' changes the shape [256] -> [3]", "keep the shape"),
    ("cell used with arguments", edit(">> cell >>", ">> cell(3) >>"), ("cell(3)", 1, 0), "cell 'cell' takes no arguments",
     None),
    ("duplicate choice labels", edit("zero | skip", "zero | skip | skip"), ("skip", 2, 0),
     "the choice 'skip' appears twice on this edge", "as NAME"),
    ("non-integer division", edit("width 256", "width 255 / 2"), ("255", 1, 0), "255 / 2 is not a whole number",
     "use //"),
    ("division by zero", edit("width 256", "width 256 / 0"), ("256 / 0", 1, 0), "division by zero", None),
    ("exponent out of range", edit("width 256", "width 2 ** 100"), ("2 ** 100", 1, 0), "exponent 100 is out of range", None),
    ("unknown budget metric", edit(NET, NET + "\n    budget parms <= 1M"), ("parms", 1, 0), "unknown budget metric 'parms'",
     "did you mean 'params'?"),
    ("negative tolerance", edit(NET, NET + "\n    budget params == 1M +- -2%"), ("-2%", 1, 0),
     "the tolerance must be a non-negative number", None),
    ("scale with unknown constant", edit(NET, NET + "\n    budget params == 1M +- 2% scale widht"), ("widht", 1, 0),
     "no constant named 'widht'", "did you mean 'width'?"),
    ("scale with <=", edit(NET, NET + "\n    budget params <= 1M +- 2% scale width"), ("budget", 1, 0),
     "the budget must use '=='", "budget params == 1M +- 2% scale width"),
    ("two scale budgets", edit(NET, NET + "\n    budget params == 1M +- 2% scale width\n"
                                        "    budget flops == 1M +- 2% scale width"), ("budget flops", 1, 0),
     "only one budget may scale a constant", None),
    ("unknown require metric", edit(NET, NET + "\n    require pahts >= 1"), ("pahts", 1, 0),
     "unknown constraint metric 'pahts'", "did you mean 'paths'?"),
    ("missing import", 'import "nope.nfl"\n' + BASE, ("import", 1, 0), "cannot import 'nope.nfl'", "relative to the importing"),
    ("import outside the directory", 'import "../outside.nfl"\n' + BASE, ("import", 1, 0),
     "leaves the directory tree of the importing file", "--allow-outside-imports"),
    ("cell inside an op", edit("    cell {", "    op a = relu >> cell\n    cell {", ">> relu >> cell", ">> a >> cell"),
     ("relu >> cell\n", 1, 8), "cell 'cell' can only be used in the network, not inside an op", None),
    ("unknown init scheme", edit("width 256", "width 256\n    init he_normall"), ("init", 1, 0),
     "unknown init scheme 'he_normall'", "did you mean 'he_normal'?"),
    ("bad bias value", edit("width 256", "width 256\n    bias yes"), ("yes", 1, 0), "unexpected 'yes'; expected true or false",
     None),
    ("repeat count x0", edit(">> cell >>", ">> cell x0 >>"), ("cell x0", 1, 0), "a repeat count must be at least 1", None),
    ("independent on a non-cell", edit(">> relu >>", ">> relu x2 independent >>"), ("relu x2", 1, 0),
     "'independent' repeats need a cell to repeat", None),
    ("independent inside an op", edit("    cell {", "    op a = relu x2 independent\n    cell {", ">> relu >> cell",
                                      ">> a >> cell"), ("relu x2", 1, 0), "'independent' applies to cells in the network only",
     None),
    ("no space in the file", "op a = relu\n", ("op", 1, 0), "no space is defined in this file", None),
]


@pytest.mark.parametrize("name,text,where,message,hint", CASES, ids=[c[0] for c in CASES])
def test_user_mistake(spec, name, text, where, message, hint):
    path = spec(text)
    (path.parent.parent / "outside.nfl").write_text("op myop = relu\n")
    check_mistake(path, text, where, message, hint)


def test_each_mistake_is_reported_once(spec):
    """A constant used in several places, or a choice on every edge of `edge *`, reports once."""
    for text, message in [(edit("width 256", "width 255 / 2"), "is not a whole number"),
                          (edit("width 256", "width = depth\n    depth = width"), "depends on itself"),
                          (edit("linear >> relu as", "linear(3) >> relu as"), "changes the shape")]:
        res = cli("check", spec(text))
        assert res.exit_code == 2
        assert res.output.count(message) == 1, res.output


def test_several_errors_are_all_reported_in_source_order(spec):
    text = edit("linear(width)", "liner(width)", "nodes 4", "nodes 4\n        edge 0 -> 9 : skip",
                NET.replace("linear(width)", "liner(width)"),
                NET.replace("linear(width)", "liner(width)") + "\n    require pahts >= 1")
    path = spec(text)
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2
    expected = [("9 : skip", "node 9 is out of range"), ("liner", "unknown op or cell 'liner'"),
                ("pahts", "unknown constraint metric 'pahts'")]
    for needle, message in expected:
        assert_diagnostic(res.output, str(path), text, *locate(text, needle), message)
    order = [res.output.index(m) for _, m in expected]
    assert order == sorted(order)
    assert res.output.count(": error: ") == 3


def test_errors_in_several_spaces_are_all_reported(spec):
    text = edit("linear(width)", "liner(width)") + edit("space s", "space t", "linear(classes)", "linear(clases)")
    res = cli("check", spec(text))
    assert res.exit_code == 2
    assert "unknown op or cell 'liner'" in res.output and "unknown constant 'clases'" in res.output


def test_import_cycle(spec):
    a = spec('import "b.nfl"\n' + BASE, "sub/a.nfl")
    b = spec('import "a.nfl"\nop q = relu\n', "sub/b.nfl")
    res = cli("check", a)
    no_traceback(res)
    assert res.exit_code == 2
    btext = b.read_text()
    assert_diagnostic(res.output, str(b.resolve()), btext, 1, 1, "import cycle: a.nfl -> b.nfl -> a.nfl")


def test_syntax_error_in_an_imported_file_points_into_it(spec):
    lib = spec("op block = relu >>\n", "lib.nfl")
    main = spec('import "lib.nfl"\n' + BASE)
    res = cli("check", main)
    no_traceback(res)
    assert res.exit_code == 2
    assert_diagnostic(res.output, str(lib.resolve()), lib.read_text(), 1, 19, "unexpected end of file")


def test_allow_outside_imports(spec):
    outside = spec("op myop = relu\n", "outside.nfl")
    main = spec('import "../outside.nfl"\n' + BASE.replace(">> relu >> cell", ">> myop >> cell"), "sub/main.nfl")
    assert outside.exists()
    res = cli("check", main)
    assert res.exit_code == 2 and "--allow-outside-imports" in res.output
    res = cli("check", main, "--allow-outside-imports")
    assert res.exit_code == 0, res.output
    assert nflc.load(main, allow_outside=True).count() == 729
    with pytest.raises(NflcError):
        nflc.load(main)


def test_imports_share_ops_and_constants(spec):
    spec("op block = linear >> relu\nhidden = 64\n", "lib/ops.nfl")
    main = spec('import "lib/ops.nfl"\n' + BASE.replace("linear >> relu as linear", "block").replace("width 256",
                                                                                                 "width hidden"))
    sp = nflc.load(main)
    assert sp.ir.constants["width"] == 64 and sp.count() == 729


# ---------------------------------------------------------------- errors that are not in a file

NFL_H3 = SPECS / "nfl_h3.nfl"
NB201 = SPECS / "nb201.nfl"


@pytest.mark.parametrize("args,message,hint", [
    (("graph", NFL_H3, "|liner~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|"),
     "'liner' is not a choice of edge 0 -> 1", "did you mean 'linear'?"),
    (("graph", NFL_H3, "|linear~0|+|zero~0|linear~1|"), "expected 3 groups", "|zero~0|+|zero~0|zero~1|"),
    (("graph", NFL_H3, "|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~9|"), "edge 9 -> 3", None),
    (("graph", NFL_H3, "|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear-2|"), "is not 'op~source'", None),
    (("graph", NFL_H3, "729"), "index 729 is out of range", None),
    (("graph", NFL_H3, "5", "--format", "gif"), "unknown graph format 'gif'", "dot, graphml, json, svg or png"),
    (("count", NB201, "--space", "nb21"), "has no space 'nb21'", "did you mean 'nb201'?"),
    (("count", SPECS / "nope.nfl"), "cannot read", None),
    (("list", NFL_H3, "--sample", "1000"), "asked for 1000 architectures but space 'nfl_h3' has only 729", None),
    (("list", NFL_H3, "--sample", "-1"), "non-negative", None),
])
def test_bad_request(args, message, hint):
    res = cli(*args)
    no_traceback(res)
    assert res.exit_code == 2, res.output
    assert "error: " in res.output and message in res.output, res.output
    if hint:
        assert "hint: " in res.output and hint in res.output


def test_api_raises_nflc_error_with_positions():
    with pytest.raises(NflcError) as info:
        nflc.loads(edit("linear(width)", "liner(width)"))
    assert info.value.span.line == 9 and "did you mean 'linear'?" in info.value.render()
    assert str(info.value).startswith("<string>:9:")


def test_diamond_imports_load_the_shared_file_once(spec, monkeypatch):
    common = spec("op dense = linear >> relu\n", "lib/common.nfl")
    spec('import "common.nfl"\nop a = dense\n', "lib/a.nfl")
    spec('import "common.nfl"\nop b = dense\n', "lib/b.nfl")
    main = spec('import "lib/a.nfl"\nimport "lib/b.nfl"\n' + BASE.replace(">> relu >> cell", ">> a >> b >> cell"))
    reads = []
    for method in ("read_text", "read_bytes"):
        real = getattr(Path, method)
        monkeypatch.setattr(Path, method, lambda self, *a, _real=real, **k: reads.append(self.resolve()) or
                            _real(self, *a, **k))
    sp = nflc.load(main)
    nfl = [p.name for p in reads if p.suffix == ".nfl"]  # (the grammar may be read too)
    assert sorted(nfl) == ["a.nfl", "b.nfl", "common.nfl", "t.nfl"], reads
    assert reads.count(common.resolve()) == 1
    # a and b both resolve to common's dense: flatten >> linear(width) >> a >> b >> cell >> readout
    prims = [st.prim.name for st in sp.ir.network if st.kind == "prim"]
    assert prims == ["flatten", "linear", "linear", "relu", "linear", "relu", "linear"]
    assert sp.count() == 729


def test_op_defaults_see_constants_and_earlier_parameters_only():
    text = edit("    cell {", "    op d(a, b = a * 2) = linear(b) >> linear(a)\n    cell {", ">> relu >> cell",
                ">> d(width) >> cell")
    outs = [st.prim.args.get("out") for st in nflc.loads(text).ir.network if st.kind == "prim"]
    assert outs[2:4] == [512, 256]
    # no dynamic scoping: `k` is the caller's parameter, not visible in inner's default
    bad = edit("    cell {", "    op inner(c = k) = linear(c)\n    op outer(k) = inner\n    cell {", ">> relu >> cell",
               ">> outer(width) >> cell")
    with pytest.raises(NflcError, match="unknown constant 'k'"):
        nflc.loads(bad)
