"""Regressions of issue #11 (front end): each wrong answer is checked against a value
computed independently (by hand, or by brute force with networkx / torch here), and each
former crash is a diagnostic with exit code 2, never a traceback."""

from __future__ import annotations

import itertools
from fractions import Fraction

import networkx as nx
import pytest

import nflc
from nflc.errors import DiagnosticBag, NflcError

from .conftest import BASE, SPECS, assert_diagnostic, cli, locate, no_traceback

# ------------------------------------------------------------------ wrong answers


def test_a_name_starting_with_x_and_digits_is_a_name_not_a_repeat():
    text = """space s {
    input [7]
    classes 9
    cell { nodes 2  edge * : skip }
    network = cell >> linear(classes)
    x3margin = 1
    x4 = 2
}
"""
    sp = nflc.loads(text)
    assert sp.architecture(0).params == 7 * 9 + 9  # 72: one linear layer, not three
    assert len(sp.ir.network) == 2
    assert {w.message for w in sp.warnings} == {"constant 'x3margin' is defined but never used",
                                                "constant 'x4' is defined but never used"}


def test_repeat_counts_still_lex_as_repeats():
    text = BASE.replace(">> cell >>", ">> cell x3 >>")
    assert sum(st.kind == "cell" for st in nflc.loads(text).ir.network) == 3


def _live_graph(choice, ops, h):
    """The computing graph of a cell choice, by hand: zero edges out, then edges on no
    0 -> h path out (networkx reachability, not nflc's on_path_edges)."""
    pairs = [(s, t) for t in range(1, h + 1) for s in range(t)]
    g = nx.DiGraph()
    g.add_nodes_from(range(h + 1))
    g.add_edges_from((s, t, {"op": ops[c]}) for (s, t), c in zip(pairs, choice, strict=True) if ops[c] != "zero")
    live = [(s, t) for s, t in g.edges if (s == 0 or nx.has_path(g, 0, s)) and (t == h or nx.has_path(g, t, h))]
    dead = g.number_of_edges() - len(live)
    lg = nx.DiGraph()
    lg.add_nodes_from((k, {"role": "in" if k == 0 else "out" if k == h else "mid"}) for k in range(h + 1))
    lg.add_edges_from((s, t, g.edges[s, t]) for s, t in live)
    return lg, dead


def test_unique_with_a_cell_require_keeps_every_class_that_has_a_member():
    text = """space s {
    input [8]
    cell { nodes 4
      edge * : skip | linear >> relu | zero }
    network = cell
    require dead_edges == 0
    unique
}
"""
    ops = ["skip", "linear >> relu", "zero"]
    classes: list[nx.DiGraph] = []
    first_members: list[int] = []
    nm = nx.algorithms.isomorphism.categorical_node_match("role", None)
    em = nx.algorithms.isomorphism.categorical_edge_match("op", None)
    for i, choice in enumerate(itertools.product(range(3), repeat=6)):
        g, dead = _live_graph(choice, ops, 3)
        if dead:
            continue  # the require filter
        if not any(nx.is_isomorphic(g, c, node_match=nm, edge_match=em) for c in classes):
            classes.append(g)
            first_members.append(i)
    assert len(classes) == 261
    sp = nflc.loads(text)
    assert sp.count() == 261
    assert [a.index for a in sp] == first_members
    assert all(a.rejection is None for a in sp)


def test_a_comment_inside_a_multi_line_choice_is_not_part_of_its_label():
    commented = BASE.replace("edge * : zero | skip | linear >> relu as linear",
                             "edge * : zero      # no edge\n              | skip  # identity\n"
                             "              | linear >>   # a layer\n                relu")
    plain = BASE.replace("edge * : zero | skip | linear >> relu as linear", "edge * : zero | skip | linear >> relu")
    a, b = nflc.loads(commented), nflc.loads(plain)
    assert [c.label for c in a.ir.cells["cell"].edges[0].choices] == ["zero", "skip", "linear >> relu"]
    assert a.spec_hash == b.spec_hash


@pytest.mark.parametrize("text,value", [("4.1M", 4_100_000), ("16.1k", 16_100), ("0.3k", 300), ("1.1G", 1_100_000_000),
                                        ("2.675M", 2_675_000), ("1_000.5k", 1_000_500)])
