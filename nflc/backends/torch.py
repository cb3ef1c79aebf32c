"""IR -> torch.nn.Module: every architecture compiles to exactly the network it describes.

A cell runs its DAG in node order, each node the sum of its incoming edges; ``zero``
edges create neither computation nor parameters; with ``prune`` dead edges are left out
too (and ``arch.params`` follows the same choice). Initialisation is seeded: the same seed
gives the same weights. He-normal (the default, the paper's) uses gain sqrt(2) for a
layer followed by a ReLU and 1 otherwise, so a ``linear >> relu`` edge computes
``sqrt(2) relu(W x / sqrt(m))`` with ``W ~ N(0, 1)`` and the readout ``v . x / sqrt(m)``,
exactly docs/THEORY.md section 1.

Every weight draws from its own generator, seeded by ``(seed, the parameter's module
path)``: pruning, or turning biases on, leaves the other weights as they were, so a pruned
module computes the same function as the unpruned one with the same seed. Compiling leaves
torch's global random state as it was. ``torch_default`` draws PyTorch's default
distribution (``U(+-1/sqrt(fan_in))`` for weights and biases) from the same generators.
"""

from __future__ import annotations

import hashlib
import math
import torch
from torch import nn

from nflc import ops
from nflc.ir.model import SpaceIR
from nflc.space.graph import NodeCellPlan


class GlobalAvgPool(nn.Module):
    """[N, C, H, W] -> [N, C]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class ResBlock(nn.Module):
    """NAS-Bench-201's ResNet basic block (same submodules, so parameter counts agree)."""

    def __init__(self, c_in: int, c_out: int, stride: int, skip_init: bool = False):
        super().__init__()
        conv = lambda *a: _weighted(nn.Conv2d, skip_init, *a, bias=False)  # noqa: E731
        self.conv_a = nn.Sequential(nn.ReLU(), conv(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out))
        self.conv_b = nn.Sequential(nn.ReLU(), conv(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out))
        if stride == 2:
            self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), conv(c_in, c_out, 1, 1, 0))
        elif c_in != c_out:
            self.downsample = nn.Sequential(nn.ReLU(), conv(c_in, c_out, 1, 1, 0), nn.BatchNorm2d(c_out))
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


