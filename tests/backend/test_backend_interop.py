"""NAS-Bench-201 interop (architecture strings, op aliases) and clear errors for bad input."""

from __future__ import annotations

import re

import pytest
import torch

import nflc

# A space that names its choices itself; NB201's names still work in ids (ChoiceIR.aliases).
ALIASED = """
space aliased {
    input   [3, 32, 32]
    classes 10
    width   16
    bias    false
    cell {
        nodes 4
        edge * : zero | skip | relu >> conv2d(1) >> batchnorm as conv1
               | relu >> conv2d(3) >> batchnorm as conv3 | avg_pool(3) as pool
    }
    network = conv2d(3, width) >> batchnorm
           >> cell x5 >> resblock(2 * width, stride=2)
           >> cell x5 >> resblock(4 * width, stride=2)
           >> cell x5 >> batchnorm >> relu >> global_avg_pool >> linear(classes, bias=true)
}
"""
TO_LABEL = {"none": "zero", "skip_connect": "skip", "nor_conv_1x1": "conv1", "nor_conv_3x3": "conv3",
            "avg_pool_3x3": "pool"}


def test_nb201_strings_round_trip(nb201, nb201_records):
    for r in nb201_records:
        a = nb201.architecture(r["arch_str"])
        assert a.id == r["arch_str"]
        assert nb201.architecture(a.index).id == r["arch_str"]
    assert len({nb201.architecture(r["arch_str"]).index for r in nb201_records}) == len(nb201_records)


def test_nb201_sample_ids_round_trip(nb201):
    for a in nb201.sample(200, seed=5):
        assert nb201.architecture(a.id).index == a.index
        assert a.id.count("~") == 6 and a.id.count("+") == 2


def test_nb201_op_names_are_aliases_of_own_labels(nb201):
    sp = nflc.loads(ALIASED)
    choices = sp.cell_of["cell"].edges[0].choices
    assert {c.label: c.aliases for c in choices} == {
        "zero": ["none"], "skip": ["identity", "skip_connect"], "conv1": ["nor_conv_1x1"],
        "conv3": ["nor_conv_3x3"], "pool": ["avg_pool_3x3"]}
    for b in nb201.sample(150, seed=3):
        a = sp.architecture(b.id)  # NB201's names in, the space's own labels out
        assert a.id == re.sub(r"[a-z_0-9]+(?=~)", lambda mt: TO_LABEL[mt.group(0)], b.id)
        assert sp.architecture(a.id).index == a.index == b.index
        assert a.params == b.params  # the same network
    mixed = "|nor_conv_3x3~0|+|skip~0|none~1|+|pool~0|conv1~1|skip_connect~2|"
    assert sp.architecture(mixed).id == "|conv3~0|+|skip~0|zero~1|+|pool~0|conv1~1|skip~2|"
    a = sp.architecture(mixed)
    assert sum(p.numel() for p in a.to_module().parameters()) == a.params


# ---------------------------------------------------------------- errors
def _error(space, ident) -> nflc.SpaceError:
    with pytest.raises(nflc.SpaceError) as e:
        space.architecture(ident)
    return e.value


def test_unknown_ids_name_the_expected_format(h3):
    e = _error(h3, "garbage")
    assert "'garbage' is not an id of cell 'cell': expected 3 groups '|op~src|...|'" in str(e)
    assert "|zero~0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|" in e.render()  # an example id as the hint
    e = _error(h3, "|linear~0|+|linear~0|linear~1|")
    assert "expected 3 groups" in str(e)
    e = _error(h3, "|linaer~0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|")
    assert "'linaer' is not a choice of edge 0 -> 1" in str(e) and "did you mean 'linear'" in e.render()
    e = _error(h3, "|linear0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|")
    assert "'linear0'" in str(e) and "'op~source'" in str(e)
    e = _error(h3, "|linear~0|+|zero~0|zero~1|+|zero~0|zero~1|")
    assert "no op for edge 2 -> 3" in str(e)
    assert "out of range" in str(_error(h3, 729)) and "0..728" in str(_error(h3, 729))
    assert "not float" in str(_error(h3, 1.5))


def test_an_nb201_id_given_to_nfl_h3(h3):
    e = _error(h3, "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert "'nor_conv_3x3' is not a choice of edge 0 -> 1 in cell 'cell'" in str(e)
    assert "the choices are zero, skip, linear" in e.render()


def test_an_h3_id_given_to_nb201(nb201):
    e = _error(nb201, "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|")
    assert "'linear' is not a choice of edge 0 -> 1" in str(e)
    e = _error(nb201, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|;|none~0|")
    assert "2 cell part(s)" in str(e) and "1 cell instance(s)" in str(e)


def test_wrong_input_shape_at_forward(h3, nb201):
    m = h3.architecture(5).to_module()
    with pytest.raises(ValueError, match=re.escape("nfl_h3 expects inputs of shape (N, 784), got (2, 28, 28) "
                                                   "(reshape the inputs)")):
        m(torch.randn(2, 28, 28))
    with pytest.raises(ValueError, match=re.escape("expects inputs of shape (N, 784), got (2, 100)")):
        m(torch.randn(2, 100))
    with pytest.raises(ValueError, match=re.escape("got (784,)")):
        m(torch.randn(784))
    with pytest.raises(ValueError, match="got list"):
        m([1.0] * 784)
    n = nb201.architecture(5).to_module()
    with pytest.raises(ValueError, match=re.escape("nb201 expects inputs of shape (N, 3, 32, 32), got (1, 32, 32, 3) "
                                                   "(the axes are in another order: permute them)")):
        n(torch.randn(1, 32, 32, 3))
    with pytest.raises(ValueError, match=re.escape("got (1, 3, 1024) (reshape the inputs)")):
        n(torch.randn(1, 3, 1024))