def test_whole_suffixed_decimals_are_exact(text, value):
    sp = nflc.loads(BASE.replace("network", f"budget params <= {text}\n    network"))
    assert sp.ir.budgets[0].value == value


def test_expressions_are_exact():
    sp = nflc.loads(BASE.replace("width 256", "width 0.1 * 3 * 10 * 2\n    a = 1.5 * 2\n    b = 3.5 * 2")
                    .replace("linear(classes)", "linear(classes + a + b - 10)"))
    assert sp.ir.constants["width"] == 6  # 0.1 * 3 is 0.30000000000000004 in floats
    assert sp.ir.output_shape == [10]
    tol = nflc.loads(BASE.replace("network", "budget params == 300k +- 0.1%\n    network")).ir.budgets[0].tolerance
    assert tol == float(Fraction(300_000) * Fraction("0.1") / 100) == 300.0


_TORCH_CANNOT = [  # (network, the failing op, its primitive, the shape into it)
    ("conv2d(3, 8) >> resblock(16, stride=2)", "resblock", ("resblock", (("out", 16), ("stride", 2))), (8, 7, 7)),
    ("conv2d(3, 8) >> resblock(8, stride=3)", "resblock", ("resblock", (("out", 8), ("stride", 3))), (8, 7, 7)),
    ("avg_pool(3, padding=2)", "avg_pool", ("avg_pool", (("k", 3), ("stride", 1), ("padding", 2))), (3, 7, 7)),
    ("max_pool(3, padding=2)", "max_pool", ("max_pool", (("k", 3), ("stride", 1), ("padding", 2))), (3, 7, 7)),
]


@pytest.mark.parametrize("net,what,prim,shape", _TORCH_CANNOT)
def test_the_shape_checker_rejects_what_torch_cannot_run(spec, net, what, prim, shape):
    torch = pytest.importorskip("torch")
    from nflc import ops
    from nflc.backends.torch import build_prim

    with pytest.raises(RuntimeError):  # torch indeed cannot
        build_prim(ops.Prim(*prim), shape)(torch.zeros(2, *shape))
    text = f"space s {{\n    input [3, 7, 7]\n    network = {net}\n}}\n"
    path = spec(text)
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2
    line, col = locate(text, what)
    assert_diagnostic(res.output, str(path), text, line, col, what)


def test_shape_rules_agree_with_torch_on_a_grid():
    """Every (op, size, kernel, stride, padding) the shape checker accepts runs in torch and
    gives the predicted shape; everything torch cannot run, the checker rejects (it also
    rejects resblock strides other than 1 and 2, which NAS-Bench-201's block does not define)."""
    torch = pytest.importorskip("torch")
    from nflc import ops
    from nflc.backends.torch import build_prim

    cases = []
    for size in (1, 2, 3, 5, 6, 7):
        for k in (1, 2, 3):
            for stride in (1, 2, 3):
                for pad in (0, 1, 2):
                    for name in ("avg_pool", "max_pool"):
                        cases.append((ops.Prim(name, (("k", k), ("stride", stride), ("padding", pad))), size))
        for stride in (1, 2, 3):
            for out in (4, 8):
                cases.append((ops.Prim("resblock", (("out", out), ("stride", stride))), size))
    for prim, size in cases:
        shape = (4, size, size)
        try:
            want = ops.PRIMS[prim.name].shape(prim, shape)
        except ops.ShapeError:
            want = None
        try:
            with torch.no_grad():
                got = tuple(build_prim(prim, shape).eval()(torch.zeros(1, *shape)).shape[1:])
        except RuntimeError:
            got = None
        if want is not None or got is None:  # accepted: runs as predicted; fails in torch: rejected
            assert got == want, (prim, shape)


