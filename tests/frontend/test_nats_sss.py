"""Numeric choices (`c in {8, 16}`), parameterized cells (`cell t(c)`), cells that change
the channel count (`channels c`), and the NATS-Bench size space built from them (issue #14)."""

from __future__ import annotations

import itertools

import pytest

import nflc
from nflc.errors import NflcError

from .conftest import SPECS, check_mistake, cli, edit

SIZES = (8, 16, 24, 32, 40, 48, 56, 64)
TSS = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def sss() -> nflc.Space:
    return nflc.load(SPECS / "nats_sss.nfl")


def test_count_is_eight_to_the_fifth(sss):
    assert sss.count() == 32768 == 8**5
    res = cli("count", SPECS / "nats_sss.nfl")
    assert res.exit_code == 0 and res.output.strip() == "32768", res.output


def test_ids_are_nats_channel_strings_in_mixed_radix_order(sss):
    for i, values in [(0, (8,) * 5), (1, (8, 8, 8, 8, 16)), (32767, (64,) * 5),
                      (8 * 8 * 8 * 8 * 3 + 5, (32, 8, 8, 8, 48))]:
        a = sss.architecture(i)
        assert a.id == ":".join(map(str, values))
        assert a.numeric == dict(zip(["c1", "c2", "c3", "c4", "c5"], values, strict=True))
        assert sss.architecture(a.id).index == i
        # the fixed cell may be written out too (the full form of the id)
        assert sss.architecture(f"{a.id};{TSS}").index == i


def test_every_id_round_trips():
    sp = nflc.load(SPECS / "nats_sss.nfl")
    for values in itertools.islice(itertools.product(SIZES, repeat=5), 0, None, 97):
        text = ":".join(map(str, values))
        assert sp.architecture(sp.architecture(text).index).id == text


def test_bad_ids_name_the_value(sss):
    with pytest.raises(NflcError, match="'12' is not a value of numeric choice 'c2'"):
        sss.architecture("8:12:8:8:8")
    with pytest.raises(NflcError, match="gives 4 numeric value"):
        sss.architecture("8:8:8:8")


def test_the_cell_changes_channels_where_nats_does(sss):
    a = sss.architecture("16:32:24:8:64")
    ir = sss.lowered(a.constants_override)
    cells = [st for st in ir.network if st.kind == "cell"]
    assert [(st.shape_in, st.shape_out) for st in cells] == [
        ([16, 32, 32], [16, 32, 32]), ([32, 16, 16], [24, 16, 16]), ([8, 8, 8], [64, 8, 8])]
    # the skip edge of the first cell is an identity, of the others a 1x1 projection
    g = a.cell_graphs["tss"]
    assert g.edges[0, 3]["op"] == "skip_connect"


def test_sampling_is_uniform_over_the_numeric_product(sss):
    xs = sss.sample(200, seed=3)
    assert len({a.index for a in xs}) == 200
    assert {a.numeric["c1"] for a in xs} == set(SIZES)


NUMERIC = """\
space s {
    input [3, 8, 8]
    classes 10
    c in {4, 8}
    cell t(w) {
        nodes 3
        channels w
        edge * : zero | nor_conv_3x3 | factorized_reduce as skip
    }
    network = conv2d(3, c) >> t(c) >> t(2 * c) >> global_avg_pool >> linear(classes)
}
"""


def test_numeric_choices_multiply_the_cells():
    sp = nflc.loads(NUMERIC)
    assert sp.count() == 2 * 3**3
    for a in sp:
        m = a.to_module()
        assert sum(p.numel() for p in m.parameters()) == a.params


CASES = [
    ("empty numeric choice", edit(NUMERIC, "c in {4, 8}", "c in {}"), ("c in {}", 1, 0),
     "numeric choice 'c' has no values", "e.g. 'c in {8, 16, 32}'"),
    ("repeated value", edit(NUMERIC, "c in {4, 8}", "c in {4, 8, 4}"), ("4}", 1, 0),
     "4 appears twice in numeric choice 'c'", "remove the duplicate"),
    ("fractional value", edit(NUMERIC, "c in {4, 8}", "c in {4, 1.5}"), ("1.5", 1, 0),
     "a value of 'c' must be a whole number", None),
    ("numeric choice outside a space", "k in {1, 2}\n" + NUMERIC, ("k in", 1, 0),
     "numeric choice 'k' is outside a space", "move it into the space"),
    ("a value that breaks the network", edit(NUMERIC, "c in {4, 8}", "c in {4, 8, 0}"), ("c) >> t(c)", 1, 0),
     "with c = 0", None),
    ("misspelt cell statement", edit(NUMERIC, "channels w", "chanels w"), ("chanels", 1, 0),
     "unknown cell statement 'chanels'", "did you mean 'channels'?"),
    ("edge shape against the node", edit(NUMERIC, "factorized_reduce as skip", "skip"), ("skip\n", 1, 0),
     "op 'skip' on edge 0 -> 1 of cell 't(w=8)' gives [4, 8, 8] from [4, 8, 8], but node X1 has shape [8, 8, 8]",
     "every non-zero edge into a node must give the node's shape"),
    ("channels twice", edit(NUMERIC, "channels w", "channels w\n        channels 3"), ("channels 3", 1, 0),
     "declares its channels twice", None),
    ("cell without its argument", edit(NUMERIC, "t(2 * c)", "t"), ("t >>", 1, 0),
     "'t' needs its argument 'w'", None),
    ("argument of a plain cell", edit(NUMERIC, "cell t(w)", "cell t", "channels w", "", "t(c) >>", "t(1) >>"),
     ("t(1)", 1, 0), "cell 't' takes no arguments", "cell t(c)"),
    ("scale a numeric choice", edit(NUMERIC, "network =", "budget params == 1k +- 50% scale c\n    network ="),
     ("c\n    network", 1, 0), "'c' is a numeric choice", None),
]


@pytest.mark.parametrize("name, text, where, message, hint", CASES, ids=[c[0] for c in CASES])
def test_user_mistake(spec, name, text, where, message, hint):
    check_mistake(spec(text), text, where, message, hint)


def test_channels_is_still_a_name():
    sp = nflc.loads(edit(NUMERIC, "classes 10", "classes 10\n    channels 3", "conv2d(3, c)", "conv2d(channels, c)"))
    assert sp.count() == 54



def test_unique_in_a_cell_that_changes_channels():
    """`unique` on a `channels` cell: dead edges dropped (0->1 without 1->2, 1->2 without
    0->1), the 8 cells are 4 computing graphs; ops are compared bound at their node widths."""
    text = """\
space u {
    input [3, 8, 8]
    classes 10
    cell t(w) {
        nodes 3
        channels w
        edge * : zero | nor_conv_3x3
    }
    network = conv2d(3, 4) >> t(8) >> global_avg_pool >> linear(classes)
    unique
}
"""
    sp = nflc.loads(text)
    assert nflc.loads(text.replace("    unique\n", "")).count() == 8
    assert [a.index for a in sp] == [0, 2, 5, 7]
    assert [r.index for r in sp.rejections()] == [1, 3, 4, 6]