class FactorizedReduce(nn.Module):
    """NAS-Bench-201's (stride 1: conv1x1 >> bn) and DARTS's (stride 2: relu, two 1x1
    stride-2 convolutions, the second on the map shifted by one pixel, concatenated, bn)."""

    def __init__(self, c_in: int, c_out: int, stride: int, skip_init: bool = False, affine: bool = True):
        super().__init__()
        self.stride = stride
        conv = lambda o: _weighted(nn.Conv2d, skip_init, c_in, o, 1, stride, 0, bias=False)  # noqa: E731
        if stride == 1:
            self.conv = conv(c_out)
        else:
            self.relu = nn.ReLU()
            self.conv_1 = conv(c_out // 2)
            self.conv_2 = conv(c_out - c_out // 2)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.bn(self.conv(x))
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def darts_conv(name: str, c_in: int, c_out: int, k: int, stride: int, dilation: int = 1,
               skip_init: bool = False, affine: bool = True) -> nn.Sequential:
    """DARTS's SepConv and DilConv (its ``op`` Sequential, submodules in DARTS's order, so a
    DARTS state dict's ``op.N`` entries map one to one). No convolution has a bias."""
    conv = lambda i, o, kk, st, pad, dil, groups: _weighted(  # noqa: E731
        nn.Conv2d, skip_init, i, o, kk, st, pad, dilation=dil, groups=groups, bias=False)
    pad = dilation * (k - 1) // 2
    if name == "dil_conv":
        return nn.Sequential(nn.ReLU(), conv(c_in, c_in, k, stride, pad, dilation, c_in), conv(c_in, c_out, 1, 1, 0, 1, 1),
                             nn.BatchNorm2d(c_out, affine=affine))
    return nn.Sequential(nn.ReLU(), conv(c_in, c_in, k, stride, pad, 1, c_in), conv(c_in, c_in, 1, 1, 0, 1, 1),
                         nn.BatchNorm2d(c_in, affine=affine), nn.ReLU(), conv(c_in, c_in, k, 1, pad, 1, c_in),
                         conv(c_in, c_out, 1, 1, 0, 1, 1), nn.BatchNorm2d(c_out, affine=affine))


_SKIP_DRAW_NUMEL = 8192  # below this, building on "meta" costs more than torch's own draw


def _weighted(cls: type, skip_init: bool, *args, **kwargs) -> nn.Module:
    """A Linear(in, out) or Conv2d(in, out, k, ...). With ``skip_init`` the caller
    initialises the weights, so large layers skip torch's default draw (allocated, not drawn)."""
    numel = args[0] * args[1] * (args[2] ** 2 if cls is nn.Conv2d else 1)
    if not skip_init or numel < _SKIP_DRAW_NUMEL:
        return cls(*args, **kwargs)
    m = cls(*args, device="meta", **kwargs)
    m.weight = nn.Parameter(torch.empty(m.weight.shape))
    if m.bias is not None:
        m.bias = nn.Parameter(torch.empty(m.bias.shape))
    return m


def build_prim(p: ops.Prim, shape: tuple[int, ...], skip_init: bool = False) -> nn.Module:
    """The torch module of one bound primitive applied to inputs of ``shape``.

    With ``skip_init`` linear and conv weights are left uninitialised for the caller."""
    a = dict(p.args)
    if p.name == "skip":
        return nn.Identity()
    if p.name == "relu":
        return nn.ReLU()
    if p.name == "linear":
        return _weighted(nn.Linear, skip_init, shape[0], a["out"], bias=a["bias"])
    if p.name == "conv2d":
        return _weighted(nn.Conv2d, skip_init, shape[0], a["out"], a["k"], a["stride"], a["padding"], bias=a["bias"])
    if p.name == "batchnorm":
        affine = bool(p.arg("affine"))
        return nn.BatchNorm2d(shape[0], affine=affine) if len(shape) == 3 else nn.BatchNorm1d(shape[0], affine=affine)
    if p.name == "avg_pool":
        return nn.AvgPool2d(a["k"], a["stride"], a["padding"], count_include_pad=False)
    if p.name == "max_pool":
        return nn.MaxPool2d(a["k"], a["stride"], a["padding"])
    if p.name == "flatten":
        return nn.Flatten()
    if p.name == "global_avg_pool":
        return GlobalAvgPool()
    if p.name == "resblock":
        return ResBlock(shape[0], a["out"], a["stride"], skip_init)
    if p.name in ("sep_conv", "dil_conv"):
        return darts_conv(p.name, shape[0], a["out"], a["k"], a["stride"], a.get("dilation", 1), skip_init,
                          bool(p.arg("affine")))
    if p.name == "factorized_reduce":
        if a["stride"] == 1 and a["out"] == shape[0]:
            return nn.Identity()
        return FactorizedReduce(shape[0], a["out"], a["stride"], skip_init, bool(p.arg("affine")))
    raise NotImplementedError(f"no torch builder for primitive '{p.name}'")  # every PRIMS entry has one (tested)


def build_seq(prims: tuple[ops.Prim, ...], shape: tuple[int, ...], skip_init: bool = False,
              channels: int | None = None) -> nn.Module:
    mods = []
    for p in ops.seq_bind(prims, shape, channels):
        if p.name != "skip":
            m = build_prim(p, shape, skip_init)
            if not isinstance(m, nn.Identity):  # factorized_reduce with nothing to do
                mods.append(m)
        shape = ops.PRIMS[p.name].shape(p, shape)
    return nn.Identity() if not mods else nn.Sequential(*mods)


class CellModule(nn.Module):
    """A cell DAG: node t = sum over its live edges (s -> t) of edge(node s)."""

    def __init__(self, n_nodes: int, edges: dict[tuple[int, int], nn.Module], node_channels: int | None = None):
        super().__init__()
        self.n_nodes = n_nodes
        self.node_channels = node_channels  # nodes 1..H's channels when they differ from the input's
        self.edges = nn.ModuleDict({f"{s}_{t}": m for (s, t), m in sorted(edges.items(), key=lambda e: (e[0][1], e[0][0]))})
        # the inputs (source node, edge key) of nodes 1 .. H, in order
        self._plan = tuple(tuple((s, f"{s}_{t}") for (s, tt) in sorted(edges) if tt == t) for t in range(1, n_nodes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Edges are looked up by key on every call (so replacing an edge module works), but
        # straight in the dict: ModuleDict.__getitem__ costs about a microsecond per edge.
        # No name holds an edge's output past its addition: keeping it alive one edge longer
        # (``y = edge(...); total = total + y``) made NB201 networks ~5% slower on CPU
        # (allocator churn), measured by benchmarks/bench_backend.py.
        edges = self.edges._modules
        nodes = [x]
        for incoming in self._plan:
            total = None
            for s, key in incoming:
                total = edges[key](nodes[s]) if total is None else total + edges[key](nodes[s])
            if total is None:
                total = torch.zeros_like(x) if self.node_channels is None else \
                    x.new_zeros((x.shape[0], self.node_channels, *x.shape[2:]))
            nodes.append(total)
        return nodes[-1]


class ConcatCellModule(nn.Module):
    """A cell whose output concatenates its intermediate nodes (DARTS's ``Cell``).

    With two inputs, ``forward(s0, s1)``: ``s0`` (the previous cell's input) and ``s1`` (this
    cell's input) are preprocessed to the cell's channels (``preprocess0``/``preprocess1``,
    DARTS's names); with one, ``forward(x)``. Node t sums its picked edges applied to their
    sources; the output concatenates the intermediate nodes in order.
    """

    def __init__(self, n_nodes: int, inputs: int, edges: dict[tuple[int, int], nn.Module],
                 preprocess: list[nn.Module] | None = None, node_shape: tuple[int, ...] | None = None):
        super().__init__()
        if preprocess:
            self.preprocess0, self.preprocess1 = preprocess
        self.n_inputs = inputs
        self.node_shape = node_shape  # a node no edge reaches is zero of this shape
        self.edges = nn.ModuleDict({f"{s}_{t}": m for (s, t), m in sorted(edges.items(), key=lambda e: (e[0][1], e[0][0]))})
        self._plan = tuple(tuple((s, f"{s}_{t}") for (s, tt) in sorted(edges) if tt == t) for t in range(inputs, n_nodes))

    def forward(self, *states: torch.Tensor) -> torch.Tensor:
        nodes = [self.preprocess0(states[0]), self.preprocess1(states[1])] if self.n_inputs == 2 else [states[0]]
        edges = self.edges._modules
        for incoming in self._plan:
            total = None
            for s, key in incoming:
                total = edges[key](nodes[s]) if total is None else total + edges[key](nodes[s])
            if total is None:
                assert self.node_shape is not None
                total = nodes[0].new_zeros((nodes[0].shape[0], *self.node_shape))
            nodes.append(total)
        return torch.cat(nodes[self.n_inputs:], dim=1)


class NodeCellModule(nn.Module):
    """A node cell (NAS-Bench-101's ``Cell``) of one choice, built from its pruned graph.

    Node t sums its inputs: a live node's output cut to t's channels (the first ones) and,
    for an edge from X0, the projection of the cell's input; then applies its op. The
    output concatenates the nodes feeding it (in order) and adds the projected input when
    X0 feeds it. ``ops`` then ``projections`` keep NAS-Bench-101's parameter order
    (``vertex_op``, then ``input_op``), so its weights load entry by entry.
    """

    def __init__(self, plan, ops_: dict[int, nn.Module], projections: dict[int, nn.Module]):
        super().__init__()
        self.ops = nn.ModuleList([ops_[t] for t in plan.nodes])
        self.projections = nn.ModuleList([projections[t] for t in plan.projections])
        slot = {t: i for i, t in enumerate(plan.nodes)}
        proj = {t: i for i, t in enumerate(plan.projections)}
        h = plan.h
        # per live node: (op slot, projection slot or -1, [(input slot, channels to keep)])
        self._plan = tuple((slot[t], proj.get(t, -1), tuple((slot[s], plan.channels[t] if plan.channels[s] != plan.channels[t] else 0)
                                                       for s in plan.inputs[t] if s))
                           for t in plan.nodes)
        self._concat = tuple(slot[s] for s in plan.inputs[h] if s)
        self._out_proj = proj.get(h, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for op, p, inputs in self._plan:
            total = None
            for s, c in inputs:
                y = outs[s]
                y = y[:, :c] if c else y  # NAS-Bench-101's `truncate`: static, so torch.fx traces it
                total = y if total is None else total + y
            if p >= 0:
                y = self.projections[p](x)
                total = y if total is None else total + y
            outs.append(self.ops[op](total))
        if not self._concat:
            return self.projections[self._out_proj](x)
        out = outs[self._concat[0]] if len(self._concat) == 1 else torch.cat([outs[s] for s in self._concat], 1)
        if self._out_proj >= 0:
            out = out + self.projections[self._out_proj](x)
        return out


def _check_input_shape(net: "Network", args: tuple) -> None:
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != net.input_shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        fix = ""
        if isinstance(x, torch.Tensor) and x.dim() > 0 and math.prod(x.shape[1:]) == math.prod(net.input_shape):
            permuted = len(net.input_shape) > 1 and sorted(x.shape[1:]) == sorted(net.input_shape)
            fix = " (the axes are in another order: permute them)" if permuted else " (reshape the inputs)"
        raise ValueError(f"{net.space} expects inputs of shape (N, {', '.join(map(str, net.input_shape))}), got {got}"
                         + fix)


class Network(nn.Module):
    """The compiled network: ``layers`` run in sequence (docs/CONTRACTS.md)."""

    def __init__(self, layers: list[nn.Module], input_shape: list[int], arch_id: str, space: str,
                 kinds: tuple[int, ...] | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        # per layer: 0 an op, 1 a cell, 2 a two-input cell (it also takes the previous cell's input)
        self._kinds = kinds or (0,) * len(layers)
        self.input_shape = tuple(input_shape)
        self.arch_id = arch_id
        self.space = space
        # a pre-hook, not code in forward, so torch.fx traces a plain graph
        self.register_forward_pre_hook(_check_input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev = None  # the input of the last cell: a two-input cell's s0
        for layer, kind in zip(self.layers, self._kinds, strict=True):
            y = layer(x if prev is None else prev, x) if kind == 2 else layer(x)
            if kind:
                prev = x
            x = y
        return x


def _param_seed(seed: int, name: str) -> int:
    """A stable 63-bit seed for the module at path ``name`` (independent of hash randomisation)."""
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _init_weights(net: nn.Module, scheme: str, relu_after: set[int], seed: int) -> None:
    """Initialise every linear/conv layer from its own generator (see the module docstring)."""
    for name, m in net.named_modules():
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        g = torch.Generator().manual_seed(_param_seed(seed, name))
        gain = math.sqrt(2.0) if id(m) in relu_after else 1.0
        fan_in = m.weight[0].numel()
        fan_out = m.weight.shape[0] * (m.weight[0, 0].numel() if m.weight.dim() > 2 else 1)
        with torch.no_grad():
            if scheme == "he_normal":
                m.weight.normal_(0.0, gain / math.sqrt(fan_in), generator=g)
            elif scheme == "he_uniform":
                bound = gain * math.sqrt(3.0 / fan_in)
                m.weight.uniform_(-bound, bound, generator=g)
            elif scheme == "xavier_normal":
                m.weight.normal_(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=g)
            elif scheme == "xavier_uniform":
                bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
                m.weight.uniform_(-bound, bound, generator=g)
            elif scheme == "torch_default":  # nn.Linear / nn.Conv2d's own reset_parameters distribution
                bound = 1.0 / math.sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=g)
            else:
                raise ValueError(f"unknown init scheme '{scheme}'")
            if m.bias is not None:
                if scheme == "torch_default":
                    m.bias.uniform_(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in), generator=g)
                else:
                    m.bias.zero_()


def _mark_relu_followers(seq: nn.Module, relu_after: set[int], next_is_relu: bool = False) -> None:
    """Remember layers directly followed by a ReLU (they get He's sqrt(2) gain)."""
    mods = list(seq) if isinstance(seq, nn.Sequential) else [seq]
    for i, m in enumerate(mods):
        following = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, (nn.Linear, nn.Conv2d)) and (isinstance(following, nn.ReLU) or (following is None and next_is_relu)):
            relu_after.add(id(m))


def build_network(ir: SpaceIR, choices: dict[str, tuple[int, ...]], dead: dict[str, set[int]] | None,
                  arch_id: str) -> tuple[Network, set[int]]:
    layers: list[nn.Module] = []
    relu_after: set[int] = set()
    kinds: list[int] = []
    for i, st in enumerate(ir.network):
        shape = tuple(st.shape_in)
        next_relu = i + 1 < len(ir.network) and ir.network[i + 1].kind == "prim" and ir.network[i + 1].prim.name == "relu"
        if st.kind == "prim":
            p = st.prim.to_prim()
            m = build_prim(p, shape, skip_init=True) if p.name != "skip" else nn.Identity()
            _mark_relu_followers(m, relu_after, next_relu)
            layers.append(m)
            kinds.append(0)
            continue
        cell = ir.cells[st.cell]
        if cell.is_node_cell:
            plan = NodeCellPlan(cell, choices[st.instance], shape, st.shape_out[0])
            hw = shape[1:]
            node_mods = {t: build_seq(prims, (plan.channels[t], *hw), skip_init=True) for t, prims in plan.ops.items()}
            proj_mods = {t: build_seq(prims, shape, skip_init=True) for t, prims in plan.projection.items()}
            for m in [*node_mods.values(), *proj_mods.values()]:
                _mark_relu_followers(m, relu_after)
            layers.append(NodeCellModule(plan, node_mods, proj_mods))
            kinds.append(1)
            continue
        skip = dead.get(st.instance, set()) if dead else set()
        edges = {}
        edge_shapes = cell.edge_shapes(shape)
        kinds.append(2 if cell.inputs == 2 else 1)
        for j, (e, c) in enumerate(zip(cell.edges, choices[st.instance], strict=False)):
            prims = e.choices[c].prim_tuple()
            if j in skip or any(p.name == "zero" for p in prims):
                continue
            m = build_seq(prims, edge_shapes[j], skip_init=True, channels=cell.channels)
            for sub in m.modules():
                if isinstance(sub, nn.Sequential):
                    _mark_relu_followers(sub, relu_after)
            edges[(e.src, e.dst)] = m
        if cell.output == "concat":
            pre = None
            if cell.inputs == 2:
                assert st.shape_prev is not None
                pre = [build_seq(tuple(q.to_prim() for q in prims), tuple(at), skip_init=True)
                       for prims, at in zip(st.preprocess, (st.shape_prev, shape), strict=True)]
                for m in pre:
                    if isinstance(m, nn.Sequential):
                        _mark_relu_followers(m, relu_after)
            layers.append(ConcatCellModule(cell.nodes, cell.inputs, edges, pre, tuple(cell.node_shapes(shape)[-1])))
            continue
        out_c = st.shape_out[0]
        layers.append(CellModule(cell.nodes, edges, out_c if out_c != st.shape_in[0] else None))
    for m in layers:
        if isinstance(m, ResBlock):
            for seq in (m.conv_a, m.conv_b, m.downsample):
                if seq is not None:
                    _mark_relu_followers(seq, relu_after)
    return Network(layers, ir.input_shape, arch_id, ir.name, tuple(kinds)), relu_after


def compile_network(ir: SpaceIR, choices: dict[str, tuple[int, ...]], dead: dict[str, set[int]] | None, arch_id: str,
                    seed: int = 0) -> Network:
    """The torch module of the architecture with these cell ``choices`` in ``ir`` (its
    options applied), ``dead`` edges left out, initialised from ``seed`` by ``ir.init``
    (what :meth:`nflc.space.Architecture.to_module` builds)."""
    with torch.random.fork_rng(devices=[]):  # small layers still draw torch's default init
        net, relu_after = build_network(ir, choices, dead, arch_id)
    _init_weights(net, ir.init, relu_after, seed)
    return net