def test_shared_inside_independent_shares_within_each_repetition():
    text = (SPECS / "resnet_chain.nfl").read_text().split("# The same chain")[0]
    sp = nflc.loads(text.replace("block x4 independent", "(block x2 shared) x3 independent"))
    # 3 repetitions, each placing the block twice with one shared choice: 3 instances, 2^3 networks
    assert len(sp.instances) == 3 and sp.count() == 2 ** 3
    assert sum(st.kind == "cell" for st in sp.ir.network) == 6
    inst = [st.instance for st in sp.ir.network if st.kind == "cell"]
    assert inst[0] == inst[1] != inst[2] == inst[3] != inst[4] == inst[5]
    # without `shared` the inner placements choose on their own, as before
    assert len(nflc.loads(text.replace("block x4 independent", "(block x2) x3 independent")).instances) == 6
    with pytest.raises(NflcError, match="'shared' repeats need a cell"):
        nflc.loads(text.replace("block x4 independent", "block >> relu x2 shared"))


# ------------------------------------------------------------------ crashes -> diagnostics


def test_non_utf8_source_names_the_byte_offset(tmp_path):
    path = tmp_path / "bad.nfl"
    data = BASE.encode().replace(b"classes 10", b"classes 10 # caf\xe9")
    path.write_bytes(data)
    res = cli("check", path)
    no_traceback(res)
    off = data.index(b"\xe9")
    assert res.exit_code == 2 and f"byte 0xe9 at offset {off}" in res.output
    assert f"{path}:3:" in res.output


def test_non_utf8_import_names_the_byte_offset(tmp_path):
    (tmp_path / "lib.nfl").write_bytes(b"hidden = 4\n# \xff\xfe\n")
    path = tmp_path / "main.nfl"
    path.write_text('import "lib.nfl"\n' + BASE)
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2 and "byte 0xff at offset 13 (line 2, column 3)" in res.output


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.nfl"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert cli("count", path).output == "729\n"
    assert nflc.loads("\ufeff" + BASE).count() == 729


@pytest.mark.parametrize("expr,message", [
    ("(10 ** 64) ** 64", "more than 100 digits"),
    ("10 ** 60 * 10 ** 60", "more than 100 digits"),
    ("2 ** 0.5", "exponent 0.5 is out of range"),
    ("(0 - 8) ** 0.5", "exponent 0.5 is out of range"),
    ("2 ** 65", "exponent 65 is out of range"),
    ("1.5 * 10 ** 60 * 10 ** 40", "more than 100 digits"),
])
def test_overflowing_or_complex_expressions_are_diagnostics(spec, expr, message):
    text = BASE.replace("width 256", f"width 256\n    big = {expr}")
    path = spec(text)
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2 and message in res.output, res.output


@pytest.mark.parametrize("value,shown", [("true", "true"), ("1.5", "1.5"), ("0", "0")])
def test_scale_on_a_boolean_or_fractional_constant(spec, value, shown):
    text = BASE.replace("width 256", f"width 256\n    w = {value}").replace(
        "network", "budget params == 300k +- 2% scale w\n    network")
    path = spec(text)
    res = cli("check", path)
    no_traceback(res)
    line, col = locate(text, "scale w", offset=6)
    assert_diagnostic(res.output, str(path), text, line, col, f"the constant must be a positive whole number, got {shown}")


def _deep(kind: str, n: int) -> str:
    base = "space s {\n    input [4]\n    cell { nodes 2  edge * : skip }\n    %s\n    network = %s\n}\n"
    return {
        "parens": base % ("", "(" * n + "relu" + ")" * n + " >> cell"),
        "repeats": base % ("", "relu" + " x1" * n + " >> cell"),
        "plus": base % ("w = " + " + ".join(["1"] * n), "linear(w) >> cell"),
        "ops": base % ("op a0 = relu\n" + "\n".join(f"    op a{i} = a{i - 1}" for i in range(1, n)), f"a{n - 1} >> cell"),
        "consts": base % ("c0 = 1\n" + "\n".join(f"    c{i} = c{i - 1}" for i in range(1, n)), f"linear(c{n - 1}) >> cell"),
        "choice": "space s {\n    input [4]\n    cell { nodes 2  edge * : " + "(" * n + "relu" + ")" * n
                  + " }\n    network = cell\n}\n",
    }[kind]


@pytest.mark.parametrize("kind", ["parens", "repeats", "plus", "ops", "consts", "choice"])
def test_nesting_thousands_deep_compiles(kind):
    sp = nflc.loads(_deep(kind, 3000))
    assert sp.count() == 1
    if kind == "plus":
        assert sp.ir.constants["w"] == 3000


