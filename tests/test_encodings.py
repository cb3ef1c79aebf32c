"""nflc.encodings: every entry of the shared NAS-Bench files round-trips through its id and
agrees with NASLib's own columns; the ids are the spaces' ids; malformed values name their
bad part."""

import json
import re
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

import nflc
from nflc import encodings as enc
from nflc.encodings import EncodingError

ROOT = Path(__file__).resolve().parents[1]
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")  # DARTS's genotypes.py


def records(shared_data, name):
    return json.loads(shared_data(name).read_text())["architectures"]


@pytest.fixture(scope="module")
def nb101_space():
    return nflc.load(ROOT / "specs" / "nb101.nfl")


# ---------------------------------------------------------------- NAS-Bench-201

def test_nb201_file_op_indices_and_round_trips(shared_data):
    sp = nflc.load(ROOT / "specs" / "nb201.nfl", space="nb201")
    for r in records(shared_data, "nb201/nb201_cifar10.json"):
        assert enc.nb201_to_op_indices(r["arch_str"]) == r["naslib_op_indices"]
        assert enc.op_indices_to_nb201(r["naslib_op_indices"]) == r["arch_str"]
        assert enc.convert(r["arch_str"], "id", "op_indices") == r["naslib_op_indices"]
        assert sp.architecture(enc.to_id(r["naslib_op_indices"], "op_indices")).id == r["arch_str"]


def test_nb201_op_indices_follow_naslib_edge_and_op_order():
    # NASLib: EDGE_LIST (1,2),(1,3),(1,4),(2,3),(2,4),(3,4); codes skip_connect 0, none 1,
    # nor_conv_3x3 2, nor_conv_1x1 3, avg_pool_3x3 4
    s = enc.op_indices_to_nb201([0, 1, 2, 3, 4, 2])
    # edges (0,1) skip, (0,2) none, (0,3) nor_conv_3x3, (1,2) nor_conv_1x1, (1,3) avg_pool, (2,3) nor_conv_3x3
    assert s == "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    # sources may come in any order; the string comes back sorted
    assert enc.nb201_to_op_indices("|skip_connect~0|+|nor_conv_1x1~1|none~0|+|nor_conv_3x3~2|nor_conv_3x3~0|"
                                   "avg_pool_3x3~1|") == [0, 1, 2, 3, 4, 2]


# ---------------------------------------------------------------- NAS-Bench-101

def test_nb101_file_round_trips_and_ids_are_in_the_space(shared_data, nb101_space):
    sp = nb101_space
    representatives = 0
    for r in records(shared_data, "nb101/nb101_cifar10.json"):
        ident = enc.nb101_to_id(r["matrix"], r["ops"])
        assert enc.nb101_to_naslib_tuple(r["matrix"], r["ops"]) == r["naslib_tuple"]
        assert enc.to_id(r["naslib_tuple"], "naslib_tuple") == ident
        assert enc.from_id(ident, "nb101") == {"matrix": r["matrix"], "ops": r["ops"]}  # all 7 x 7: canonical already
        assert enc.from_id(ident, "naslib_tuple") == r["naslib_tuple"]
        arch = sp.architecture(ident)
        assert arch.id == ident
        # the file keeps vertices off every input-output path (NASLib stores specs unpruned),
        # so few entries are their class's first member; every one is in the space by its class
        assert enc.not_in_space(arch) is None, (ident, arch.rejection)
        rep = enc.class_representative(arch)
        assert rep.rejection is None
        representatives += rep == arch
        # the class representative is the same pruned graph up to renumbering
        pm, po = enc.prune_nb101(r["matrix"], r["ops"])
        rm, ro = enc.prune_nb101(*enc.id_to_nb101(rep.id))
        assert (len(pm), sum(map(sum, pm)), sorted(po)) == (len(rm), sum(map(sum, rm)), sorted(ro))
    assert representatives < 250


