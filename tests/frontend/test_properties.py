"""Property tests: random valid specs compile and count exactly; random corruptions of them
raise nothing but NflcError (with positions inside the file), never a traceback."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nflc
from nflc.errors import NflcError, SpaceError
from nflc.ir.lower import compile_text
from nflc.space import Space

OPS = ["zero", "skip", "linear >> relu", "relu"]
TOKENS = ["{", "}", "(", ")", "[", "]", ">>", "|", "->", ":", "=", "*", "/", "//", "**", "+-", "%", ",", "~", "x0",
          "x3", "independent", "shared", "cell", "edge", "nodes", "space", "op", "input", "network", "budget",
          "require", "unique", "scale", "as", "import", '"other.nfl"', "0", "1", "1.5", "2k", "-", "width", "linear",
          "skip", "zero", "conv2d", "true", "false", "bias", "init", "prune dead", "\n", "#", "99999999999", "é"]
# derandomize: the examples are drawn from a seed derived from the test, the same on every run
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def valid_specs(draw):
    """(source, number of architectures before filters, has filters)."""
    n = draw(st.integers(2, 5))
    pairs = [(s, t) for t in range(1, n) for s in range(t)]
    lines, radices = [], []

    def choice_set():
        chosen = draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=4, unique=True))
        return [f"{c} as lin" if c == "linear >> relu" and draw(st.booleans()) else c for c in chosen]

    if draw(st.booleans()):
        cs = choice_set()
        lines.append("edge * : " + " | ".join(cs))
        radices = [len(cs)] * len(pairs)
    else:
        for s, t in draw(st.lists(st.sampled_from(pairs), unique=True)):
            cs = choice_set()
            src = f"X{s}" if draw(st.booleans()) else str(s)
            lines.append(f"edge {src} -> {t} : " + " | ".join(cs))
            radices.append(len(cs))
    raw = math.prod(radices)
    width, features = draw(st.integers(1, 64)), draw(st.integers(1, 50))
    extra = []
    if raw <= 2000:
        if draw(st.booleans()):
            extra.append(f"budget params <= {draw(st.integers(1, 20_000))}")
        if draw(st.booleans()):
            extra.append(f"require paths >= {draw(st.integers(0, 3))}")
        if draw(st.booleans()):
            extra.append("unique")
    body = "\n        ".join(lines)
    text = f"""space gen {{
    input [{features}]
    classes 3
    width {width}
    cell {{
        nodes {n}
        {body}
    }}
    network = linear(width) >> relu >> cell >> linear(classes)
    {chr(10).join('    ' + e for e in extra).strip()}
}}
"""
    return text, raw, bool(extra)


@SETTINGS
@given(valid_specs())
def test_valid_specs_compile_and_count(case):
    text, raw, filtered = case
    sp = nflc.loads(text)
    assert sp.raw_count() == raw
    assert sp.ir.lint() == []
    if not filtered:
        assert sp.count() == raw
    else:
        kept = list(sp)
        assert sp.count() == len(kept) <= raw
        assert all(a.rejection is None for a in kept)
        assert len(kept) + sum(1 for _ in sp.rejections()) == raw
    a = sp.architecture(raw - 1)
    assert sp.architecture(a.id).index == raw - 1


@st.composite
def corrupted(draw):
    text, _, _ = draw(valid_specs())
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["delete", "insert", "replace", "token", "swap-token"]))
        if how == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)):]
        elif how == "insert":
            text = text[:i] + draw(st.characters(codec="utf-8")) + text[i:]
        elif how == "replace":
            text = text[:i] + draw(st.sampled_from("{}()[]<>=|*:#-+,.x0123456789aA_ \n\"~;%")) + text[i + 1:]
        else:
            words = text.split(" ")
            j = draw(st.integers(0, len(words) - 1))
            tok = draw(st.sampled_from(TOKENS))
            if how == "token":
                words.insert(j, tok)
            else:
                words[j] = tok
            text = " ".join(words)
    return text


def _exercise(sp: Space) -> None:
    """What a user would do next with a space that compiled, each result checked against
    what the IR says (raw count, cell shapes) or a brute force (the filtered count)."""
    assert sp.ir.lint() == []
    assert f"space {sp.name}" in sp.ir.to_text()
    n = sp.raw_count()
    assert n == math.prod(len(e.choices) for k in sp.instances for e in sp.cell_of[k].edges)
    kept = None
    if n <= 2000:  # brute force: every raw index, its own rejection
        kept = [i for i in range(n) if sp.architecture(i).rejection is None]
        assert sp.count() == len(kept)
        assert [a.index for a in sp] == kept
    if n:
        a = sp.architecture(n - 1)
        assert sp.architecture(a.id).index == n - 1
        assert isinstance(a.params, int) and a.params >= 0
        graphs = a.cell_graphs
        assert list(graphs) == sp.instances
        for k, g in graphs.items():
            assert sorted(g.nodes) == list(range(sp.cell_of[k].nodes))
    if kept == []:
        with pytest.raises(SpaceError, match="has only 0"):
            sp.sample(1, seed=0)
    elif kept:
        (drawn,) = sp.sample(1, seed=0)
        assert drawn.index in kept
    else:  # too large to walk: a draw either passes the filters or says none did
        try:
            (drawn,) = sp.sample(1, seed=0, max_tries=200)
        except SpaceError as exc:
            assert "samples passed the filters" in str(exc) or "has only 0" in str(exc), exc
        else:
            assert drawn.rejection is None


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted())
def test_corrupted_specs_raise_only_nflc_errors(text):
    try:
        prog = compile_text(text, "fuzz.nfl")
    except NflcError as exc:
        out = exc.render()
        assert "Traceback" not in out and exc.diagnostics
        n_lines = text.count("\n") + 1
        for d in exc.diagnostics:
            assert d.span is None or (d.span.file == "fuzz.nfl" and 1 <= d.span.line <= n_lines), d
        return
    for name, ir in prog.spaces.items():
        _exercise(Space(ir, prog.sources_by_space[name], prog.warnings))