@pytest.mark.parametrize("kind", ["parens", "repeats", "ops", "choice"])
def test_nesting_beyond_the_limit_is_a_diagnostic(spec, kind):
    from nflc.ir.lower import MAX_NESTING

    path = spec(_deep(kind, MAX_NESTING + 10))
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2 and f"more than {MAX_NESTING:,} levels deep" in res.output


def test_graph_with_a_non_ascii_digit_id():
    for ident in ["²", "٣", "|zero~²|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|"]:
        res = cli("graph", SPECS / "nfl_h3.nfl", ident)
        no_traceback(res)
        assert res.exit_code == 2 and "error:" in res.output


def test_list_limit_must_be_non_negative():
    res = cli("list", SPECS / "nfl_h3.nfl", "--limit", "-1")
    no_traceback(res)
    assert res.exit_code == 2 and "--limit must be non-negative, got -1" in res.output


@pytest.mark.parametrize("option", ["--out", "--onnx"])
def test_compile_into_a_missing_directory_or_onto_a_directory(tmp_path, option):
    for target, message in [(tmp_path / "missing" / "m.pt", "does not exist"), (tmp_path, "is a directory")]:
        res = cli("compile", SPECS / "nfl_h3.nfl", "5", option, target)
        no_traceback(res)
        assert res.exit_code == 2 and message in res.output, res.output
        assert "parameters" not in res.output  # refused before any work


def test_a_width_too_large_to_allocate_is_refused_with_the_number(spec, monkeypatch):
    path = spec(BASE.replace("width 256", "width 1_000_000_000"))
    res = cli("compile", path, "5")
    no_traceback(res)
    n = nflc.load(path).architecture(5).params
    assert n == 784 * 10**9 + 10**9 + 10**18 + 10**9 + 10 * 10**9 + 10  # flatten-linear, one linear edge, readout
    assert res.exit_code == 2 and f"{n:,} parameters" in res.output and "GiB" in res.output


# ------------------------------------------------------------------ slow paths


def test_forty_thousand_diagnostics_are_kept_and_a_duplicate_is_not():
    # a list scan per add once took minutes here; its time is in benchmarks/bench_responsiveness.py
    from nflc.errors import Diagnostic, Span

    bag = DiagnosticBag()
    for i in range(40_000):
        bag.warning(f"constant 'c{i}' is defined but never used", Span("f", i + 1, 1))
    bag.add(Diagnostic("warning", "constant 'c0' is defined but never used", Span("f", 1, 1)))  # a duplicate
    assert len(bag.warnings) == 40_000
    assert [d.span.line for d in bag.warnings[:3]] == [1, 2, 3]


def test_sixteen_thousand_unused_constants_are_all_reported():
    body = "".join(f"    unused_{i} = {i}\n" for i in range(16_000))
    sp = nflc.loads(BASE.replace("    cell {", body + "    cell {"))
    assert len([w for w in sp.warnings if "never used" in w.message]) == 16_000


@pytest.mark.parametrize("text,message", [
    ("relu x100000000", "a repeat count must be at most 10,000, got 100,000,000"),
    ("relu x10000 x10000", "the network has more than 100,000 stages"),
    ("(relu x10000 >> relu) x100", "more than 100,000 stages"),
])
def test_repeat_counts_are_bounded(spec, text, message):
    path = spec(BASE.replace(">> cell >>", f">> cell >> {text} >>"))
    res = cli("check", path)
    no_traceback(res)
    assert res.exit_code == 2 and message in res.output, res.output


def test_an_op_expanding_to_too_many_primitives_is_refused(spec):
    text = BASE.replace("    cell {", "    op big = relu x10000 x10000\n    cell {").replace(">> cell >>", ">> cell >> big >>")
    path = spec(text)
    res = cli("check", path)
    no_traceback(res)
    line, col = locate(text, "relu x10000 x10000")
    assert_diagnostic(res.output, str(path), text, line, col, "this repeat expands to 100,000,000 primitive ops")


