"""Which architectures the exact infinite-width engine covers, and their kernels.

The engine (:mod:`nflc.analysis.kernels`) is exact for the paper's MLP skeleton
(docs/THEORY.md section 1): ``[flatten] >> linear(m) >> relu >> cell >> linear(classes)`` with
no biases, He-normal initialisation and cell edges of kind zero / skip / linear_relu.
:func:`exact_support` says whether an architecture is such a network and, if not, why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from nflc.analysis import kernels as K

if TYPE_CHECKING:
    from nflc.space import Architecture

def network_support(ir: Any) -> str | None:
    """None when the macro network is the paper's skeleton, else the reason it is not."""
    stages = [st for st in ir.network if not (st.kind == "prim" and st.prim.name == "flatten")]
    names = [st.prim.name if st.kind == "prim" else "cell" for st in stages]
    if names != ["linear", "relu", "cell", "linear"]:
        return f"the network is {' >> '.join(names)}, not linear >> relu >> cell >> linear"
    if len(set(ir.instances)) != 1:
        return "the network has more than one cell instance"
    if any(st.kind == "prim" and st.prim.name == "linear" and st.prim.args.get("bias") for st in stages):
        return "the stem or readout has a bias (the exact kernels assume none: 'bias false')"
    if ir.init != "he_normal":
        return f"init is {ir.init}, the exact kernels assume he_normal"
    return None


def exact_support(arch: Architecture) -> str | None:
    """None when the exact kernels apply to ``arch``, else the reason they do not."""
    reason = network_support(arch.space.lowered(arch.constants_override))
    if reason:
        return reason
    for s, t, a in arch.graph.edges(data=True):
        if not K.edge_supported(a):
            return f"edge {s} -> {t} is '{a['op']}' (kind {a['kind']}); exact kernels cover zero, skip and linear >> relu edges"
    return None


def normalize_inputs(x: np.ndarray) -> np.ndarray:
    """Flatten and rescale every input to |x|^2 = d, so the input Gram has unit diagonal
    (the normalization of docs/THEORY.md section 3). All-zero inputs stay zero."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x * np.sqrt(x.shape[1]) / np.where(norms > 0, norms, 1), 0.0)


def architecture_kernels(arch: Architecture, x: Any) -> K.CellKernels:
    """Exact NNGP and NTK (float64, N x N) of ``arch`` on raw inputs ``x`` (N, ...).

    Raises ``ValueError`` saying why when the architecture is outside the exact family.
    Inputs are used as given (q_in = x x^T / d); see :func:`normalize_inputs`.
    """
    reason = exact_support(arch)
    if reason:
        raise ValueError(f"exact kernels do not apply to {arch.id}: {reason}")
    x = np.asarray(x, dtype=np.float64)
    d = int(np.prod(arch.space.ir.input_shape))
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != d:
        raise ValueError(f"inputs must have shape (N, {d}) for space {arch.space.name}, got {x.shape}")
    return K.cell_kernels(arch.graph, x.reshape(len(x), d))
