"""Property tests of the lexical cases of issue #11: names that begin with `x` and digits,
comments inside multi-line choices, decimals with SI suffixes. Each generated spec is
checked against values computed here from the generator's own choices."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nflc
from nflc.errors import NflcError

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIX = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}


# ------------------------------------------------------------------ names that look like repeats


@st.composite
def x_names(draw):
    """A name beginning with x and digits: x3margin, x12_, x0y, or a bare x7 (then always with '=')."""
    digits = draw(st.from_regex(r"[0-9]{1,3}", fullmatch=True))
    tail = draw(st.one_of(st.just(""), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)))
    return "x" + digits + tail


@SETTINGS
@given(names=st.lists(x_names(), min_size=1, max_size=4, unique=True), data=st.data())
def test_names_beginning_with_x_and_digits_are_names(names, data):
    values = {n: data.draw(st.integers(1, 40), label=n) for n in names}
    repeat = data.draw(st.integers(1, 4), label="repeat")
    used = data.draw(st.sampled_from(names), label="used")
    spaced = data.draw(st.booleans(), label="space before =")
    defs = []
    for n in names:  # after the network line: where a repeat count could also follow
        bare = n[1:].isdigit()  # `x7 5` would read as a repeat count: a bare xN needs '='
        eq = " = " if (bare or data.draw(st.booleans(), label=f"{n} has =")) else " "
        defs.append(f"    {n}{eq if spaced or eq == ' ' else eq.strip()}{values[n]}")
    text = (f"space s {{\n    input [5]\n    cell {{ nodes 2  edge * : skip | relu }}\n"
            f"    network = cell x{repeat} >> linear({used})\n" + "\n".join(defs) + "\n}\n")
    sp = nflc.loads(text)
    assert {k: sp.ir.constants[k] for k in names} == values
    assert sum(st_.kind == "cell" for st_ in sp.ir.network) == repeat
    assert sp.architecture(0).params == 5 * values[used] + values[used]
    assert sp.count() == 2


# ------------------------------------------------------------------ comments inside choices


CHOICES = ["zero", "skip", "relu", "linear >> relu", "relu >> linear >> relu", "(linear >> relu) x2"]


@SETTINGS
@given(data=st.data())
def test_comments_inside_a_multi_line_choice_are_not_part_of_labels(data):
    chosen = data.draw(st.lists(st.sampled_from(CHOICES), min_size=1, max_size=4, unique=True), label="choices")
    comment = st.from_regex(r"#[^\n]{0,12}", fullmatch=True)

    def spread(op: str) -> str:
        """The op with a comment and a line break at some of its spaces."""
        words = op.split(" ")
        out = words[0]
        for w in words[1:]:
            gap = " " + data.draw(comment) + "\n" + " " * data.draw(st.integers(0, 8)) if data.draw(st.booleans()) else " "
            out += gap + w
        return out

    body = "\n          | ".join(spread(c) + ("  " + data.draw(comment) if data.draw(st.booleans()) else "")
                                 for c in chosen)
    template = "space s {{\n    input [6]\n    cell {{ nodes 3\n      edge * : {} \n    }}\n    network = cell\n}}\n"
    commented = nflc.loads(template.format(body))
    plain = nflc.loads(template.format(" | ".join(chosen)))
    labels = [c.label for c in commented.ir.cells["cell"].edges[0].choices]
    assert labels == chosen
    assert commented.spec_hash == plain.spec_hash
    assert commented.count() == plain.count() == len(chosen) ** 3


# ------------------------------------------------------------------ decimals with suffixes


@st.composite
def decimals(draw):
    """(text, exact value): a decimal with an optional SI suffix and '_' separators."""
    whole = draw(st.integers(0, 99_999))
    places = draw(st.integers(0, 4))
    frac = draw(st.integers(0, 10**places - 1)) if places else 0
    suffix = draw(st.sampled_from(["", "k", "K", "M", "G"]))
    digits = f"{whole:,}".replace(",", "_") if draw(st.booleans()) else str(whole)
    text = digits + (f".{frac:0{places}d}" if places else "") + suffix
    value = (Fraction(whole) + Fraction(frac, 10**places)) * SUFFIX.get(suffix, 1)
    return text, value


BASE = "space s {{\n    input [3]\n    cell {{ nodes 2  edge * : skip }}\n    network = cell\n    {}\n}}\n"


@SETTINGS
@given(decimals())
def test_suffixed_decimals_are_exact(case):
    text, value = case
    spec = BASE.format(f"budget params <= {text}")
    if value.denominator == 1 and value >= 1:
        assert nflc.loads(spec).ir.budgets[0].value == value  # 4.1M is 4100000, not 4099999.999...
    else:
        with pytest.raises(NflcError, match="must be a whole number|must be at least 1"):
            nflc.loads(spec)
    tol = nflc.loads(BASE.format(f"budget params == 1000 +- {text}")).ir.budgets[0].tolerance
    assert tol == value  # exact (issue #28): no float on the way


@SETTINGS
@given(decimals(), st.integers(1, 9))
def test_decimal_arithmetic_is_exact(case, k):
    text, value = case
    spec = BASE.format(f"w = {text} * {10 ** k}\n    require params >= w")
    got = nflc.loads(spec).ir.requires[0].value
    assert got == value * 10**k  # an exact int or Fraction (issue #28)