def test_cell_require_filters_build_no_graph_and_count_exactly(monkeypatch):
    from nflc.space import Space

    monkeypatch.setattr(Space, "cell_topology", lambda *a: pytest.fail("a networkx graph per cell"))
    text = (SPECS / "nb201.nfl").read_text().split("# The same space")[0]
    sp = nflc.loads(text.replace("bias    false", "bias    false\n    require paths >= 1"))
    # by brute force: a cell has a path when its non-zero edges (none is zero) connect 0 to 3
    pairs = [(s, t) for t in range(1, 4) for s in range(t)]
    want = 0
    for choice in itertools.product(range(5), repeat=6):
        g = nx.DiGraph()
        g.add_nodes_from(range(4))
        g.add_edges_from(p for p, c in zip(pairs, choice, strict=True) if c != 0)
        want += nx.has_path(g, 0, 3)
    assert want == 15284 and sp.count() == want


# ------------------------------------------------------------------ diagnostics


@pytest.mark.parametrize("sep", ["\f", "\u2028", "\x0b", "\x1c", "\u0085"])
def test_the_caret_stays_on_its_line_after_odd_separators(spec, sep):
    text = BASE.replace("classes 10", f"classes 10  # a comment{sep}with a separator")
    text = text.replace("linear(width)", "liner(width)")
    path = spec(text)
    res = cli("check", path)
    no_traceback(res)
    line, col = locate(text, "liner(width)")
    src = text.split("\n")[line - 1]
    assert res.exit_code == 2
    assert f"{path}:{line}:{col}: error: unknown op or cell 'liner'" in res.output
    assert "    " + src in res.output.splitlines()


def test_an_unused_op_that_names_an_unknown_op_is_an_error(spec):
    text = BASE.replace("    cell {", "    op foo = relu >> bar\n    cell {")
    path = spec(text)
    res = cli("check", path)
    line, col = locate(text, "bar")
    assert res.exit_code == 2
    assert_diagnostic(res.output, str(path), text, line, col, "unknown op 'bar' in op 'foo'")
    top = "op top = liner\n" + BASE
    res = cli("check", spec(top, "top.nfl"))
    assert res.exit_code == 2 and "unknown op 'liner' in op 'top'" in res.output and "did you mean 'linear'?" in res.output


def test_an_op_named_like_the_cell_warns(spec):
    text = (SPECS / "nfl_h3.nfl").read_text().replace("    cell {", "    op cell = relu\n    cell {")
    sp = nflc.loads(text)
    assert sp.count() == 1  # the network's `cell` is the op ...
    assert any("op 'cell' hides the cell 'cell'" in w.message for w in sp.warnings)  # ... and nflc says so
    path = spec(text)
    res = cli("check", path)
    line, col = locate(text, "cell = relu")
    assert_diagnostic(res.output, str(path), text, line, col, "hides the cell 'cell'", severity="warning")


def test_shadowing_a_prelude_op_or_naming_a_cell_like_a_builtin_warns():
    sp = nflc.loads(BASE.replace("    cell {", "    op none = skip\n    cell {").replace("zero | skip", "none | skip"))
    assert any("op 'none' shadows the builtin op 'none'" in w.message for w in sp.warnings)
    sp = nflc.loads(BASE.replace("    cell {", "    cell relu {").replace(">> cell >>", ">> relu >>"))
    assert any("cell 'relu' shadows the builtin op 'relu'" in w.message for w in sp.warnings)


def test_nflc_ops_lists_builtins_and_prelude_with_shape_rules():
    import json

    from nflc import ops

    res = cli("ops", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["op"]: r for r in map(json.loads, res.output.splitlines())}
    assert set(rows) == set(ops.PRIMS) | {"none", "identity", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                          "avg_pool_3x3"}
    assert rows["conv2d"]["parameters"].startswith("k, out = input channels, stride = 1")
    assert rows["linear"]["shape"] == "[d] -> [out]"
    assert rows["nor_conv_3x3"]["from"] == "prelude" and rows["nor_conv_3x3"]["what"] == "= relu >> conv2d(3) >> batchnorm"
    assert cli("ops").exit_code == 0


