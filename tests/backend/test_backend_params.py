"""Exactness: compiled modules have exactly the parameters the cost model counts, and
NAS-Bench-201 networks have NB201's structure and published parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nflc.backends.torch import CellModule, build_prim
from nflc.backends.torch_ops import GlobalAvgPool, ResBlock
from nflc import ops


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- nfl_h3
def test_h3_every_module_has_exactly_arch_params(h3_compiled):
    assert len(h3_compiled) == 729
    bad = [(a.id, n_params(m), a.params) for a, m in h3_compiled if n_params(m) != a.params]
    assert not bad, bad[:5]


def test_h3_network_skeleton(h3_compiled):
    """docs/CONTRACTS.md: [Flatten, Linear(d, m), ReLU, CellModule, Linear(m, classes)], no biases."""
    for _a, m in h3_compiled[::50]:
        kinds = [type(layer) for layer in m.layers]
        assert kinds == [nn.Flatten, nn.Linear, nn.ReLU, CellModule, nn.Linear]
        stem, readout = m.layers[1], m.layers[4]
        assert (stem.in_features, stem.out_features, stem.bias) == (784, 256, None)
        assert (readout.in_features, readout.out_features, readout.bias) == (256, 10, None)


def test_h3_cell_edges_follow_the_graph(h3_compiled):
    """Zero edges create no module and no parameters; skip = Identity; linear = Linear+ReLU."""
    for a, m in h3_compiled:
        g = a.graph
        cell = m.layers[3]
        nonzero = {f"{s}_{t}" for s, t, d in g.edges(data=True) if d["kind"] != "zero"}
        assert set(cell.edges.keys()) == nonzero, a.id
        for s, t, d in g.edges(data=True):
            key = f"{s}_{t}"
            if d["kind"] == "zero":
                continue
            edge = cell.edges[key]
            assert n_params(edge) == d["params"], (a.id, key)
            if d["kind"] == "skip":
                assert isinstance(edge, nn.Identity)
            else:
                assert d["kind"] == "linear_relu"
                assert [type(x) for x in edge] == [nn.Linear, nn.ReLU]
                assert edge[0].bias is None and edge[0].weight.shape == (256, 256)


def test_h3_empty_cell_outputs_zero(h3):
    """A node with no incoming edge is zeros: with X3 unreachable the network outputs 0."""
    a = h3.architecture("|linear~0|+|linear~0|linear~1|+|zero~0|zero~1|zero~2|")
    m = a.to_module()
    assert n_params(m) == a.params == 784 * 256 + 256 * 256 * 3 + 256 * 10
    assert torch.equal(m(torch.randn(3, 784)), torch.zeros(3, 10))


# ---------------------------------------------------------------- nb201
def test_nb201_sample_has_exactly_arch_params(nb201):
    for a in nb201.sample(50, seed=201):
        assert n_params(a.to_module(seed=1)) == a.params, a.id


def test_nb201_data_file_params_match_nasbench201(nb201_compiled):
    """Every architecture of the shared file: module count == arch.params == NB201's count."""
    assert len(nb201_compiled) == 362
    for r, a, m in nb201_compiled:
        n = n_params(m)
        assert n == a.params, r["arch_str"]
        assert f"{n / 1e6:.6f}" == f"{r['params']:.6f}", (r["arch_str"], n, r["params"])


def test_nb201_prune_counts_and_dead_edges(nb201, nb201_compiled):
    """With prune the module count is arch.cost(prune=True).params.

    138 of the 362 architectures have a dead edge (a non-zero edge on no input-to-output
    path); in 95 of them a dead edge carries parameters (a conv), so pruning changes their
    parameter count: the issue's "95 have one" counts those. NB201 itself builds them all.
    """
    pruned_space = nb201.with_options(prune=True)
    any_dead = param_dead = 0
    for r, a, m in nb201_compiled:
        dead = a.dead_edges()["cell"]
        full, pruned = a.cost(prune=False).params, a.cost(prune=True).params
        assert full == a.params == n_params(m)  # dead edges are kept by default
        if not dead:
            assert pruned == full
            continue
        any_dead += 1
        param_dead += pruned != full
        pm = pruned_space.architecture(a.index).to_module(seed=0)
        assert n_params(pm) == pruned == pruned_space.architecture(a.index).params, r["arch_str"]
        dead_keys = {f"{e.src}_{e.dst}" for i, e in enumerate(nb201.cell_of["cell"].edges) if i in dead}
        for layer, player in zip(m.layers, pm.layers, strict=True):
            if isinstance(layer, CellModule):
                assert set(player.edges.keys()) == set(layer.edges.keys()) - dead_keys
    assert any_dead == 138
    assert param_dead == 95


