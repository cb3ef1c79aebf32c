"""Issue #28: `nflc convert` places a DARTS genotype's cells by role (normal / reduction, a
cell with `stride 2` reduces), not by position; names the format when a value does not fit
the space; never takes an unreadable `Genotype(...)` for an id."""

from __future__ import annotations

import json
from pathlib import Path

from tests.frontend.conftest import cli, no_traceback

SPECS = Path(__file__).resolve().parents[2] / "specs"
NORMAL = [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
          ["skip_connect", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["skip_connect", 2]]
REDUCE = [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["skip_connect", 2],
          ["max_pool_3x3", 0], ["skip_connect", 2], ["avg_pool_3x3", 0], ["skip_connect", 2]]
GENOTYPE = json.dumps({"normal": NORMAL, "normal_concat": [2, 3, 4, 5], "reduce": REDUCE, "reduce_concat": [2, 3, 4, 5]})


def cell_id(pairs: list) -> str:
    """NAS-Bench-201's form of one DARTS cell, written by hand: nodes X2..X5, each its two
    (op, input) pairs sorted by input."""
    nodes = [sorted(pairs[2 * k: 2 * k + 2], key=lambda p: p[1]) for k in range(4)]
    return "+".join("|" + "|".join(f"{op}~{src}" for op, src in node) + "|" for node in nodes)


def reduction_first(tmp_path: Path) -> Path:
    text = (SPECS / "darts.nfl").read_text()
    start, end = text.index("    network = conv2d"), text.index("linear(classes, bias=true)")
    text = text[:start] + ("    network = conv2d(3, 3 * c) >> batchnorm >> reduce(c) >> normal(2 * c) x2\n"
                           "           >> global_avg_pool >> ") + text[end:]
    path = tmp_path / "rfirst.nfl"
    path.write_text(text)
    return path


def test_a_genotype_is_placed_by_role_when_the_reduction_cell_comes_first(tmp_path):
    spec = reduction_first(tmp_path)
    res = cli("convert", spec, GENOTYPE)
    no_traceback(res)
    assert res.exit_code == 0, res.output
    # the space's first instance is the reduction cell: its part of the id comes first
    assert res.output.strip() == cell_id(REDUCE) + ";" + cell_id(NORMAL)
    back = cli("convert", spec, res.output.strip(), "--to", "genotype")
    got = json.loads(back.output)
    assert sorted(map(tuple, got["normal"])) == sorted(map(tuple, NORMAL))
    assert sorted(map(tuple, got["reduce"])) == sorted(map(tuple, REDUCE))
    # the usual order is unchanged
    assert cli("convert", SPECS / "darts.nfl", GENOTYPE).output.strip() == cell_id(NORMAL) + ";" + cell_id(REDUCE)


def test_a_genotype_for_an_nb201_space_names_the_format():
    res = cli("convert", SPECS / "nb201.nfl", GENOTYPE, "--space", "nb201")
    no_traceback(res)
    assert res.exit_code == 2 and "DARTS genotype" in res.output and "does not fit space 'nb201'" in res.output


def test_an_unreadable_genotype_is_not_taken_for_an_id():
    res = cli("convert", SPECS / "darts.nfl", "Genotype(**d)")
    no_traceback(res)
    assert res.exit_code == 2 and "not a genotype nflc can read" in res.output and "cell part" not in res.output


def test_a_huge_range_gives_a_short_message():
    value = "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=range(1000000), reduce=[], reduce_concat=range(2, 6))"
    res = cli("convert", SPECS / "darts.nfl", value)
    no_traceback(res)
    assert res.exit_code == 2 and len(res.output) < 2000


def test_score_from_file_places_a_genotype_by_role(tmp_path):
    import nflc
    from nflc.rank import architectures_from_file

    space = nflc.load(reduction_first(tmp_path))
    items = tmp_path / "items.json"
    items.write_text(json.dumps([json.loads(GENOTYPE), {"genotype": json.loads(GENOTYPE)}]))
    archs = architectures_from_file(space, items)
    assert [a.id for a in archs] == [cell_id(REDUCE) + ";" + cell_id(NORMAL)] * 2
