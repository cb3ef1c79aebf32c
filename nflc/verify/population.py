"""Population training: many MLP-cell architectures trained together as one batched model.

The paper's family (docs/THEORY.md section 1, :func:`nflc.analysis.exact.exact_support`) is
``[flatten] >> linear(m) >> relu >> cell >> linear(classes)`` without biases, each cell
edge ``zero``, ``skip`` or ``linear >> relu``. :class:`Population` stacks ``A`` such
networks: the stems as one ``(A, d, m)`` tensor, the readouts as ``(A, m, classes)``,
and per cell edge the weights of the members whose edge is ``linear`` as one
``(A_e, m, m)`` tensor. Each edge's choice per member is held as two index sets (the
members where the edge is ``linear``, those where it is ``skip``; the rest are ``zero``):
a ``bmm`` over the linear members and an ``index_add`` of the skip members into the
target node. Index sets rather than 0/1 masks, because a mask multiplies (costing a
matmul for every zero edge) and lets a NaN of one member's dead node leak into its sum
(``0 * NaN``); with index sets every member computes exactly its own network, summing a
node's incoming edges in the same order as :class:`nflc.backends.torch.CellModule`.

Training is the sum over members of each member's mean minibatch loss, so each member's
gradient is exactly its own; plain SGD (no momentum, no weight decay) then updates each
member as :func:`nflc.verify.train.train` would. Every member draws its minibatches from
its own seeded generator, the same ``randperm`` per epoch as ``train``, so an architecture
gets the same numbers, to float round-off, whether it is trained alone (``run_training``) or in
any population, and the two paths can share one results database. A sweep seeds every
architecture's data order alike (:func:`nflc.verify.protocol.arch_seeds`: common random
numbers), so its members' orders coincide and the population draws one minibatch for all
(one gather, broadcast to every member's stem ``bmm``). Members with different orders
(other seeds) each get their own minibatch. Every product is a member's own ``bmm`` slice,
so a member's numbers do not depend on which others share its population or where it sits
in it: a member resumed in a group of another size repeats its run bit for bit on a CPU.
(Batched and single matmuls round differently, about 1e-7 per step, so a population and
``train`` agree to round-off; SGD can amplify that over many epochs when a ReLU flips at a
kink, as any change of BLAS or device would. On CUDA ``index_add_`` sums with atomics, so
repeated runs may differ in the last bits.)

Checkpoints are ordinary :class:`nflc.verify.train.Checkpoint` objects in the compiled
module's ``state_dict`` layout, so an architecture interrupted in a population resumes in
a population or alone, and vice versa. A member whose loss stops being finite is recorded
as diverged after that epoch (as ``train`` does) and leaves the population; the others go
on unaffected (no arithmetic mixes members).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from nflc import ops
from nflc.backends.torch import CellModule, Network
from nflc.data import Dataset
from nflc.verify.protocol import diverged as _diverged, sgd, sgd_state, shuffle_generator, stochastic_seed
from nflc.verify.train import (
    EVAL_CHUNK,
    Checkpoint,
    EpochRecord,
    TrainConfig,
    TrainResult,
    finished,
    resolve_device,
)

__all__ = [
    "MemberLayout",
    "Population",
    "PopulationCallback",
    "batching_pays",
    "forward_flops_per_row",
    "member_layout",
    "population_support",
    "train_population",
]

# float32 elements of one (members x rows x width) activation while evaluating
EVAL_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 27}


@dataclass(frozen=True)
class MemberLayout:
    """Where one compiled network keeps its weights (parameter names of its state_dict)."""

    flatten: bool
    in_dim: int
    width: int
    classes: int
    nodes: int
    stem: str  # parameter name of the stem weight, e.g. "layers.1.weight"
    readout: str
    edges: dict[tuple[int, int], tuple[str, Optional[str]]]  # (s, t) -> ("skip", None) | ("linear", weight name)

    @property
    def signature(self) -> tuple[int, int, int, int, bool]:
        """Networks with equal signatures can share a population."""
        return (self.in_dim, self.width, self.classes, self.nodes, self.flatten)


def _batched(prims: Sequence[ops.Prim]) -> bool:
    """Whether every op of ``prims`` declares that a population implements it (``ops.PRIMS``' ``batch``)."""
    return all(ops.PRIMS[p.name].batch for p in prims)


def _linear_shape(edge: nn.Module) -> tuple[int, int] | None:
    """(in, out) features of a ``linear >> relu`` edge's module (built as Linear >> ReLU)."""
    first = edge[0] if isinstance(edge, nn.Sequential) else None
    return (first.in_features, first.out_features) if isinstance(first, nn.Linear) else None


def member_layout(module: nn.Module) -> Union[MemberLayout, str]:
    """The layout of a compiled network of the population family, or why it is not one.

    The family is read from the ops the network was compiled from (``Network.layer_prims``,
    ``CellModule.edge_prims``) and the op table (:data:`nflc.ops.PRIMS`, ``batch``):
    ``[flatten] >> linear >> relu >> cell >> linear`` without biases, every cell edge
    ``skip`` or ``linear >> relu`` (zero edges build nothing)."""
    if not isinstance(module, Network):
        return f"not a compiled nflc network ({type(module).__name__})"
    layers, prims = list(module.layers), list(module.layer_prims)
    flatten = bool(prims) and prims[0] is not None and [p.name for p in prims[0]] == ["flatten"]
    if flatten:
        layers, prims = layers[1:], prims[1:]
    names = ["cell" if p is None else " >> ".join(q.name for q in p) for p in prims]
    if names != ["linear", "relu", "cell", "linear"] or not isinstance(layers[2], CellModule) \
            or not all(_batched(p) for p in prims if p is not None):
        return f"the network is {' >> '.join(type(m).__name__ for m in layers)}, not Linear >> ReLU >> CellModule >> Linear"
    stem, cell, readout = layers[0], layers[2], layers[3]
    if any(p[0].arg("bias") for p in (prims[0], prims[3]) if p is not None):
        return "the stem or readout has a bias"
    assert isinstance(stem, nn.Linear) and isinstance(readout, nn.Linear)  # what the linear op builds (nflc.backends.torch_ops)
    if list(module.buffers()):
        return "the network has buffers (e.g. batch norm)"
    offset = 1 if flatten else 0
    width, in_dim, classes = stem.out_features, stem.in_features, readout.out_features
    if readout.in_features != width:
        return f"the readout reads {readout.in_features} features, the stem makes {width}"
    if (flatten and math.prod(module.input_shape) != in_dim) or (not flatten and tuple(module.input_shape) != (in_dim,)):
        return f"input shape {module.input_shape} does not feed a stem of {in_dim} inputs"
    edges: dict[tuple[int, int], tuple[str, Optional[str]]] = {}
    for key, edge in cell.edges.items():
        s, t = (int(v) for v in key.split("_"))
        edge_prims = cell.edge_prims.get(key, ())
        kind = ops.seq_kind(edge_prims) if _batched(edge_prims) else None
        if kind == "skip":
            edges[(s, t)] = ("skip", None)
        elif kind == "linear_relu" and _linear_shape(edge) == (width, width):
            edges[(s, t)] = ("linear", f"layers.{offset + 2}.edges.{key}.0.weight")
        else:
            return f"cell edge {s} -> {t} is not zero, skip or linear >> relu without bias at width {width}"
    return MemberLayout(flatten=flatten, in_dim=in_dim, width=width, classes=classes, nodes=cell.n_nodes,
                        stem=f"layers.{offset}.weight", readout=f"layers.{offset + 3}.weight", edges=edges)


# On a CPU, batching pays only while one network's matmuls are small. Measured with
# benchmarks/bench_population.py on a 2-core CPU, 27 nfl_h3 networks on MNIST (mean 2.7e5
# forward matmul FLOPs per row at width 128, 6.7e5 at width 256) train batched vs alone
# 1.22x / 0.92x at widths 128 / 256 with 2 threads, 0.96x / 0.84x with 1; so width 128 is
# the crossover, and the threshold sits in it: width-128 networks with at most two linear
# edges (and all of width <= 96) are batched. On a GPU a population always pays.
CPU_BATCH_MAX_FLOPS = 3e5


def forward_flops_per_row(layout: MemberLayout) -> int:
    """Matmul FLOPs of one network's forward pass per input row."""
    linear = sum(kind == "linear" for kind, _ in layout.edges.values())
    return 2 * (layout.in_dim * layout.width + linear * layout.width**2 + layout.width * layout.classes)


def batching_pays(layout: MemberLayout, device: torch.device) -> bool:
    """Whether training this network in a population is expected to be faster than alone."""
    return device.type != "cpu" or forward_flops_per_row(layout) <= CPU_BATCH_MAX_FLOPS


def population_support(module: nn.Module) -> Optional[str]:
    """None when ``module`` can train in a population, else the reason it cannot."""
    layout = member_layout(module)
    return layout if isinstance(layout, str) else None


def _key(s: int, t: int) -> str:
    return f"{s}_{t}"


class Population(nn.Module):
    """``A`` networks of one family layout as one batched module.

    ``forward(x)`` takes ``x`` of shape ``(B, d)`` (one batch shared by every member) or
    ``(A, B, d)`` (a batch per member) and returns logits ``(A, B, classes)``.
    """

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__()
        if not modules:
            raise ValueError("a population needs at least one network")
        layouts = []
        for i, m in enumerate(modules):
            layout = member_layout(m)
            if isinstance(layout, str):
                raise ValueError(f"network {i} cannot join a population: {layout}")
            layouts.append(layout)
        signatures = {lay.signature for lay in layouts}
        if len(signatures) != 1:
            raise ValueError(f"networks of a population must share input, width, classes and cell size; got {sorted(signatures)}")
        first = layouts[0]
        self.layouts = layouts
        self.members = len(modules)
        self.in_dim, self.width, self.classes, self.nodes = first.in_dim, first.width, first.classes, first.nodes
        states = [m.state_dict() for m in modules]
        # Weights are kept input-major ((A, in, out), the transpose of nn.Linear's (out, in)),
        # so x @ W runs as bmm(x, W) and autograd hands back gradients in the parameter's own
        # layout (a transposed view would cost a strided copy of every gradient, every step).
        with torch.no_grad():
            # one stem per member, (A, in, width), applied by bmm even when every member reads
            # the same batch: a member's products then do not depend on its position in the
            # population or on the population's size (one wide matmul's column blocking did,
            # in the last bits), so a member resumed in another group repeats its numbers
            self.stem = nn.Parameter(torch.stack([st[lay.stem].detach().T for st, lay in zip(states, layouts, strict=True)]))
            self.readout = nn.Parameter(torch.stack([st[lay.readout].detach().T for st, lay in zip(states, layouts, strict=True)]))
        self.edge_weights = nn.ParameterDict()
        # per edge: members where it is linear (rows of its weight stack, in order) / skip
        self._linear: dict[tuple[int, int], list[int]] = {}
        self._skip: dict[tuple[int, int], list[int]] = {}
        for t in range(1, self.nodes):
            for s in range(t):
                lin = [i for i, lay in enumerate(layouts) if lay.edges.get((s, t), ("zero",))[0] == "linear"]
                skip = [i for i, lay in enumerate(layouts) if lay.edges.get((s, t), ("zero",))[0] == "skip"]
                self._linear[(s, t)], self._skip[(s, t)] = lin, skip
                if lin:
                    with torch.no_grad():
                        stacked = torch.stack([states[i][str(layouts[i].edges[(s, t)][1])].detach().T for i in lin])
                    self.edge_weights[_key(s, t)] = nn.Parameter(stacked)
                self.register_buffer(f"linear_{_key(s, t)}", torch.tensor(lin, dtype=torch.long), persistent=False)
                self.register_buffer(f"skip_{_key(s, t)}", torch.tensor(skip, dtype=torch.long), persistent=False)

    # -- computing -------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.members
        if x.dim() == 2:  # one batch for every member (a stride-0 view, not a copy)
            h = F.relu(torch.bmm(x.unsqueeze(0).expand(a, *x.shape), self.stem))
        elif x.dim() == 3 and x.shape[0] == a:  # a batch per member
            h = F.relu(torch.bmm(x, self.stem))
        else:
            raise ValueError(f"population of {a} expects inputs (B, {self.in_dim}) or ({a}, B, {self.in_dim}), got {tuple(x.shape)}")
        nodes = [h]
        for t in range(1, self.nodes):
            total = nodes[0].new_zeros(nodes[0].shape)
            # in place (autograd allows it: index_add needs no saved input), ascending sources
            # as in CellModule, so every member sums its incoming edges in the same order
            for s in range(t):
                key = _key(s, t)
                if self._skip[(s, t)]:
                    idx = getattr(self, f"skip_{key}")
                    total.index_add_(0, idx, nodes[s].index_select(0, idx))
                if self._linear[(s, t)]:
                    idx = getattr(self, f"linear_{key}")
                    y = F.relu(torch.bmm(nodes[s].index_select(0, idx), self.edge_weights[key]))
                    total.index_add_(0, idx, y)
            nodes.append(total)
        return torch.bmm(nodes[-1], self.readout)

    # -- members -----------------------------------------------------------------------

    def _slots(self, i: int) -> list[tuple[str, torch.Tensor]]:
        lay = self.layouts[i]
        slots = [(lay.stem, self.stem[i]), (lay.readout, self.readout[i])]
        for (s, t), (kind, name) in lay.edges.items():
            if kind == "linear":
                slots.append((str(name), self.edge_weights[_key(s, t)][self._linear[(s, t)].index(i)]))
        return slots

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s weights as its compiled module's state_dict (CPU copies)."""
        return {name: w.detach().T.to("cpu").contiguous() for name, w in self._slots(i)}

    @torch.no_grad()
    def load_member_state(self, i: int, state: dict[str, torch.Tensor]) -> None:
        slots = self._slots(i)
        if set(state) != {name for name, _ in slots}:
            raise ValueError(f"member {i}: state keys {sorted(state)} do not match {sorted(n for n, _ in slots)}")
        for name, w in slots:
            w.copy_(state[name].T)

    @torch.no_grad()
    def write_back(self, i: int, module: nn.Module) -> None:
        """Copy member ``i``'s current weights into its compiled module."""
        module.load_state_dict(self.member_state(i))


# ---------------------------------------------------------------------------------------
# Training


PopulationCallback = Callable[[int, EpochRecord, Optional[Callable[[], Checkpoint]]], None]
"""``(member, record, snapshot)`` after each epoch of each member; ``snapshot`` as in
:class:`nflc.verify.train.EpochCallback` (None after an epoch whose losses diverged)."""


@torch.no_grad()
def _evaluate(pop: Population, members: int, x: torch.Tensor, y: torch.Tensor, rows: int) -> tuple[list[float], list[float]]:
    """Per member: mean cross-entropy (float64 sums) and accuracy on all of ``(x, y)``."""
    loss = torch.zeros(members, dtype=torch.float64, device=x.device)
    correct = torch.zeros(members, dtype=torch.int64, device=x.device)
    for start in range(0, len(y), rows):
        logits = pop(x[start : start + rows])  # (A, b, C)
        target = y[start : start + rows]
        b = len(target)
        ce = F.cross_entropy(logits.double().reshape(members * b, -1), target.repeat(members), reduction="none")
        loss += ce.view(members, b).sum(dim=1)
        correct += (logits.argmax(dim=2) == target).sum(dim=1)
    n = max(len(y), 1)
    return (loss / n).tolist(), (correct.double() / n).tolist()


def _members(a: int, seeds: Sequence[int], resume: Optional[Sequence[Optional[Checkpoint]]],
             histories: Optional[Sequence[Sequence[EpochRecord]]]
             ) -> tuple[list[Optional[Checkpoint]], list[list[EpochRecord]], int]:
    """Every member's checkpoint and history (checked: one per module, all after the same
    epoch), and that epoch."""
    if len(seeds) != a:
        raise ValueError(f"{a} modules but {len(seeds)} seeds")
    resumes: list[Optional[Checkpoint]] = list(resume) if resume is not None else [None] * a
    records: list[list[EpochRecord]] = [list(h) for h in histories] if histories is not None else [[] for _ in range(a)]
    if len(resumes) != a or len(records) != a:
        raise ValueError("resume and histories need one entry per module")
    if a == 0:
        return resumes, records, 0
    starts = {0 if r is None else r.epoch for r in resumes}
    if len(starts) != 1:
        raise ValueError(f"members of a population must resume after the same epoch, got {sorted(starts)}")
    done_epochs = starts.pop()
    for i, h in enumerate(records):
        if len(h) != done_epochs:
            raise ValueError(f"member {i}: resuming after epoch {done_epochs} needs {done_epochs} epochs of history, got {len(h)}")
    return resumes, records, done_epochs


def _member_generators(pop: Population, seeds: Sequence[int], resume: Sequence[Optional[Checkpoint]]
                       ) -> tuple[list[torch.Generator], list[torch.Tensor]]:
    """Each member's minibatch generator and the global-generator state ``train`` would
    checkpoint (nothing in this family draws from it); a resumed member's weights loaded."""
    shuffles = []
    torch_rngs = []
    for i, s in enumerate(seeds):
        g = shuffle_generator(s)
        ckpt = resume[i]
        if ckpt is not None:
            g.set_state(ckpt.shuffle_rng)
            pop.load_member_state(i, ckpt.model)
        shuffles.append(g)
        torch_rngs.append(ckpt.torch_rng if ckpt is not None
                          else torch.Generator().manual_seed(stochastic_seed(s)).get_state())
    return shuffles, torch_rngs


def _population_epoch(pop: Population, shuffles: Sequence[torch.Generator], x_train: torch.Tensor, y_train: torch.Tensor,
                 config: TrainConfig, device: torch.device) -> torch.Tensor:
    """One epoch of plain SGD for every member (its own minibatch order); whether each
    member's losses stayed finite."""
    k, n = len(shuffles), len(y_train)
    optimizer = sgd(pop.parameters(), config.lr)
    pop.train()
    orders = torch.stack([torch.randperm(n, generator=g) for g in shuffles])
    # members seeded alike (a sweep's shared data order) draw one minibatch for all
    shared = bool((orders == orders[:1]).all())
    orders = (orders[:1] if shared else orders).to(device)
    finite = torch.ones(k, dtype=torch.bool, device=device)
    for start in range(0, n, config.batch):
        idx = orders[:, start : start + config.batch]  # (1 or k, b): the minibatch of each member
        b = idx.shape[1]
        logits = pop(x_train[idx[0]] if shared else x_train[idx])
        target = y_train[idx].expand(k, b).reshape(k * b)
        losses = F.cross_entropy(logits.reshape(k * b, -1), target, reduction="none")
        losses = losses.view(k, b).mean(dim=1)
        finite &= torch.isfinite(losses)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # each member's gradient is that of its own mean loss
        optimizer.step()
    return finite


def _keep_rows(pop: Population, modules: list[nn.Module], active: list[int], keep: list[int], device: torch.device
               ) -> tuple[Population, list[nn.Module], list[int]]:
    """The population of the rows ``keep`` (their modules take their current weights)."""
    modules = [modules[row] for row in keep]
    states = [pop.member_state(row) for row in keep]
    for module, state in zip(modules, states, strict=True):
        module.load_state_dict(state)
    return Population(modules).to(device), modules, [active[row] for row in keep]


def train_population(
    modules: Sequence[nn.Module],
    train_set: Dataset,
    test_set: Dataset,
    config: TrainConfig,
    *,
    seeds: Sequence[int],
    resume: Optional[Sequence[Optional[Checkpoint]]] = None,
    histories: Optional[Sequence[Sequence[EpochRecord]]] = None,
    on_epoch: Optional[PopulationCallback] = None,
    eval_elements: Optional[int] = None,
    eval_members: Optional[int] = None,
) -> list[TrainResult]:
    """Train every module of ``modules`` as :func:`nflc.verify.train.train` would train it
    alone with ``seed=seeds[i]``, all at once; the modules end with their trained weights.

    ``resume``/``histories``: per member a checkpoint and its history (all members must
    resume after the same epoch, or none). ``eval_elements`` bounds the activation size of
    one evaluation chunk (members x rows x width floats), sized for ``eval_members``
    members (default: this population's size). The chunk length is the only thing that
    the population's size changes in a member's numbers (the float64 loss sums), so
    populations of different sizes sized alike (``run_training(population=True)`` sizes every group for
    its ``group_size``) give every member the same numbers bit for bit on a CPU.
    """
    a = len(modules)
    resume, histories, done_epochs = _members(a, seeds, resume, histories)
    if a == 0:
        return []
    device = resolve_device(config.device)
    pop = Population(modules)
    opt_state = [sgd_state(m, config.lr) for m in modules]
    shuffles, torch_rngs = _member_generators(pop, seeds, resume)
    pop.to(device)
    flat = (lambda x: x.reshape(len(x), -1)) if pop.layouts[0].flatten else (lambda x: x)
    x_train, y_train = flat(train_set.x).to(device), train_set.y.to(device)
    x_test, y_test = flat(test_set.x).to(device), test_set.y.to(device)
    budget = eval_elements or EVAL_ELEMENTS.get(device.type, EVAL_ELEMENTS["cpu"])
    # fixed for the whole run: members leaving must not change the others' chunking
    rows = max(1, min(EVAL_CHUNK, budget // max(1, max(a, eval_members or 0) * pop.width)))

    results: list[Optional[TrainResult]] = [None] * a
    active = list(range(a))  # original member index of each population row
    sub_pop, sub_modules = pop, list(modules)

    def finish(i: int, diverged: bool) -> None:
        results[i] = finished(histories[i], config, diverged)

    for epoch in range(done_epochs + 1, config.epochs + 1):
        k = len(active)
        finite = _population_epoch(sub_pop, [shuffles[i] for i in active], x_train, y_train, config, device)
        tr_loss, tr_acc = _evaluate(sub_pop, k, x_train, y_train, rows)
        te_loss, te_acc = _evaluate(sub_pop, k, x_test, y_test, rows)
        finite_list = finite.tolist()
        keep = []
        for row, i in enumerate(active):
            record = EpochRecord(epoch=epoch, train_loss=tr_loss[row], train_acc=tr_acc[row],
                                 test_loss=te_loss[row], test_acc=te_acc[row])
            histories[i].append(record)
            diverged = _diverged(finite_list[row], tr_loss[row], te_loss[row])
            last = diverged or config.stops_after(histories[i])  # converged members leave like diverged ones

            def snapshot(row: int = row, i: int = i, epoch: int = epoch, pop: Population = sub_pop) -> Checkpoint:
                return Checkpoint(epoch=epoch, model=pop.member_state(row), optimizer=opt_state[i],
                                  shuffle_rng=shuffles[i].get_state(), torch_rng=torch_rngs[i], cuda_rng=None)

            if on_epoch is not None:
                on_epoch(i, record, None if diverged else snapshot)  # the last epoch too: a final state to keep
            if last:
                sub_pop.write_back(row, modules[i])
                finish(i, diverged)
            else:
                keep.append(row)
        if not keep:
            break
        if len(keep) < k:  # drop diverged members: the others' tensors are copied unchanged
            sub_pop, sub_modules, active = _keep_rows(sub_pop, sub_modules, active, keep, device)
    for i in range(a):
        if results[i] is None:  # resumed with nothing left to run
            finish(i, False)
    return [r for r in results if r is not None]  # every member has its result here