NB201_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _conv(m: nn.Module) -> tuple:
    assert isinstance(m, nn.Conv2d)
    return (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.bias is not None)


def _bn(m: nn.Module) -> tuple:
    assert isinstance(m, nn.BatchNorm2d) and m.affine and m.track_running_stats
    return ("bn", m.num_features)


def test_nb201_reference_structure(nb201):
    """NB201's TinyNetwork: stem conv3x3(16)+BN, 5 cells, ResNet basic block to 32, 5 cells,
    basic block to 64, 5 cells, then BN-ReLU-global pool-linear(64, 10) (with bias)."""
    m = nb201.architecture(NB201_BEST).to_module()
    kinds = [type(x).__name__ for x in m.layers]
    assert kinds == (["Conv2d", "BatchNorm2d"] + ["CellModule"] * 5 + ["ResBlock"] + ["CellModule"] * 5
                     + ["ResBlock"] + ["CellModule"] * 5 + ["BatchNorm2d", "ReLU", "GlobalAvgPool", "Linear"])
    assert _conv(m.layers[0]) == (3, 16, (3, 3), (1, 1), (1, 1), False)
    assert _bn(m.layers[1]) == ("bn", 16)
    cells = [x for x in m.layers if isinstance(x, CellModule)]
    for i, cell in enumerate(cells):
        c = 16 * 2 ** (i // 5)
        assert list(cell.edges.keys()) == ["0_1", "0_2", "1_2", "0_3", "1_3", "2_3"]
        assert isinstance(cell.edges["0_3"], nn.Identity)  # skip_connect
        for key in ("0_1", "0_2", "1_2", "1_3", "2_3"):  # nor_conv_3x3 = ReLU-Conv-BN
            relu, conv, bn = cell.edges[key]
            assert isinstance(relu, nn.ReLU)
            assert _conv(conv) == (c, c, (3, 3), (1, 1), (1, 1), False)
            assert _bn(bn) == ("bn", c)
    for block, (cin, cout) in zip([x for x in m.layers if isinstance(x, ResBlock)], [(16, 32), (32, 64)], strict=True):
        assert [type(x) for x in block.conv_a] == [nn.ReLU, nn.Conv2d, nn.BatchNorm2d]
        assert _conv(block.conv_a[1]) == (cin, cout, (3, 3), (2, 2), (1, 1), False)
        assert _conv(block.conv_b[1]) == (cout, cout, (3, 3), (1, 1), (1, 1), False)
        pool, conv = block.downsample
        assert isinstance(pool, nn.AvgPool2d) and (pool.kernel_size, pool.stride, pool.padding) == (2, 2, 0)
        assert _conv(conv) == (cin, cout, (1, 1), (1, 1), (0, 0), False)
    assert _bn(m.layers[-4]) == ("bn", 64)
    head = m.layers[-1]
    assert (head.in_features, head.out_features, head.bias is not None) == (64, 10, True)

    shapes = []
    hooks = [x.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape[1:]))) for x in m.layers]
    y = m(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert y.shape == (2, 10)
    assert shapes[6] == (16, 32, 32) and shapes[12] == (32, 16, 16) and shapes[18] == (64, 8, 8)
    assert shapes[-2] == (64,)


def test_nb201_cell_ops(nb201):
    """none -> nothing, skip_connect -> Identity, nor_conv_kxk -> ReLU-Conv(k)-BN,
    avg_pool_3x3 -> AvgPool2d(3, 1, 1, count_include_pad=False) (NB201's POOLING)."""
    a = nb201.architecture("|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    cell = a.to_module().layers[2]
    assert list(cell.edges.keys()) == ["0_1", "0_2", "0_3", "1_3"]
    assert _conv(cell.edges["0_1"][1]) == (16, 16, (1, 1), (1, 1), (0, 0), False)
    (pool,) = cell.edges["0_2"]  # a one-primitive op is a one-module Sequential
    assert isinstance(pool, nn.AvgPool2d)
    assert (pool.kernel_size, pool.stride, pool.padding, pool.count_include_pad) == (3, 1, 1, False)
    assert isinstance(cell.edges["0_3"], nn.Identity)


# ---------------------------------------------------------------- every primitive, composed ops
@pytest.mark.parametrize("name", [n for n in ops.PRIMS if n != "zero"])
def test_every_primitive_has_a_builder_with_exact_params(name):
    shape = (4,) if name == "linear" else (4, 6, 6)
    spec = ops.PRIMS[name]
    args = {}
    for p in spec.params:
        if p.default == "required":
            args[p.name] = 3 if p.name == "k" else 5
        elif p.default == "space_bias":
            args[p.name] = True
        elif p.default == "same_padding":
            args[p.name] = 1
        elif p.default != "in_channels":
            args[p.name] = p.default
    prim = ops.bind(ops.Prim(name, tuple(args.items())), shape)
    m = build_prim(prim, shape)
    assert n_params(m) == ops.prim_params(prim, shape)
    if name in ("batchnorm",):
        m.train()
    y = m(torch.randn(2, *shape))
    assert tuple(y.shape[1:]) == spec.shape(prim, shape)


CUSTOM = """
op mlp2(k) = linear(k) >> relu >> linear
op block = conv2d(3) >> batchnorm >> relu
space custom {
    input [2, 8, 8]
    classes 3
    width 4
    cell {
        nodes 3
        edge * : zero | skip | block | max_pool(3) as mp | conv2d(3) >> conv2d(1) as cc | resblock(width) as rb
    }
    network = conv2d(3, width) >> cell >> max_pool(2, stride=2) >> flatten >> mlp2(16) >> relu >> linear(classes)
}
"""


def test_user_composed_ops():
    import nflc

    sp = nflc.loads(CUSTOM)
    assert sp.count() == 216
    for a in sp:
        m = a.to_module(seed=a.index)
        assert n_params(m) == a.params, a.id
        assert m(torch.randn(2, 2, 8, 8)).shape == (2, 3)
    a = sp.architecture("|block~0|+|cc~0|rb~1|")
    m = a.to_module()
    cell = m.layers[1]
    assert [type(x) for x in cell.edges["0_1"]] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert [tuple(x.kernel_size) for x in cell.edges["0_2"]] == [(3, 3), (1, 1)]
    assert isinstance(cell.edges["1_2"][0], ResBlock) and cell.edges["1_2"][0].downsample is None
    assert [type(x) for x in m.layers[3:]] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert m.layers[4].out_features == 16 and m.layers[6].out_features == 16
    # default padding (k - 1) // 2: the stride-2 pool halves 8 x 8 as nn.MaxPool2d(2, 2) does
    assert m.layers[2].padding == 0 and m.layers[4].in_features == 4 * 4 * 4


@pytest.mark.parametrize("op, size", [("conv2d(3)", 8), ("conv2d(2)", 7), ("max_pool(3)", 8), ("avg_pool(2)", 7),
                                      ("max_pool(2, stride=2)", 4), ("max_pool(3, stride=2)", 4),
                                      ("conv2d(5, stride=2)", 4), ("conv2d(4, stride=2)", 4)])
def test_default_padding_gives_the_conventional_sizes(op, size):
    # size = floor((8 + 2p - k) / stride) + 1 with p = (k - 1) // 2, worked by hand
    import nflc

    sp = nflc.loads(f"space s {{ input [2, 8, 8]\n classes 3\n network = {op} >> flatten >> linear(classes) }}")
    a = next(iter(sp))
    m, x = a.to_module(), torch.randn(1, 2, 8, 8)
    assert m.layers[0](x).shape[-2:] == (size, size)
    assert m(x).shape == (1, 3)  # the IR's shape inference agrees with torch's (the readout fits)


def test_global_avg_pool():
    x = torch.randn(2, 3, 4, 5)
    assert torch.allclose(GlobalAvgPool()(x), x.mean(dim=(2, 3)))
