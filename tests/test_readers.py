"""Bounded JSON readers (issue #27, item 7): benchmark files, analysis files and converted
values beyond the stated bounds (digits, magnitude, nesting, encoding, ranges) are refused
with their file, line and column, exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nflc import encodings as enc
from nflc.cli import app
from nflc.readers import MAX_DEPTH, MAX_INT_DIGITS, JsonBoundsError, JsonInputError, parse_json, read_json

ROOT = Path(__file__).resolve().parents[1]
NB201 = ROOT / "specs" / "nb201.nfl"
DARTS = ROOT / "specs" / "darts.nfl"
ARCHS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"]


def cli(*args, input=None):
    res = CliRunner().invoke(app, [str(a) for a in args], input=input)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


# ---------------------------------------------------------------------------------------
# the reader itself


def test_numbers_within_the_bounds_are_read_exactly():
    big = int("9" * MAX_INT_DIGITS)
    doc = parse_json(f'{{"a": [{big}, -{big}, 1.5e308, NaN, 2.5]}}', "x")
    assert doc["a"][:3] == [big, -big, 1.5e308] and doc["a"][4] == 2.5
    assert float(doc["a"][0]) < float("inf")  # every integer it returns converts to a finite float


@pytest.mark.parametrize("text, line, column, words", [
    ('{"a":\n  [' + "9" * 5000 + "]}", 2, 4, "5,000 digits"),
    ('{"a": 1' + "0" * 400 + "}", 1, 7, "digits"),
    ('[1e400]', 1, 2, "beyond the largest number"),
    ('[-1e400]', 1, 2, "beyond the largest number"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), 1, MAX_DEPTH + 1, f"more than {MAX_DEPTH} deep"),
    ("[" * 100_000 + "]" * 100_000, 1, MAX_DEPTH + 1, "deep"),
    # '{' and the '[' after "t" are levels 1 and 2: level MAX_DEPTH + 1 is MAX_DEPTH - 1 brackets further
    ('{"s": "[[[[", "t": [' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "]}", 1, 20 + MAX_DEPTH - 1, "deep"),
])
def test_bounds_are_errors_with_their_position(text, line, column, words):
    with pytest.raises(JsonBoundsError) as info:
        parse_json(text, "f.json")
    span = info.value.span
    assert (span.file, span.line, span.column) == ("f.json", line, column) and words in str(info.value)


def test_brackets_inside_strings_do_not_count():
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(json.dumps({"s": "[" * 10_000, "t": "\\\"[" * 1000}) + deep[:0], "x")["s"] == "[" * 10_000
    assert parse_json(deep, "x") is not None


def test_malformed_json_is_located_and_a_long_line_is_not_echoed(tmp_path):
    path = tmp_path / "one_line.json"
    path.write_text('{"architectures": [' + ", ".join(['{"a": 1}'] * 5000) + ", }]}")
    with pytest.raises(JsonInputError) as info:
        read_json(path, "benchmark file")
    rendered = info.value.render()
    assert f"{path}:1:" in rendered and "not valid JSON" in rendered and len(rendered) < 400


def test_bytes_that_are_not_utf8_are_located(tmp_path):
    path = tmp_path / "b.json"
    path.write_bytes(b'{"a":\n "x\xff\xfe"}')
    with pytest.raises(JsonInputError) as info:
        read_json(path, "benchmark file")
    assert "not UTF-8" in str(info.value) and "0xff" in str(info.value) and info.value.span.line == 2


def test_a_directory_and_a_missing_file_are_named(tmp_path):
    with pytest.raises(JsonInputError, match="is a directory"):
        read_json(tmp_path, "benchmark file")
    with pytest.raises(JsonInputError, match="no benchmark file at"):
        read_json(tmp_path / "nope.json", "benchmark file")


# ---------------------------------------------------------------------------------------
# the commands that read JSON


def bench_text(**replace) -> str:
    text = json.dumps({"architectures": [{"arch_str": a, "val_accuracy": 90.0 + i, "synflow": 2.0 * i}
                                         for i, a in enumerate(ARCHS)]})
    for old, new in replace.items():
        text = text.replace(old, new, 1)
    return text


HOSTILE_BENCHMARKS = {
    "5000 digits": (bench_text(**{'"synflow": 0.0': '"synflow": ' + "9" * 5000}), "5,000 digits"),
    "1e400": (bench_text(**{'"synflow": 0.0': '"synflow": 1e400'}), "beyond the largest number"),
    "a 10^400 accuracy": (bench_text(**{'"val_accuracy": 90.0': '"val_accuracy": 1' + "0" * 400}), "digits"),
    "nesting 100k deep": ('{"architectures": ' + "[" * 100_000 + "]" * 100_000 + "}", "deep"),
    "non-UTF-8 bytes": (None, "not UTF-8"),
}


@pytest.mark.parametrize("case", list(HOSTILE_BENCHMARKS))
def test_rank_refuses_hostile_benchmark_files(tmp_path, case):
    text, words = HOSTILE_BENCHMARKS[case]
    path = tmp_path / "b.json"
    if text is None:
        path.write_bytes(bench_text().encode().replace(b"synflow", b"syn\xff\xfeflow"))
    else:
        path.write_text(text)
    res = cli("rank", NB201, "--benchmark", path)
    assert res.exit_code == 2 and words in res.output and str(path) in res.output, res.output


def test_report_refuses_a_hostile_analysis_file(tmp_path):
    db = tmp_path / "r.sqlite"  # the analysis is read before the database (none here: it is never opened)
    for text, words in (('{"architectures": [{"id": "x", "scores": {"expressivity": 1e999}}]}', "beyond"),
                        ('{"architectures": ' + "[" * 50_000 + "]" * 50_000 + "}", "deep"),
                        ('{"architectures": [{"id": "x", "n": ' + "7" * 5000 + "}]}", "5,000 digits")):
        path = tmp_path / "a.json"
        path.write_text(text)
        res = cli("report", "--db", db, "--analysis", path)
        assert res.exit_code == 2 and words in res.output and str(path) in res.output, res.output


@pytest.mark.parametrize("value, words", [
    ("9" * 5000, "5,000 digits"),
    ("[" * 50_000 + "]" * 50_000, "deep"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=range(1000000000000), reduce=[], reduce_concat=range(2, 6))",
     "too long"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=range(300000000), reduce=[], reduce_concat=range(2, 6))",
     "too long"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=range(10000000000000000000), reduce=[], reduce_concat=range(2, 6))",
     "too long"),
])
def test_convert_refuses_values_beyond_the_bounds(value, words):
    res = cli("convert", DARTS, value)
    assert res.exit_code == 2 and words in res.output and len(res.output) < 2000, res.output
    res = cli("convert", DARTS, "-", input=value)  # the same from standard input
    assert res.exit_code == 2 and words in res.output, res.output


def test_a_genotype_range_in_python_is_compared_not_listed():
    with pytest.raises(enc.EncodingError, match="concatenate"):
        enc.to_id({"normal": [], "normal_concat": range(10**12), "reduce": [], "reduce_concat": range(2, 6)}, "genotype")


def test_convert_reads_ordinary_values_as_before():
    res = cli("convert", NB201, "[0, 1, 2, 3, 4, 0]", "--from", "op_indices", "--space", "nb201")
    assert res.exit_code == 0 and res.output.startswith("|"), res.output