def test_every_command_a_hint_names_exists():
    import re

    from nflc.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    root = SPECS.parent / "nflc"
    named = set()
    for path in root.rglob("*.py"):
        named |= set(re.findall(r"'nflc ([a-z]+)", path.read_text()))
    assert named and named <= commands, named - commands


# ------------------------------------------------------------------ command line


def test_a_file_with_several_spaces_uses_the_one_named_like_the_file():
    res = cli("count", SPECS / "nb201.nfl")
    assert res.exit_code == 0 and res.stdout == "15625\n"
    assert "using 'nb201'" in res.stderr and "nb201_unique" in res.stderr


def test_a_file_with_several_spaces_otherwise_uses_the_first(spec):
    path = spec(BASE.replace("space s", "space first").replace("nodes 4", "nodes 3")
                + BASE.replace("space s", "space second"), "other.nfl")
    res = cli("count", path)
    assert res.exit_code == 0 and res.stdout == f"{3 ** 3}\n"
    assert "using 'first'" in res.stderr and "--space" in res.stderr
    assert cli("count", path, "--space", "second").stdout == "729\n"


REJECTING = BASE.replace("network", "require paths >= 2\n    budget params <= 300k\n    network")


def _rejected_and_kept(sp):
    rejected = [a for a in (sp.architecture(i) for i in range(sp.raw_count())) if a.rejection]
    return rejected, [a for a in sp]


def test_list_rejected_shows_each_rejection_with_its_reason(spec):
    import json

    path = spec(REJECTING)
    sp = nflc.load(path)
    rejected, kept = _rejected_and_kept(sp)
    assert len(rejected) + len(kept) == 729 and kept
    res = cli("list", path, "--rejected", "--json")
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r["index"] for r in rows] == [a.index for a in rejected]
    assert rows[0] == {"index": 0, "id": sp.architecture(0).id,
                       "reason": "require paths >= 2: cell 'cell' has paths = 0"}
    over = next(a for a in rejected if a.rejection.startswith("budget"))
    assert over.params > 300_000 and f"has {over.params:,}" in over.rejection
    assert "rejected by its filters" in cli("list", path, "--rejected", "--limit", "2").output


def test_compile_refuses_a_rejected_architecture_and_graph_flags_it(spec):
    path = spec(REJECTING)
    res = cli("compile", path, "0")
    no_traceback(res)
    assert res.exit_code == 2 and "is rejected by space 's': require paths >= 2" in res.output
    assert "--allow-rejected" in res.output
    forced = cli("compile", path, "0", "--allow-rejected")
    assert forced.exit_code == 0 and "parameters" in forced.stdout
    g = cli("graph", path, "0")
    assert g.exit_code == 0 and g.stdout.startswith("digraph") and "is rejected by space 's'" in g.stderr
    kept = next(iter(nflc.load(path)))
    assert "rejected" not in cli("graph", path, str(kept.index)).stderr


def test_archs_selection_refuses_rejected_ids(spec):
    path = spec(REJECTING)
    sp = nflc.load(path)
    kept = next(iter(sp))
    assert sp.select(str(kept.index)) == [kept]
    assert sp.select("all") is None and len(sp.select("sample:1", seed=3)) == 1
    with pytest.raises(NflcError, match="`archs`: #0 .* is rejected by space 's'"):
        sp.select(f"{kept.index},0")
    res = cli("analyze", path, "--archs", "0", "--data", "none")
    no_traceback(res)
    assert res.exit_code == 2 and "is rejected by space 's'" in res.output
    res = cli("verify", path, "--archs", "0", "--db", path.parent / "r.sqlite", "--quiet")
    no_traceback(res)
    assert res.exit_code == 2 and "is rejected by space 's'" in res.output


def test_check_says_when_the_filters_reject_everything(spec):
    text = BASE.replace("network", "require paths >= 99\n    network")
    path = spec(text)
    res = cli("check", path)
    assert res.exit_code == 0
    line, col = locate(text, "require paths")
    assert_diagnostic(res.output, str(path), text, line, col, "the filters of space 's' reject all 729 architectures",
                      severity="warning")
    assert "none after them" in res.stdout
    assert "reject all" not in cli("check", spec(REJECTING, "ok.nfl")).output