def test_nb101_smaller_matrices_sit_in_seven_nodes():
    matrix = [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    ops = ["input", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "output"]
    ident = enc.nb101_to_id(np.array(matrix), ops)  # numpy arrays are read too
    assert ident == "conv1x1_bn_relu(0)+maxpool3x3(0)+conv3x3_bn_relu(1,2)+conv3x3_bn_relu()+conv3x3_bn_relu()+(3)"
    m7, ops7 = enc.id_to_nb101(ident)
    assert len(m7) == 7 and ops7[-1] == "output" and m7[3][6] == 1  # the output moved to vertex 6
    assert enc.prune_nb101(m7, ops7) == (matrix, ops)  # NAS-Bench-101's pruning gives the original back
    tup = enc.nb101_to_naslib_tuple(matrix, ops)
    assert len(tup) == 30 and enc.naslib_tuple_to_nb101(tup) == (matrix, ops)


def test_nb101_prune_drops_vertices_off_every_path():
    # vertex 2 has no input, vertex 4 feeds nothing: both go, as in nasbench's ModelSpec
    m = [[0, 1, 0, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]]
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "maxpool3x3", "maxpool3x3", "output"]
    assert enc.prune_nb101(m, ops) == ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                                       ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"])
    with pytest.raises(EncodingError, match="not reachable"):
        enc.prune_nb101([[0, 0, 0], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"])


# ---------------------------------------------------------------- DARTS / NAS-Bench-301

def test_nb301_file_compact_and_round_trips(shared_data):
    for r in records(shared_data, "nb301/nb301_cifar10.json"):
        g = r["genotype"]
        # NASLib's convert_genotype_to_compact keeps the genotype's pair order: exact match
        assert enc.genotype_to_compact(g) == r["naslib_compact"]
        assert enc.compact_to_genotype(r["naslib_compact"])["normal"] == g["normal"]
        ident = enc.genotype_to_id(g)
        assert enc.to_id(r["naslib_compact"], "compact") == ident
        canonical = enc.canonical_genotype(g)
        assert enc.from_id(ident, "genotype") == canonical
        assert enc.from_id(ident, "compact") == enc.genotype_to_compact(canonical)
        for cell in ("normal", "reduce"):  # canonical: the same pairs per node, sorted by input
            for k in range(0, 8, 2):
                assert sorted(map(tuple, canonical[cell][k:k + 2])) == sorted(map(tuple, g[cell][k:k + 2]))
                assert canonical[cell][k][1] < canonical[cell][k + 1][1]


def test_nb301_ids_are_ids_of_specs_darts(shared_data):
    # needs specs/darts.nfl (the DARTS space); not skipped when it is missing
    sp = nflc.load(ROOT / "specs" / "darts.nfl")
    for r in records(shared_data, "nb301/nb301_cifar10.json"):
        ident = enc.genotype_to_id(r["genotype"])
        arch = sp.architecture(ident)
        assert arch.id == ident and arch.rejection is None
    assert enc.id_to_genotype(sp.example_id())["reduce"][0] == ["max_pool_3x3", 0]


def test_genotype_forms_are_one_genotype():
    pairs = [("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
             ("max_pool_3x3", 0), ("skip_connect", 2), ("dil_conv_3x3", 3), ("dil_conv_5x5", 1)]
    nt = Genotype(normal=pairs, normal_concat=range(2, 6), reduce=pairs, reduce_concat=[2, 3, 4, 5])
    ident = enc.genotype_to_id(nt)
    assert ident.split(";")[0] == ("|sep_conv_5x5~0|sep_conv_3x3~1|+|skip_connect~0|sep_conv_3x3~1|+"
                                   "|max_pool_3x3~0|skip_connect~2|+|dil_conv_5x5~1|dil_conv_3x3~3|")
    assert enc.genotype_to_id({"normal": pairs, "reduce": pairs}) == ident  # concat lists may be left out
    assert enc.genotype_to_id(list(nt)) == ident
    text = ("Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
            "('max_pool_3x3', 0), ('skip_connect', 2), ('dil_conv_3x3', 3), ('dil_conv_5x5', 1)], "
            "normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 0), "
            "('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('dil_conv_3x3', 3), "
            "('dil_conv_5x5', 1)], reduce_concat=range(2, 6))")
    value = enc.parse_value(text)
    assert enc.detect_format(value) == "genotype" and enc.genotype_to_id(value) == ident


# ---------------------------------------------------------------- formats

@pytest.mark.parametrize("value, fmt", [
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "id"), (17, "id"), ([0, 1, 2, 3, 4, 0], "op_indices"),
    ({"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}, "nb101"), ([[[0, 1], [0, 0]], ["input", "output"]], "nb101"),
    ([0, 1, 0, 0, 0, 1], "op_indices"), ([0, 1, 0, 0, 0, 1], "op_indices"), ([0] * 30, "naslib_tuple"),
    ({"normal": [], "reduce": []}, "genotype"), ([[[0, 1]] * 8, [[1, 2]] * 8], "compact"),
])
def test_detect_format(value, fmt):
    assert enc.detect_format(value) == fmt


def test_conversion_between_families_is_refused():
    with pytest.raises(EncodingError, match="is a NAS-Bench-201 id; genotype is a DARTS encoding"):
        enc.convert([0, 1, 2, 3, 4, 0], "op_indices", "genotype")
    with pytest.raises(EncodingError, match="unknown format 'tuple'"):
        enc.to_id([0], "tuple")


# ---------------------------------------------------------------- malformed values name their bad part

G = [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4
M = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize("fmt, value, message", [
    ("op_indices", [0, 1, 2, 3, 4], r"op_indices has 5 entries, not 6"),
    ("op_indices", [0, 1, 2, 3, 4, 5], r"op_indices\[5\] = 5 is not an op code 0..4"),
    ("op_indices", [0, 1, 2, 3, 4, True], r"op_indices\[5\] is not an integer"),
    ("nb101", {"matrix": M, "ops": ["input", "conv3x3", "output"]}, r"ops\[1\]: 'conv3x3' is not one of the ops"),
    ("nb101", {"matrix": [[0, 1, 1], [0, 0, 1], [0, 1, 0]], "ops": ["input", "maxpool3x3", "output"]},
     r"matrix\[2\]\[1\] = 1 is on or below the diagonal"),
    ("nb101", {"matrix": [[0, 1, 2], [0, 0, 1], [0, 0, 0]], "ops": ["input", "maxpool3x3", "output"]},
     r"matrix\[0\]\[2\] = 2 is not 0 or 1"),
    ("nb101", {"matrix": [[0, 1], [0, 0], [0, 0]], "ops": ["input", "maxpool3x3", "output"]}, r"matrix\[0\] has 2 entries, not 3"),
    ("nb101", {"matrix": M, "ops": ["input", "maxpool3x3"]}, r"ops has 2 entries, not 3"),
    ("nb101", {"matrix": M, "ops": ["maxpool3x3", "maxpool3x3", "output"]}, r"ops\[0\] is 'maxpool3x3'; the first vertex is 'input'"),
    ("nb101", {"matrix": [[0] * 8] * 8, "ops": ["input"] + ["maxpool3x3"] * 6 + ["output"]}, r"8 vertices"),
    ("nb101", {"matrix": M}, r"has 'matrix' and 'ops'; 'ops' is missing"),
    ("naslib_tuple", [0] * 55, r"n\*n \+ n entries .* not 55"),
    ("naslib_tuple", [0, 1, 0, 0, 0, 7], r"naslib_tuple\[5\] = 7 \(the op of vertex 1\) is not an op code"),
    ("naslib_tuple", [0, 1, 0, 0, 1, 0], r"ops\[0\] is 'output'; the first vertex is 'input'"),
    ("genotype", {"normal": G[:7], "reduce": G}, r"genotype normal has 7 entries, not 8"),
    ("genotype", {"normal": G, "reduce": G[:6] + [["sep_conv_3x3", 2], ["sep_conv_3x3", 2]]},
     r"genotype reduce\[7\] = \[\"sep_conv_3x3\", 2\] \(node 5\): both pairs of node 5 take input 2"),
    ("genotype", {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 2]] + G[2:], "reduce": G},
     r"genotype normal\[1\] = .* \(node 2\): input 2 is not a node before node 2 \(0..1\)"),
    ("genotype", {"normal": [["none", 0]] + G[1:], "reduce": G}, r"genotype normal\[0\] .*: 'none' is not one of the ops"),
    ("genotype", {"normal": [["sep_conv_3x3", "0"]] + G[1:], "reduce": G}, r"the input of genotype normal\[0\] .* not an integer"),
    ("genotype", {"normal": G, "reduce": G, "reduce_concat": [2, 3, 4]}, r"reduce_concat is \[2, 3, 4\]"),
    ("genotype", {"normal": G, "reduce": G, "reduction": G}, r"unknown field 'reduction'"),
    ("genotype", {"normal": G}, r"has no field 'reduce'"),
    ("compact", [[[0, 3]] * 8], r"has 1 entries, not 2"),
    ("compact", [[[0, 3], [1, 9]] + [[0, 3], [1, 3]] * 3, [[0, 3], [1, 3]] * 4], r"compact normal\[1\] = \[1, 9\]: op code 9"),
    ("compact", [[[0, 3], [1, 3]] * 4, [[0, 3], [0, 3]] + [[0, 3], [1, 3]] * 3], r"compact reduce\[1\] .*: both pairs of node 2"),
    ("id", "|none~0|+|none~0|none~1|", None),  # an id is the space's to judge
])
def test_malformed_values_name_their_bad_part(fmt, value, message):
    if message is None:
        assert enc.to_id(value, fmt) == value
        return
    with pytest.raises(EncodingError, match=message):
        enc.to_id(value, fmt)


@pytest.mark.parametrize("fmt, ident, message", [
    ("op_indices", "|none~0|+|none~0|none~1|", r"expected 3 groups"),
    ("op_indices", "|none~0|+|none~0|+|none~0|none~1|none~2|", r"node 2 .* has sources \[0\]"),
    ("op_indices", "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", r"source 0 appears twice"),
    ("op_indices", "|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|", r"edge 2 -> 3 .*'conv' is not one of the ops"),
    ("op_indices", "|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", r"source 3 is not a node before 3"),
    ("op_indices", "|none~0|+|none~0|none1|+|none~0|none~1|none~2|", r"'none1' .* is not 'op~source'"),
    ("nb101", "conv3x3_bn_relu(0)+(0,2)", r"'2' in group 2 .* is not a node before node 2"),
    ("nb101", "conv3x3_bn_relu(0)+conv5x5(1)+(2)", r"node 2 .*'conv5x5' is not one of the ops"),
    ("nb101", "conv3x3_bn_relu(0)+maxpool3x3(1)", r"the last group .* is the output, which has no op"),
    ("nb101", "conv3x3_bn_relu(0)+(1)+(2)", r"group 2 .* names no op for node 2"),
    ("genotype", "|sep_conv_3x3~0|sep_conv_3x3~1|+" * 3 + "|sep_conv_3x3~0|sep_conv_3x3~1|", r"2 parts"),
    ("genotype", ";".join(["|sep_conv_3x3~0|+" + "|sep_conv_3x3~0|sep_conv_3x3~1|+" * 2 + "|sep_conv_3x3~0|sep_conv_3x3~1|"] * 2),
     r"node 2 of the normal cell .* has 1 inputs"),
    ("genotype", ";".join(["|sep_conv_3x3~0|sep_conv_3x3~1|+" * 3 + "|sep_conv_3x3~0|sep_conv_3x3~5|"] * 2),
     r"source 5 is not a node before 5"),
    ("compact", ";".join(["|sep_conv_3x3~0|sep_conv_3x3~1|+" * 3 + "|sep_conv_3x3~0|zero~1|"] * 2),
     r"node 5 of the normal cell .*'zero' is not one of the ops"),
    ("compact", "|a~0|", r"is not an id of NAS-Bench-201, NAS-Bench-101 or DARTS|is a NAS-Bench-201 id"),
    ("genotype", "nothing", r"not an id of NAS-Bench-201, NAS-Bench-101 or DARTS"),
])
def test_malformed_ids_name_their_bad_part(fmt, ident, message):
    with pytest.raises(EncodingError, match=message):
        enc.from_id(ident, fmt)


def test_entry_encodings_must_agree():
    entry = {"arch_str": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "naslib_op_indices": [1, 1, 1, 1, 1, 0]}
    with pytest.raises(EncodingError, match="arch_str and naslib_op_indices name different architectures"):
        enc.entry_id(entry)
    entry["naslib_op_indices"] = [1] * 6
    assert enc.entry_id(entry) == entry["arch_str"]
    with pytest.raises(EncodingError, match=r"matrix/ops: ops\[1\]"):
        enc.entry_id({"matrix": M, "ops": ["input", "conv", "output"]})
    with pytest.raises(EncodingError, match="missing an architecture: the entry has none of id, arch_str, matrix and ops"):
        enc.entry_id({"val_accuracy": 1.0})


def test_parse_value_reads_json_and_python_literals():
    assert enc.parse_value("[1, 2]") == [1, 2]
    assert enc.parse_value("([0, 1], ('input', 'output'))") == [[0, 1], ["input", "output"]]
    with pytest.raises(EncodingError, match="neither JSON nor a Python literal"):
        enc.parse_value("[1, 2")
    with pytest.raises(EncodingError, match="neither JSON nor a Python literal"):
        enc.parse_value("__import__('os')")


# ---------------------------------------------------------------- nflc convert

def convert_cli(*args, input=None):
    from typer.testing import CliRunner

    from nflc.cli import app

    return CliRunner().invoke(app, ["convert", *map(str, args)], input=input)


NB201 = ROOT / "specs" / "nb201.nfl"
NB101 = ROOT / "specs" / "nb101.nfl"
DARTS = ROOT / "specs" / "darts.nfl"
ARCH = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|"


def test_convert_nb201_both_ways():
    assert convert_cli(NB201, "-s", "nb201", "[4, 4, 4, 4, 0, 2]").stdout == ARCH + "\n"  # --from told by the shape
    assert convert_cli(NB201, "-s", "nb201", ARCH, "--to", "op_indices").stdout == "[4, 4, 4, 4, 0, 2]\n"
    sp = nflc.load(NB201, space="nb201")
    index = sp.architecture(ARCH).index
    assert convert_cli(NB201, "-s", "nb201", ARCH, "--to", "index").stdout == f"{index}\n"
    assert convert_cli(NB201, "-s", "nb201", index, "--to", "op_indices").stdout == "[4, 4, 4, 4, 0, 2]\n"
    assert convert_cli(NB201, "-s", "nb201", "-", "--from", "op_indices", input="[4, 4, 4, 4, 0, 2]\n").stdout == ARCH + "\n"
    # the space's prelude aliases are read and printed as its labels
    assert convert_cli(NB201, "-s", "nb201", ARCH.replace("skip_connect", "skip")).stdout == ARCH + "\n"


def test_convert_nb101_says_when_the_graph_is_not_its_class_representative():
    spec = {"matrix": [[0, 1, 1], [0, 0, 1], [0, 0, 0]], "ops": ["input", "maxpool3x3", "output"]}
    res = convert_cli(NB101, json.dumps(spec))
    ident = "maxpool3x3(0)+conv3x3_bn_relu()+conv3x3_bn_relu()+conv3x3_bn_relu()+conv3x3_bn_relu()+(0,1)"
    assert res.exit_code == 0 and res.stdout == ident + "\n"
    assert "as a member of the isomorphism class of" in res.stderr
    rep = convert_cli(NB101, ident, "--representative").stdout.strip()
    sp = nflc.load(NB101)
    assert sp.architecture(rep).rejection is None and rep == enc.class_representative(sp.architecture(ident)).id
    back = json.loads(convert_cli(NB101, rep, "--to", "nb101").stdout)
    assert enc.prune_nb101(back["matrix"], back["ops"]) == (spec["matrix"], spec["ops"])  # the same graph, renumbered
    tup = convert_cli(NB101, "([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ('input', 'maxpool3x3', 'output'))", "--to", "naslib_tuple")
    assert json.loads(tup.stdout) == enc.nb101_to_naslib_tuple(*enc.id_to_nb101(ident))
    # a graph outside the space converts, with a note saying why it is outside
    res = convert_cli(NB101, json.dumps({"matrix": [[0, 1, 0], [0, 0, 0], [0, 0, 0]], "ops": spec["ops"]}))
    assert res.exit_code == 0 and "is not in space 'nb101': node cell 'module(c=128)' has no input-output path" in res.stderr


def test_convert_darts_genotype_and_compact():
    pairs = [("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
             ("max_pool_3x3", 0), ("skip_connect", 2), ("dil_conv_3x3", 3), ("dil_conv_5x5", 1)]
    text = repr(Genotype(normal=pairs, normal_concat=range(2, 6), reduce=pairs, reduce_concat=range(2, 6)))
    res = convert_cli(DARTS, text, "--to", "compact")
    assert res.exit_code == 0, res.output
    compact = json.loads(res.stdout)
    assert compact[0][:2] == [[0, 4], [1, 3]]  # node 2's pairs, sorted by input
    genotype = json.loads(convert_cli(DARTS, json.dumps(compact), "--to", "genotype").stdout)
    assert genotype == enc.canonical_genotype({"normal": pairs, "reduce": pairs})
    assert convert_cli(DARTS, json.dumps(compact)).stdout.strip() == enc.genotype_to_id(genotype)


@pytest.mark.parametrize("args, message", [
    ((NB201, "-s", "nb201", "[4, 4, 4, 4, 0, 7]"), r"error: op_indices\[5\] = 7 is not an op code 0..4"),
    ((NB201, "-s", "nb201", "[4, 4, 4, 4, 0, 2]", "--to", "genotype"), r"is a NAS-Bench-201 id; genotype is a DARTS encoding"),
    ((NB201, "-s", "nb201", ARCH, "--to", "tuple"), r"--to 'tuple' is not a format"),
    ((NB201, "-s", "nb201", "[4, 4", "--from", "op_indices"), r"is neither JSON nor a Python literal"),
    ((NB201, "-s", "nb201", "[[1], 2]"), r"cannot tell which encoding"),
    ((NB201, "-s", "nb201", ARCH.replace("skip_connect", "conv")), r"'conv' is not a choice of edge 1 -> 3"),
    ((NB201, "-s", "nb201", "[1, 2]", "--from", "id"), r"--from id takes an id or an index"),
    ((NB101, '{"matrix": [[0, 1], [1, 0]], "ops": ["input", "output"]}'), r"matrix\[1\]\[0\] = 1 is on or below"),
])
def test_convert_bad_input_is_one_error(args, message):
    res = convert_cli(*args)
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("note:")]
    assert lines[0].startswith("error: ") and re.search(message, lines[0]), res.stderr  # one line, then a hint at most
    assert all(ln.startswith("  hint: ") for ln in lines[1:]), res.stderr
