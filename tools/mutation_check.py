"""Mutation check: does the test suite notice a wrong result?

    python tools/mutation_check.py                # every mutation below
    python tools/mutation_check.py --list         # what they are
    python tools/mutation_check.py --only stem-k0 sibling-mean-cross   # some of them

Each mutation is one deliberate bug: an exact piece of source text replaced by a wrong
one. The script copies the working tree (tracked and untracked files that git does not
ignore) to a scratch directory, runs each mutation's tests there once unmutated (they must
pass, or the mutation is not judged), then applies the mutations one at a time, runs the
same tests, and restores the file. A mutation is *killed* when a test fails, *survived*
when all pass. The repository itself is never written to.

The tests of a mutation exclude the Monte Carlo kernel tests on purpose: a kernel bug must
be caught by a deterministic, hand-derived test (the Monte Carlo ones are the second line).
A mutation whose source text is no longer in the file (the code moved on) is reported as
"not found" and left out of the score; update its text here.

Exit status: 0 when every mutation found was killed, 1 otherwise. docs/TESTING.md has the
last score.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

KERNEL_TESTS = ("tests/analysis/test_kernels.py", "-k", "not monte_carlo",
                "tests/analysis/test_analyze.py::test_kernels_api_on_spec_architectures_by_closed_forms",
                "tests/analysis/test_analyze.py::test_normalize_inputs_by_hand",
                "tests/analysis/test_analyze.py::test_exact_support_says_why_not")
REPORT_TESTS = ("tests/verify/test_report.py",)
SPACE_TESTS = ("tests/frontend/test_space.py", "tests/frontend/test_parse.py", "tests/frontend/test_properties.py",
               "tests/frontend/test_space_parts.py")
TOPOLOGY_TESTS = ("tests/analysis/test_topology.py", "tests/analysis/test_rank_score.py",
                  "tests/analysis/test_indicators.py")
# issue #25: values derived outside the code (brute force, hand formulas, reference networks)
COMBINATION_TESTS = ("tests/frontend/test_feature_combinations.py",)
SCORE_TESTS = ("tests/analysis/test_scores_by_hand.py",)
NETWORK_TESTS = ("tests/backend/test_network_costs.py",)
INIT_TESTS = ("tests/backend/test_conv_init.py",)
RECOVERY_TESTS = ("tests/verify/test_recovery.py",)
RULE_TESTS = ("tests/verify/test_rules_by_hand.py",)
ENCODING_TESTS = ("tests/test_encodings_by_hand.py",)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # exact text, must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest arguments
    why: str


MUTATIONS = [
    # --- the three of issue #16 -------------------------------------------------------------
    Mutation("never-ties-last-epoch", "nflc/verify/report.py",
             "never = max_epochs + 1", "never = max_epochs", REPORT_TESTS,
             "a network that never reaches the threshold ties with one that reaches it at the last epoch"),
    Mutation("stem-k0", "nflc/analysis/kernels.py",
             "theta = fwd.q[h, h] + _k0(q_in) * q_in * p[0, 0]", "theta = fwd.q[h, h] + q_in * p[0, 0]",
             KERNEL_TESTS, "the NTK's stem term loses its k0(q_in) factor (invisible on orthonormal inputs)"),
    Mutation("sibling-mean-cross", "nflc/analysis/kernels.py",
             "q_bb = q_bb + np.outer(_edge_mean(state, s, ks), _edge_mean(state, t, kt))", "q_bb = q_bb",
             KERNEL_TESTS, "two edges into one node, one of them linear: the product of their means is dropped"),
    Mutation("count-sum", "nflc/space/space.py",
             "n = per_effect[key] = math.prod(len(v) for v in self._valid_at(digits))",
             "n = per_effect[key] = sum(len(v) for v in self._valid_at(digits))",
             SPACE_TESTS, "a filtered space's count adds the instances' counts instead of multiplying them"),
    # --- exact kernels ---------------------------------------------------------------------
    Mutation("cross-node-mean", "nflc/analysis/kernels.py",
             "q_ab = q_ab + np.outer(state.mu[a], state.relu_mu[s])", "q_ab = q_ab",
             KERNEL_TESTS, "q_ab (a < b) loses the mean product of a linear edge into b"),
    Mutation("relu-mean-sqrt2", "nflc/analysis/kernels.py",
             "return np.sqrt(np.maximum(a, 0.0) / np.pi)", "return np.sqrt(np.maximum(a, 0.0) / (2 * np.pi))",
             KERNEL_TESTS, "m1 = E[relu(u)] without the sqrt(2) of the parameterization"),
    Mutation("k0-dead-node", "nflc/analysis/kernels.py",
             "return np.where(a * b > 0.0, (np.pi - theta) / np.pi, 0.0)",
             "return np.where(a * b > 0.0, (np.pi - theta) / np.pi, 1.0)",
             KERNEL_TESTS, "k0 of a zero variance is 1 (torch's relu'(0) is 0)"),
    Mutation("backward-no-k0", "nflc/analysis/kernels.py",
             "p_aa = p_aa + fwd.relu_k0[a] * sum(get(t, t) for t in linears)",
             "p_aa = p_aa + sum(get(t, t) for t in linears)",
             KERNEL_TESTS, "a gradient through a linear edge loses its k0 factor"),
    Mutation("backward-skip-before-b", "nflc/analysis/kernels.py",
             "p[a, b] = sum((get(t, b) for t in skips), np.float64(0.0))",
             "p[a, b] = sum((get(t, b) for t in skips if t >= b), np.float64(0.0))",
             KERNEL_TESTS, "P_ab ignores skips from a that land before b"),
    Mutation("ntk-edge-no-k0", "nflc/analysis/kernels.py",
             "theta = theta + fwd.relu_k0[s] * fwd.q[s, s] * p[t, t]", "theta = theta + fwd.q[s, s] * p[t, t]",
             KERNEL_TESTS, "a cell edge's NTK term loses its k0(q_ss) factor"),
    Mutation("input-gram-unscaled", "nflc/analysis/kernels.py",
             "return x @ x.T / x.shape[1]", "return x @ x.T / len(x)",
             KERNEL_TESTS, "q_in divided by the sample size instead of the input dimension"),
    Mutation("normalize-unit-norm", "nflc/analysis/exact.py",
             "x * np.sqrt(x.shape[1]) / np.where(norms > 0, norms, 1)", "x / np.where(norms > 0, norms, 1)",
             KERNEL_TESTS, "normalize_inputs gives |x| = 1 instead of |x|^2 = d"),
    Mutation("support-ignores-bias", "nflc/analysis/exact.py",
             'st.prim.args.get("bias") for st in stages', 'st.prim.args.get("bias") and False for st in stages',
             KERNEL_TESTS, "a stem or readout with a bias is taken as exact"),
    Mutation("support-any-normal-init", "nflc/analysis/exact.py",
             'if ir.init != "he_normal":', 'if ir.init not in ("he_normal", "xavier_normal"):',
             KERNEL_TESTS, "Xavier-initialised networks (another weight variance) are taken as exact"),
    # --- spaces ----------------------------------------------------------------------------
    Mutation("unique-keeps-all", "nflc/space/cell.py",
             "if ok and reps[i] == i)", "if ok and reps[i] <= i)",
             SPACE_TESTS, "'unique' keeps every member of an isomorphism class"),
    Mutation("require-ge-strict", "nflc/space/filters.py",
             '">=": operator.ge', '">=": operator.gt',
             SPACE_TESTS, "'require X >= v' drops the cells with X == v"),
    Mutation("sample-misses-last", "nflc/space/space.py",
             "i = rng.randrange(total)", "i = rng.randrange(max(total - 1, 1))",
             SPACE_TESTS, "sampling never draws the last architecture"),
    Mutation("decode-digit-order", "nflc/space/radix.py",
             "    for r in reversed(radices):\n        index, d = divmod(index, r)",
             "    for r in radices:\n        index, d = divmod(index, r)",
             SPACE_TESTS, "index -> choices with the radices in the wrong order (mixed radices)"),
    # --- topology --------------------------------------------------------------------------
    Mutation("mean-depth-off-by-one", "nflc/space/topology.py",
             "mean_depth = sum_depth / paths if paths else 0.0", "mean_depth = sum_depth / (paths + 1) if paths else 0.0",
             TOPOLOGY_TESTS, "mean depth over P + 1 paths"),
    Mutation("incidence-counts-edges", "nflc/space/topology.py",
             "counts[t][k] = counts[t].get(k, 0) + n[s]", "counts[t][k] = counts[t].get(k, 0) + 1",
             TOPOLOGY_TESTS, "an edge counts once instead of once per path through it"),
    Mutation("effective-width-all-paths", "nflc/space/topology.py",
             "effective_width=deep_paths / mean_depth if deep_paths else 0.0",
             "effective_width=paths / mean_depth if deep_paths else 0.0",
             TOPOLOGY_TESTS, "effective width counts skip-only paths"),
    Mutation("skip-paths-single-depth", "nflc/space/topology.py",
             "skip_paths = counts[0] if counts else 0", "skip_paths = counts[0] if len(counts) > 1 else 0",
             TOPOLOGY_TESTS, "a cell whose paths are all skip-only reports no skip-only path"),
    Mutation("dead-edges-swapped", "nflc/space/topology.py",
             "return [e for e in edges if e in live], [e for e in edges if e not in live]",
             "return [e for e in edges if e in live], [e for e in edges if e in live]",
             TOPOLOGY_TESTS, "every live edge is reported dead"),
    # --- verification report ---------------------------------------------------------------
    Mutation("oriented-not-negated", "nflc/verify/report.py",
             "    return -raw\n", "    return raw\n",
             REPORT_TESTS, "measured values are not turned to higher = better"),
    Mutation("diverged-not-worst", "nflc/verify/report.py",
             "return -math.inf if a.diverged else math.nan", "return math.nan",
             REPORT_TESTS, "a diverged run is left out instead of ranked worst"),
    Mutation("bootstrap-no-resampling", "nflc/verify/report.py",
             "sample = pairs[rng.integers(0, len(pairs), len(pairs))]", "sample = pairs",
             REPORT_TESTS, "the bootstrap interval collapses onto the point estimate"),
    Mutation("late-drop-one-epoch", "nflc/verify/report.py",
             "w = max(1, len(train_losses) // 10)", "w = 1",
             REPORT_TESTS, "the late loss drop always looks at one epoch"),
    # --- issue #25: the front end (ir/, space, graph, encodings) -------------------------------
    Mutation("ir-x0-from-previous-output", "nflc/ir/network.py",
             "        self.prev_cell_input = shape\n", "        self.prev_cell_input = out_shape\n",
             NETWORK_TESTS, "a two-input cell's X0 is preprocessed from the previous cell's output shape, not its input's"),
    Mutation("ir-require-bound-truncated", "nflc/ir/checks.py",
             "value=v, span=to_source_span(r.span))", "value=int(v), span=to_source_span(r.span))",
             COMBINATION_TESTS, "a fractional 'require' bound (mean_depth >= 1.5, edges < 5.5) loses its fraction"),
    Mutation("ir-pick-digit-op-order", "nflc/ir/model.py",
             "        v = v * sizes[p] + op\n", "        v = v + op * sizes[p]\n",
             ENCODING_TESTS, "a pick node's digit from an id takes the second picked edge's op as the more significant"),
    Mutation("space-count-drops-numeric", "nflc/space/space.py",
             "            total += n\n", "            total = n\n",
             COMBINATION_TESTS, "a filtered space's count leaves out its numeric choices' values but the last"),
    Mutation("space-strict-lt-inclusive", "nflc/space/filters.py",
             '"<": operator.lt', '"<": operator.le',
             COMBINATION_TESTS, "'require X < v' keeps the cells with X == v"),
    Mutation("space-filters-at-first-value", "nflc/space/architecture.py",
             "view = sp.filters_at(self.numeric_digits)  #", "view = sp.filters_at(tuple(0 for _ in self.numeric_digits))  #",
             COMBINATION_TESTS, "an architecture's filters read at the numeric choices' first values, not its own (issue #28)"),
    Mutation("space-node-fast-skips-filters", "nflc/space/cell.py",
             "kept = tuple(r for r in full if self.rejection(r) is None) if self.requires else tuple(full)",
             "kept = tuple(full)",
             COMBINATION_TESTS, "the node-cell fast path keeps the classes its other filters (in_degree, paths) reject"),
    Mutation("space-unique-rejected-first", "nflc/space/canonical.py",
             "        key = forms.form(live)\n        reps.append(first.setdefault(key, i) if passing[i] else first.get(key, i))",
             "        key = forms.form(live)\n        reps.append(first.setdefault(key, i))",
             COMBINATION_TESTS, "'unique' lets a member the other cell filters reject represent (and drop) its class"),
    Mutation("space-edges-count-the-frame", "nflc/space/cell.py",
             "own = tuple(e[:2] for e in live if e[:2] not in framed)", "own = tuple(e[:2] for e in live)",
             COMBINATION_TESTS, "'require edges' of a two-input concat cell counts its preprocessing and concat edges"),
    Mutation("graph-x0-reads-previous-cell", "nflc/space/graph.py",
             "zip((prev_cell_input or prev, prev), st.preprocess,", "zip((prev, prev), st.preprocess,",
             NETWORK_TESTS, "the network graph's X0 reads the cell before instead of the cell two back"),
    Mutation("graph-preprocess-cost-at-x1-shape", "nflc/space/graph.py",
             "(st.shape_prev, st.shape_in), strict=True)):", "(st.shape_in, st.shape_in), strict=True)):",
             NETWORK_TESTS, "the parameters on X0's preprocessing edge are counted at X1's shape"),
    Mutation("encodings-representative-is-itself", "nflc/encodings.py",
             "choices[k] = cs.choice(cs.representative(arch.cell_index(k)))",
             "choices[k] = cs.choice(arch.cell_index(k))",
             ENCODING_TESTS, "class_representative returns the graph itself, not its class's first member"),
    Mutation("encodings-not-in-space-needs-both", "nflc/encodings.py",
             "if arch.rejection is None or class_representative(arch).rejection is None:",
             "if arch.rejection is None and class_representative(arch).rejection is None:",
             ENCODING_TESTS, "not_in_space rejects a graph whose class is in the space through another member"),
    Mutation("encodings-genotype-unsorted", "nflc/encodings.py",
             "for p in sorted(pairs[k:k + 2], key=lambda q: q[1])]", "for p in pairs[k:k + 2]]",
             ENCODING_TESTS, "the canonical genotype keeps each node's pairs in the given order"),
    Mutation("encodings-prune-keeps-unreachable", "nflc/encodings.py",
             "keep = sorted(ahead & behind)", "keep = sorted(behind)",
             ENCODING_TESTS, "NAS-Bench-101 pruning keeps vertices the input does not reach"),
    # --- issue #25: verification (driver, store, plateau, report) ---------------------------------
    Mutation("driver-retry-keeps-uncovered-epochs", "nflc/verify/driver.py",
             "            pending.pop(a, None)  # not covered by a checkpoint: trained again after it\n",
             "            pass\n",
             RECOVERY_TESTS, "a lost group's epochs after its last checkpoint are kept and stored again by the retry"),
    Mutation("driver-diverged-not-finished", "nflc/verify/driver.py",
             'if self.store.status(arch_id) in ("done", "diverged"):', 'if self.store.status(arch_id) == "done":',
             RECOVERY_TESTS, "a resumed sweep trains a diverged network again"),
    Mutation("driver-checkpoint-cadence-shifted", "nflc/verify/driver.py",
             "(record.epoch % every == 0 or final)", "(record.epoch % every == 1 % every or final)",
             RECOVERY_TESTS, "checkpoints fall one epoch after every multiple of checkpoint_every"),
    Mutation("driver-no-final-state", "nflc/verify/driver.py",
             "final = config.plateau is None and record.epoch == config.epochs", "final = False",
             RECOVERY_TESTS, "a fixed-epoch run keeps no final state when its last epoch is not a periodic checkpoint"),
    Mutation("store-deleted-lease-writes", "nflc/verify/store.py",
             "if held is None or held.token != self.lease.token:", "if held is not None and held.token != self.lease.token:",
             RECOVERY_TESTS, "a writer whose lease row was deleted goes on writing"),
    Mutation("store-heartbeat-recreates-lease", "nflc/verify/store.py",
             "if held is not None and held.token == self._lease.token:\n"
             "                        _write_lease(conn, held.model_copy(update={\"heartbeat\": _now()}))",
             "if held is None or held.token == self._lease.token:\n"
             "                        _write_lease(conn, self._lease.model_copy(update={\"heartbeat\": _now()}))",
             RECOVERY_TESTS, "the heartbeat writes its lease back after the row was deleted"),
    Mutation("store-extend-revives-diverged", "nflc/verify/store.py",
             "WHERE run_id = ? AND status = 'done'\", (now, run_id))",
             "WHERE run_id = ? AND status IN ('done', 'diverged')\", (now, run_id))",
             RECOVERY_TESTS, "extending a run sets its diverged networks running again"),
    Mutation("plateau-fit-one-window", "nflc/verify/plateau.py",
             "return max(window, epochs // 2)", "return window",
             RULE_TESTS, "the slope rule fits the last window instead of the last half of the run"),
    Mutation("plateau-window-drop-inclusive", "nflc/verify/plateau.py",
             "return drop is not None and drop < self.tol", "return drop is not None and drop <= self.tol",
             RULE_TESTS, "the window rule stops on a drop of exactly tol"),
    Mutation("plateau-window-first-epoch-late", "nflc/verify/plateau.py",
             "        return 2 * self.window\n", "        return 2 * self.window + 1\n",
             RULE_TESTS, "the window rule is first judged one epoch after two windows exist (a rising loss stops late)"),
    Mutation("plateau-autocorrelation-cap", "nflc/verify/plateau.py",
             "r = min(max(r, 0.0), 0.9)", "r = min(max(r, 0.0), 0.95)",
             RULE_TESTS, "the slope's error is widened beyond the documented cap r = 0.9"),
    Mutation("plateau-measure-window-eighth", "nflc/verify/plateau.py",
             "return max(1, min(50, epochs // 10))", "return max(1, min(50, epochs // 8))",
             RULE_TESTS, "a fixed-length run's losses are averaged over its last eighth instead of its last tenth"),
    Mutation("report-left-chance-of-diverged", "nflc/verify/report.py",
             "left_chance=left_chance(losses, chance) if finite and chance is not None else None)",
             "left_chance=left_chance(losses, chance) if chance is not None else None)",
             RULE_TESTS + RECOVERY_TESTS, "a diverged run gets a chance verdict from its finite epochs"),
    Mutation("report-left-chance-at-margin", "nflc/verify/report.py",
             "min(finite) < (1 - margin) * chance", "min(finite) <= (1 - margin) * chance",
             RULE_TESTS, "a best loss exactly 1% under chance counts as having left it"),
    Mutation("report-final-slope-one-window", "nflc/verify/report.py",
             "fit = log_slope(losses, min(len(losses), fit_length(len(losses), rule.window)))",
             "fit = log_slope(losses, min(len(losses), rule.window))",
             RULE_TESTS, "the report's final slope is fitted over one window, not the rule's fit length"),
    # --- issue #25: analysis (analyze, groups) ------------------------------------------------------
    Mutation("analyze-generalization-n-outside-sqrt", "nflc/analysis/analyze.py",
             "return (-(sum_depth * math.sqrt(q / n))", "return (-(sum_depth * math.sqrt(q) / n)",
             SCORE_TESTS, "the generalization score divides by N outside the square root"),
    Mutation("analyze-yinvy-over-samples", "nflc/analysis/analyze.py",
             "check_finite=False)) / y.shape[1])", "check_finite=False)) / y.shape[0])",
             SCORE_TESTS, "y^T Theta^-1 y is averaged over the samples instead of the classes"),
    Mutation("analyze-label-free-no-sqrt", "nflc/analysis/analyze.py",
             "return (-(sum_depth / math.sqrt(lam))", "return (-(sum_depth / lam)",
             SCORE_TESTS, "the label-free generalization score divides by lambda_min, not its square root"),
    Mutation("analyze-sum-depth-all-placements", "nflc/analysis/analyze.py",
             "for j, _ in places[:i] + places[i + 1:])", "for j, _ in places)",
             SCORE_TESTS, "a network's sum_depth multiplies each placement's depth sum by its own path count too"),
    Mutation("analyze-representative-first-in-order", "nflc/analysis/analyze.py",
             "by = np.lexsort((np.arange(n), pr, group_of))", "by = np.lexsort((np.arange(n), group_of))",
             SCORE_TESTS, "a group's representative is its first member, not the one with the fewest parameters"),
    Mutation("analyze-representative-ties-last", "nflc/analysis/analyze.py",
             "by = np.lexsort((np.arange(n), pr, group_of))", "by = np.lexsort((-np.arange(n), pr, group_of))",
             SCORE_TESTS, "among a group's lightest members the last, not the first, represents it"),
    Mutation("analyze-top-ties-last", "nflc/analysis/analyze.py",
             "item = (v, -pos, row)", "item = (v, pos, row)",
             SCORE_TESTS, "the top tables break ties by the last network in order"),
    Mutation("analyze-curvature-placements-added", "nflc/analysis/analyze.py",
             "total *= expected_jacobian_norm(", "total += expected_jacobian_norm(",
             SCORE_TESTS, "the Thm 4.1 curvature of stacked placements adds their path sums instead of multiplying"),
    Mutation("canonical-no-renumbering", "nflc/space/canonical.py",
             "form = self.memo[live] = min(tuple(sorted((m[s], m[t], op) for s, t, op in live)) for m in self.maps)",
             "form = self.memo[live] = tuple(sorted(live))",
             SCORE_TESTS, "the canonical form of a cell's computing graph does not renumber its intermediate nodes"),
    Mutation("groups-representatives-ties-last", "nflc/analysis/groups.py",
             "if j is None or params[i] < params[j]:", "if j is None or params[i] <= params[j]:",
             SCORE_TESTS, "groups.representatives picks the last of a group's lightest members"),
    Mutation("groups-key-ignores-widths", "nflc/analysis/groups.py",
             "return tuple(parts), tuple(sorted(arch.constants_override.items()))", "return tuple(parts), ()",
             SCORE_TESTS, "networks of different numeric values (widths) share a group"),
    # --- issue #25: the torch backend -----------------------------------------------------------
    Mutation("torch-conv-fan-in-channels-only", "nflc/backends/torch.py",
             "fan_in = w[0].numel()", "fan_in = m.in_channels if isinstance(m, nn.Conv2d) else w[0].numel()",
             INIT_TESTS, "a convolution's fan-in is its input channels, without k^2 and groups"),
    Mutation("torch-no-gain-before-relu-stage", "nflc/backends/torch.py",
             'b.prim_stage(st, nxt is not None and nxt.kind == "prim" and nxt.prim.name == "relu")',
             "b.prim_stage(st, False)",
             INIT_TESTS, "a layer followed by a relu stage of the network gets gain 1 instead of sqrt(2)"),
    Mutation("torch-cell-edge-no-relu-gain", "nflc/backends/torch.py",
             "                _mark_relu_followers(sub, self.relu_after)\n        return m",
             "                pass\n        return m",
             INIT_TESTS, "a cell edge's layer followed by a ReLU gets gain 1 instead of sqrt(2)"),
    Mutation("torch-factorized-reduce-unshifted", "nflc/backends/torch_ops.py",
             "self.conv_2(x[:, :, 1:, 1:])", "self.conv_2(x)",
             INIT_TESTS, "DARTS's factorized reduction reads the same pixels in both halves"),
    Mutation("torch-xavier-conv-fan-out", "nflc/backends/torch.py",
             "fan_out = w.shape[0] * (w[0, 0].numel() if w.dim() > 2 else 1)",
             "fan_out = w.shape[0]",
             INIT_TESTS, "Xavier's fan-out of a convolution leaves out k^2"),
]


def copy_tree(repo: Path, dest: Path) -> None:
    """The working tree as git sees it (tracked + untracked, not ignored) into ``dest``."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, check=True).stdout
    for rel in sorted(set(filter(None, out.decode().split("\0")))):
        src = repo / rel
        if src.is_file() and not src.is_symlink():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def run_tests(copy: Path, args: tuple[str, ...], timeout: float) -> tuple[str, float, str, str]:
    """(outcome, seconds, first failure, its message) of ``pytest args`` in the copy. The
    message (pytest's first ``E`` line, or the error's last line) is what tells whether the
    test failed for the right reason: it should name the mutated quantity."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", *args]
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, "", ""
    seconds = time.monotonic() - t0
    text = res.stdout + res.stderr
    lines = text.splitlines()
    first = next((ln.split(" - ")[0][len("FAILED "):] for ln in lines if ln.startswith(("FAILED ", "ERROR "))), "")
    if first == "":
        first = next((ln[len("ERROR "):] for ln in lines if ln.startswith("ERROR ")), "")
    outcome = {0: "passed", 1: "failed"}.get(res.returncode, f"error (pytest exit {res.returncode})")
    if outcome != "passed" and not first:
        first = text.strip().splitlines()[-1] if text.strip() else ""
    message = ""
    if outcome != "passed":
        # the first informative E line (numpy's assertions put their numbers after a bare "AssertionError:")
        message = next((ln[1:].strip() for ln in lines if ln.startswith("E ") and ln[1:].strip()
                        and ln[1:].strip() not in ("AssertionError:", "AssertionError")), "")
        if not message:
            message = next((ln.split(" - ", 1)[1] for ln in lines if ln.startswith("FAILED ") and " - " in ln), "")
    return outcome, seconds, first, message


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per test run (default 900)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    ap.add_argument("--files", nargs="+", metavar="PATH", help="run only the mutations of these files (e.g. nflc/space.py)")
    args = ap.parse_args()

    chosen = MUTATIONS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTATIONS}
        if unknown:
            ap.error(f"unknown mutation(s): {', '.join(sorted(unknown))}; see --list")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    if args.files:
        chosen = [m for m in chosen if m.path in args.files]
    if args.list:
        for m in chosen:
            print(f"{m.name:<38} {m.path:<28} {m.why}")
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="nflc-mutation-"))
    copy = scratch / REPO.name
    assert REPO not in copy.parents and copy != REPO
    try:
        copy_tree(REPO, copy)
        shared = REPO.parent / "shared"
        if shared.is_dir():  # the tests read ../shared/data beside the repository
            (scratch / "shared").symlink_to(shared, target_is_directory=True)
        print(f"scratch copy: {copy}")
        check = subprocess.run([sys.executable, "-c", "import nflc; print(nflc.__file__)"], cwd=copy,
                               env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
        if not check.stdout.strip().startswith(str(copy)):
            print(f"nflc does not import from the copy ({check.stdout.strip() or check.stderr.strip()})")
            return 2

        baseline: dict[tuple[str, ...], str] = {}
        for tests in dict.fromkeys(m.tests for m in chosen):
            outcome, seconds, first, _ = run_tests(copy, tests, args.timeout)
            baseline[tests] = outcome
            print(f"baseline {' '.join(tests)}: {outcome} in {seconds:.0f} s {first}")

        rows = []
        for m in chosen:
            path = copy / m.path
            original = path.read_text()
            found = original.count(m.old)
            if found != 1:
                rows.append((m, "not found" if found == 0 else f"found {found} times", 0.0, "", ""))
            elif baseline[m.tests] != "passed":
                rows.append((m, "not judged (tests fail unmutated)", 0.0, "", ""))
            else:
                path.write_text(original.replace(m.old, m.new))
                try:
                    outcome, seconds, first, message = run_tests(copy, m.tests, args.timeout)
                finally:
                    path.write_text(original)
                result = "survived" if outcome == "passed" else "killed" if outcome == "failed" else f"killed: {outcome}"
                rows.append((m, result, seconds, first, message))
            m_, result, seconds, first, message = rows[-1]
            print(f"{m.name:<38} {result:<10} {seconds:6.0f} s  {first}", flush=True)
            if message:
                print(f"{'':<38} {'':<10}          {message[:160]}", flush=True)

        judged = [r for r in rows if r[1] == "survived" or r[1].startswith("killed")]
        killed = [r for r in judged if r[1].startswith("killed")]
        print(f"\nmutation score: {len(killed)}/{len(judged)} killed"
              + (f" ({len(rows) - len(judged)} not judged)" if len(rows) != len(judged) else ""))
        for m, result, *_ in rows:
            if result == "survived" or not (result.startswith("killed")):
                print(f"  {result}: {m.name} ({m.path}): {m.why}")
        return 0 if len(killed) == len(judged) == len(rows) else 1
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
