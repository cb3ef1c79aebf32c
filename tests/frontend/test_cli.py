"""The command line: counts, listings, graphs in three formats, the IR as JSON and text."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import networkx as nx
import pytest

import nflc
from nflc.ir.model import SpaceIR

from .conftest import REPO, SPECS, cli, no_traceback

NFL_H3 = SPECS / "nfl_h3.nfl"
DAG = "|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|"


def test_count():
    res = cli("count", NFL_H3)
    assert res.exit_code == 0 and res.output == "729\n"


def test_list_json_and_table():
    res = cli("list", NFL_H3, "--limit", "3", "--json")
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert rows[0] == {"index": 0, "id": "|zero~0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|",
                       "params": 784 * 256 + 256 * 10, "flops": 784 * 256 + 256 * 10}
    table = cli("list", NFL_H3, "--limit", "2")
    assert table.exit_code == 0 and "|zero~0|+|zero~0|zero~1|+|zero~0|zero~1|skip~2|" in table.output


def test_graph_dot():
    res = cli("graph", NFL_H3, DAG)
    assert res.exit_code == 0
    assert res.output.startswith('digraph "nfl_h3" {')
    assert '"0" -> "1" [label="linear"];' in res.output
    assert '"0" -> "2" [label="zero" style="dashed"];' in res.output


def test_graph_graphml_parses_back():
    res = cli("graph", NFL_H3, DAG, "--format", "graphml")
    assert res.exit_code == 0
    g = nx.parse_graphml(res.output, node_type=int)
    assert sorted(g.nodes) == [0, 1, 2, 3] and g.number_of_edges() == 6
    assert g.edges[0, 1]["op"] == "linear" and g.edges[0, 1]["kind"] == "linear_relu"
    assert g.edges[0, 1]["params"] == 256 * 256 and g.edges[0, 2]["op"] == "zero"


def test_graph_json_has_edges_with_ops():
    res = cli("graph", NFL_H3, DAG, "--format", "json")
    data = json.loads(res.output)
    ops = {(e["source"], e["target"]): e["op"] for e in data["edges"]}
    assert ops == {(0, 1): "linear", (0, 2): "zero", (1, 2): "linear", (0, 3): "zero", (1, 3): "zero", (2, 3): "linear"}
    g = nx.node_link_graph(data, edges="edges")
    assert g.edges[1, 2]["prims"] == ["linear", "relu"]


def test_graph_by_index_equals_graph_by_id():
    assert cli("graph", NFL_H3, str(int("202002", 3))).output == cli("graph", NFL_H3, DAG).output


def test_graph_of_the_whole_network():
    res = cli("graph", NFL_H3, DAG, "--network", "--format", "json")
    g = nx.node_link_graph(json.loads(res.output), edges="edges")
    assert nx.is_directed_acyclic_graph(g)
    assert nx.has_path(g, "input", "output")
    assert g.edges["%3.X1", "%3.X2"]["op"] == "linear"


def test_multi_cell_graph_is_the_network():
    res = cli("graph", SPECS / "resnet_chain.nfl", "--space", "resnet_chain", "0", "--format", "json")
    no_traceback(res)
    g = nx.node_link_graph(json.loads(res.output), edges="edges")
    assert "input" in g and "%6.X2" in g


def test_ir_json_validates_back():
    for path, space in [(NFL_H3, None), (SPECS / "nb201.nfl", "nb201"), (SPECS / "nfl_h3_budget.nfl", None)]:
        args = ["ir", path] + (["--space", space] if space else [])
        res = cli(*args)
        assert res.exit_code == 0, res.output
        ir = SpaceIR.model_validate_json(res.output)
        assert ir == nflc.load(path, space=space).ir
        assert ir.lint() == []


def test_ir_text_golden():
    res = cli("ir", NFL_H3, "--text")
    golden = (REPO / "tests" / "golden" / "nfl_h3.ir.txt").read_text()
    assert res.output == golden


@pytest.mark.parametrize("hash_seed", ["0", "1"])
def test_ir_text_does_not_depend_on_string_hashing(hash_seed):
    """Sets and dicts of strings iterate in an order that changes with PYTHONHASHSEED (random
    per process unless set): in other processes the text IR must still be the golden one."""
    golden = (REPO / "tests" / "golden" / "nfl_h3.ir.txt").read_text()
    out = subprocess.run([sys.executable, "-m", "nflc.cli", "ir", str(NFL_H3), "--text"], cwd=REPO,
                         env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == golden


def test_check_reports_warnings_and_still_succeeds(spec):
    text = (SPECS / "nfl_h3.nfl").read_text().replace("width   256", "width   256\n    depth 3")
    path = spec(text)
    res = cli("check", path)
    assert res.exit_code == 0
    assert f"{path}:7:5: warning: constant 'depth' is defined but never used" in res.output


def test_a_repeated_unique_is_a_warning(spec):
    text = (SPECS / "nb201.nfl").read_text()
    assert "    unique\n" in text
    path = spec(text.replace("    unique\n", "    unique\n    unique\n", 1))
    res = cli("check", path)
    line = text[: text.index("    unique\n")].count("\n") + 2
    assert res.exit_code == 0
    assert f"{path}:{line}:5: warning: 'unique' is given more than once" in res.output


def test_user_errors_exit_2_and_usage_errors_too():
    assert cli("count").exit_code == 2  # click's own usage error
    assert cli("count", SPECS / "missing.nfl").exit_code == 2
