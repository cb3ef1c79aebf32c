"""Analyses of cells before training: topology, exact kernels, the paper's indicators.

Finite-width measurements live in :mod:`nflc.analysis.empirical`, which imports torch and
is therefore not re-exported here: static analysis must stay cheap to import.
"""

from nflc.analysis.indicators import (
    curvature,
    expected_jacobian_norm,
    nngp_lambda_min_bound,
    normalized_gram,
    ntk_generalization_bound,
    ntk_generalization_upper,
)
from nflc.analysis.kernels import (
    CellKernels,
    cell_kernels,
    condition_number,
    inverse_quadratic,
    lambda_min,
    path_sum_nngp,
    space_kernels,
)
from nflc.space.topology import Topology, topology

__all__ = [
    "CellKernels",
    "Topology",
    "cell_kernels",
    "condition_number",
    "curvature",
    "expected_jacobian_norm",
    "inverse_quadratic",
    "lambda_min",
    "nngp_lambda_min_bound",
    "normalized_gram",
    "ntk_generalization_bound",
    "ntk_generalization_upper",
    "path_sum_nngp",
    "space_kernels",
    "topology",
]
