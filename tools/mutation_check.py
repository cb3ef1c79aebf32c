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
             "math.prod(\n                len(self.cell(self.cell_of[k].name).valid) for k in self.instances)",
             "sum(\n                len(self.cell(self.cell_of[k].name).valid) for k in self.instances)",
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


def run_tests(copy: Path, args: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    """(outcome, seconds, first failure) of ``pytest args`` in the copy."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", *args]
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, ""
    seconds = time.monotonic() - t0
    text = res.stdout + res.stderr
    first = next((ln.split(" - ")[0][len("FAILED "):] for ln in text.splitlines()
                  if ln.startswith(("FAILED ", "ERROR "))), "")
    if first == "":
        first = next((ln[len("ERROR "):] for ln in text.splitlines() if ln.startswith("ERROR ")), "")
    outcome = {0: "passed", 1: "failed"}.get(res.returncode, f"error (pytest exit {res.returncode})")
    if outcome != "passed" and not first:
        first = text.strip().splitlines()[-1] if text.strip() else ""
    return outcome, seconds, first


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per test run (default 900)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    args = ap.parse_args()

    chosen = MUTATIONS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTATIONS}
        if unknown:
            ap.error(f"unknown mutation(s): {', '.join(sorted(unknown))}; see --list")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:<28} {m.path:<28} {m.why}")
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
            outcome, seconds, first = run_tests(copy, tests, args.timeout)
            baseline[tests] = outcome
            print(f"baseline {' '.join(tests)}: {outcome} in {seconds:.0f} s {first}")

        rows = []
        for m in chosen:
            path = copy / m.path
            original = path.read_text()
            found = original.count(m.old)
            if found != 1:
                rows.append((m, "not found" if found == 0 else f"found {found} times", 0.0, ""))
            elif baseline[m.tests] != "passed":
                rows.append((m, "not judged (tests fail unmutated)", 0.0, ""))
            else:
                path.write_text(original.replace(m.old, m.new))
                try:
                    outcome, seconds, first = run_tests(copy, m.tests, args.timeout)
                finally:
                    path.write_text(original)
                result = "survived" if outcome == "passed" else "killed" if outcome == "failed" else f"killed: {outcome}"
                rows.append((m, result, seconds, first))
            m_, result, seconds, first = rows[-1]
            print(f"{m.name:<28} {result:<10} {seconds:6.0f} s  {first}", flush=True)

        judged = [r for r in rows if r[1] == "survived" or r[1].startswith("killed")]
        killed = [r for r in judged if r[1].startswith("killed")]
        print(f"\nmutation score: {len(killed)}/{len(judged)} killed"
              + (f" ({len(rows) - len(judged)} not judged)" if len(rows) != len(judged) else ""))
        for m, result, _, _ in rows:
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
