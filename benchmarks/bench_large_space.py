"""`nflc analyze` on 1,048,576 MLP cells: time, peak memory, progress, files written as it goes.

    python benchmarks/bench_large_space.py [--samples 16] [--measure none] [--sample K] [--keep DIR]

The space (written to a temporary directory) is the paper's MLP skeleton with a 5-node
cell whose 10 edges each choose zero, skip, linear >> relu or a plain linear: 4^10 =
1,048,576 architectures, 155,841 of them in the exact family (only zero, skip and
linear >> relu edges; they get exact infinite-width kernels), the others with a plain
linear edge (outside it: with ``--measure none`` no finite-width kernels, so no
convergence or generalization score and no verdict, but topology, the closed-form
expressivity and the report's Kendall taus). Data-free inputs (``--dataset none``).

It runs ``nflc analyze SPACE --dataset none --samples N --measure none --json --csv`` in a
child process with one thread and prints: when the first progress line arrived, each
pass's time (from the progress lines), wall time, the child's peak resident memory
(``ru_maxrss``), the files' sizes, and the analysis's own summary lines. ``--sample K``
also times ``--archs sample:K`` (the way to look at a huge space quickly). It asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SPACE = """
space mlp_cells_1m {
    input   [16]
    classes 4
    width   16
    bias    false
    cell {
        nodes 5
        edge * : zero | skip | linear >> relu as linear | linear as lin
    }
    network = linear(width) >> relu >> cell >> linear(classes)
}
"""


def run(spec: Path, extra: list[str], out_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nflc.cli", "analyze", str(spec), *extra]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic() - t0, line.rstrip("\n")))

    reader = threading.Thread(target=read_err)
    reader.start()
    stdout, _ = proc.communicate()
    reader.join()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n" + "\n".join(t for _, t in lines))
    return {"wall": wall, "stderr": lines, "stdout": stdout,
            "peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--measure", default="none")
    ap.add_argument("--sample", type=int, default=1000, help="also time --archs sample:K (0: skip)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the spec, JSON and CSV in this directory")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nflc_large_")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        spec = work / "mlp_cells_1m.nfl"
        spec.write_text(SPACE)
        js, cs = work / "analysis.json", work / "analysis.csv"
        res = run(spec, ["--dataset", "none", "--samples", str(args.samples), "--measure", args.measure,
                         "--json", str(js), "--csv", str(cs)], work)
        print(f"nflc analyze on 1,048,576 MLP cells (--dataset none --samples {args.samples} --measure {args.measure}, "
              "one thread):")
        first_t, first = res["stderr"][0]
        print(f"  first progress line after {first_t:.2f} s (interpreter start included): {first}")
        for t, line in res["stderr"]:
            if re.search(r"done after", line) or line.startswith("warning"):
                print(f"  [{t:6.1f} s] {line}")
        print(f"  wall {res['wall']:.1f} s, peak resident memory {res['peak'] / 2**20:,.0f} MiB; "
              f"JSON {js.stat().st_size / 1e6:,.0f} MB, CSV {cs.stat().st_size / 1e6:,.0f} MB (written as it went)")
        summary = [ln for ln in res["stdout"].splitlines()
                   if ln.startswith(("mlp_cells_1m:", "note:", "winner", "Pareto", "no verdict", "free lunch", "no free"))]
        kendall = [ln for ln in res["stdout"].splitlines() if re.match(r"│ (expressivity|convergence|generalization) ", ln)]
        for ln in summary + ["Kendall tau with P / mean depth:"] + kendall:
            print("  " + ln)
        if args.sample:
            small = run(spec, ["--dataset", "none", "--samples", str(args.samples), "--measure", args.measure,
                               "--archs", f"sample:{args.sample}"], work)
            print(f"--archs sample:{args.sample}: wall {small['wall']:.1f} s")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
