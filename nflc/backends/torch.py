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
from typing import Any, Callable

import torch
from torch import nn

from nflc import ops
from nflc.backends import torch_ops
from nflc.ir.model import CellIR, CellStage, PrimStage, SpaceIR
from nflc.space.graph import NodeCellPlan


def build_prim(p: ops.Prim, shape: tuple[int, ...], skip_init: bool = False, drawn: set[int] | None = None) -> nn.Module:
    """The torch module of one bound primitive applied to inputs of ``shape``: its builder in
    :mod:`nflc.backends.torch_ops`, as :data:`nflc.ops.PRIMS` names it.

    With ``skip_init`` the linear and conv weights of an op whose ``init`` is ``"scheme"``
    are left uninitialised for the caller, who finds those layers added to ``drawn``."""
    scheme = ops.PRIMS[p.name].init == "scheme"
    m = torch_ops.builder(p.name)(p, shape, skip_init and scheme)
    if drawn is not None and scheme:
        drawn.update(id(sub) for sub in m.modules() if isinstance(sub, (nn.Linear, nn.Conv2d)))
    return m


def build_seq(prims: tuple[ops.Prim, ...], shape: tuple[int, ...], skip_init: bool = False,
              channels: int | None = None, drawn: set[int] | None = None) -> nn.Module:
    """The torch module of a sequence of primitives (``channels``: as for :func:`nflc.ops.seq_bind`)."""
    mods = []
    for p in ops.seq_bind(prims, shape, channels):
        if p.name != "skip":
            m = build_prim(p, shape, skip_init, drawn)
            if not isinstance(m, nn.Identity):  # factorized_reduce with nothing to do
                mods.append(m)
        shape = ops.PRIMS[p.name].shape(p, shape)
    return nn.Identity() if not mods else nn.Sequential(*mods)


class CellModule(nn.Module):
    """A cell DAG: node t = sum over its live edges (s -> t) of edge(node s)."""

    def __init__(self, n_nodes: int, edges: dict[tuple[int, int], nn.Module], node_channels: int | None = None,
                 edge_prims: dict[str, tuple[ops.Prim, ...]] | None = None):
        super().__init__()
        self.n_nodes = n_nodes
        self.node_channels = node_channels  # nodes 1..H's channels when they differ from the input's
        self.edge_prims = dict(edge_prims or {})  # "{s}_{t}" -> the primitives the edge was built from
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

    def __init__(self, plan: Any, ops_: dict[int, nn.Module], projections: dict[int, nn.Module]) -> None:
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
                 kinds: tuple[int, ...] | None = None, layer_prims: tuple[tuple[ops.Prim, ...] | None, ...] | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        # per layer: 0 an op, 1 a cell, 2 a two-input cell (it also takes the previous cell's input)
        self._kinds = kinds or (0,) * len(layers)
        # per layer: the primitives an op layer was built from (None: a cell)
        self.layer_prims = layer_prims or (None,) * len(layers)
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


def _he_normal(w: torch.Tensor, gain: float, fan_in: int, fan_out: int, g: torch.Generator) -> None:
    w.normal_(0.0, gain / math.sqrt(fan_in), generator=g)


def _he_uniform(w: torch.Tensor, gain: float, fan_in: int, fan_out: int, g: torch.Generator) -> None:
    bound = gain * math.sqrt(3.0 / fan_in)
    w.uniform_(-bound, bound, generator=g)


def _xavier_normal(w: torch.Tensor, gain: float, fan_in: int, fan_out: int, g: torch.Generator) -> None:
    w.normal_(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=g)


def _xavier_uniform(w: torch.Tensor, gain: float, fan_in: int, fan_out: int, g: torch.Generator) -> None:
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    w.uniform_(-bound, bound, generator=g)


def _torch_default(w: torch.Tensor, gain: float, fan_in: int, fan_out: int, g: torch.Generator) -> None:
    bound = 1.0 / math.sqrt(fan_in)  # nn.Linear / nn.Conv2d's own reset_parameters distribution
    w.uniform_(-bound, bound, generator=g)


# the weight draw of every init scheme (nflc.ir.evaluate.INIT_SCHEMES); biases start at zero,
# except under torch_default, which draws them as torch does, U(+-1/sqrt(fan_in))
INIT_SCHEMES: dict[str, Callable[[torch.Tensor, float, int, int, torch.Generator], None]] = {
    "he_normal": _he_normal, "he_uniform": _he_uniform, "xavier_normal": _xavier_normal,
    "xavier_uniform": _xavier_uniform, "torch_default": _torch_default}
DRAWS_BIAS = ("torch_default",)


def _init_weights(net: nn.Module, scheme: str, relu_after: set[int], seed: int, drawn: set[int]) -> None:
    """Initialise every layer in ``drawn`` (the linear and convolution layers of the ops
    whose ``init`` is ``"scheme"``) from its own generator (see the module docstring)."""
    draw = INIT_SCHEMES.get(scheme)
    for name, m in net.named_modules():
        if id(m) not in drawn:
            continue
        if draw is None:
            raise ValueError(f"unknown init scheme '{scheme}'")
        g = torch.Generator().manual_seed(_param_seed(seed, name))
        gain = math.sqrt(2.0) if id(m) in relu_after else 1.0
        w: torch.Tensor = m.weight
        fan_in = w[0].numel()
        fan_out = w.shape[0] * (w[0, 0].numel() if w.dim() > 2 else 1)
        with torch.no_grad():
            draw(w, gain, fan_in, fan_out, g)
            if m.bias is not None:
                if scheme in DRAWS_BIAS:
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


class _Build:
    """One network under construction: its layers (each with the primitives it was built
    from, None for a cell), and the layers to initialise (``drawn``) and their gains."""

    def __init__(self, ir: SpaceIR, choices: dict[str, tuple[int, ...]], dead: dict[str, set[int]] | None):
        self.ir, self.choices, self.dead = ir, choices, dead or {}
        self.layers: list[nn.Module] = []
        self.layer_prims: list[tuple[ops.Prim, ...] | None] = []
        self.kinds: list[int] = []  # per layer: 0 an op, 1 a cell, 2 a two-input cell
        self.relu_after: set[int] = set()
        self.drawn: set[int] = set()

    def seq(self, prims: tuple[ops.Prim, ...], shape: tuple[int, ...], channels: int | None = None) -> nn.Module:
        m = build_seq(prims, shape, skip_init=True, channels=channels, drawn=self.drawn)
        for sub in m.modules():
            if isinstance(sub, nn.Sequential):
                _mark_relu_followers(sub, self.relu_after)
        return m

    def add(self, m: nn.Module, kind: int, prims: tuple[ops.Prim, ...] | None = None) -> None:
        self.layers.append(m)
        self.kinds.append(kind)
        self.layer_prims.append(prims)

    def prim_stage(self, st: PrimStage, next_relu: bool) -> None:
        p = st.prim.to_prim()
        m = build_prim(p, tuple(st.shape_in), skip_init=True, drawn=self.drawn) if p.name != "skip" else nn.Identity()
        _mark_relu_followers(m, self.relu_after, next_relu)
        self.add(m, 0, (p,))

    def node_cell(self, st: CellStage, cell: CellIR) -> None:
        shape = tuple(st.shape_in)
        plan = NodeCellPlan(cell, self.choices[st.instance], shape, st.shape_out[0])
        node_mods = {t: self.seq(prims, (plan.channels[t], *shape[1:])) for t, prims in plan.ops.items()}
        proj_mods = {t: self.seq(prims, shape) for t, prims in plan.projection.items()}
        self.add(NodeCellModule(plan, node_mods, proj_mods), 1)

    def edge_cell(self, st: CellStage, cell: CellIR) -> None:
        shape = tuple(st.shape_in)
        skip = self.dead.get(st.instance, set())
        edges, edge_prims = {}, {}
        edge_shapes = cell.edge_shapes(shape)
        for j, (e, c) in enumerate(zip(cell.edges, self.choices[st.instance], strict=False)):
            prims = e.choices[c].prim_tuple()
            if j in skip or any(p.name == "zero" for p in prims):
                continue
            edges[(e.src, e.dst)] = self.seq(prims, edge_shapes[j], cell.channels)
            edge_prims[f"{e.src}_{e.dst}"] = prims
        if cell.output == "concat":
            pre = None
            if cell.inputs == 2:
                assert st.shape_prev is not None
                pre = [self.seq(tuple(q.to_prim() for q in prims), tuple(at))
                       for prims, at in zip(st.preprocess, (st.shape_prev, shape), strict=True)]
            self.add(ConcatCellModule(cell.nodes, cell.inputs, edges, pre, tuple(cell.node_shapes(shape)[-1])),
                     2 if cell.inputs == 2 else 1)
            return
        out_c = st.shape_out[0]
        self.add(CellModule(cell.nodes, edges, out_c if out_c != st.shape_in[0] else None, edge_prims), 1)


def build_network(ir: SpaceIR, choices: dict[str, tuple[int, ...]], dead: dict[str, set[int]] | None,
                  arch_id: str) -> tuple[Network, set[int], set[int]]:
    """The network of ``choices`` in ``ir``, its weights not yet drawn; with the layers to
    draw (``drawn``) and those among them a ReLU follows (``relu_after``), by ``id``."""
    b = _Build(ir, choices, dead)
    for i, st in enumerate(ir.network):
        if st.kind == "prim":
            nxt = ir.network[i + 1] if i + 1 < len(ir.network) else None
            b.prim_stage(st, nxt is not None and nxt.kind == "prim" and nxt.prim.name == "relu")
        elif ir.cells[st.cell].is_node_cell:
            b.node_cell(st, ir.cells[st.cell])
        else:
            b.edge_cell(st, ir.cells[st.cell])
    net = Network(b.layers, ir.input_shape, arch_id, ir.name, tuple(b.kinds), tuple(b.layer_prims))
    return net, b.relu_after, b.drawn


def compile_network(ir: SpaceIR, choices: dict[str, tuple[int, ...]], dead: dict[str, set[int]] | None, arch_id: str,
                    seed: int = 0) -> Network:
    """The torch module of the architecture with these cell ``choices`` in ``ir`` (its
    options applied), ``dead`` edges left out, initialised from ``seed`` by ``ir.init``
    (what :meth:`nflc.space.Architecture.to_module` builds)."""
    with torch.random.fork_rng(devices=[]):  # small layers still draw torch's default init
        net, relu_after, drawn = build_network(ir, choices, dead, arch_id)
    _init_weights(net, ir.init, relu_after, seed, drawn)
    return net
